"""The review app through streamlit.testing's AppTest: sign-in, labelling one item at a time (shortcut buttons,
skip, the next item without reading the whole queue), conversations as turns, blind pairwise, blindness to
others' labels until submitting, corrections, guidelines beside every item and their version on every label,
adjudication of disputed items, the agreement panel against hand-computed values, export; and every count the
app shows is the review record's (stale items and other candidates' outside it, shown and marked)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from review_support import BASELINE, CANDIDATE, TOKENS, review_config, single_item
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from dashboard.counting import NO_RECORD, NOT_COUNTED
from harness.review.config import ReviewConfig
from harness.review.enqueue import enqueue
from harness.review.store import NewItem, ReviewStore, items, open_store
from harness.review.summary import summarise_review

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PLAIN_PAGE_ELEMENTS = ("text", "code", "caption", "success", "error", "info", "warning")


def write_app_config(tmp_path: Path, monkeypatch, config: ReviewConfig) -> ReviewConfig:
    """A pipeline YAML holding the review section; the app finds it through NIFT_REVIEW_CONFIG."""
    path = tmp_path / "pipeline.yaml"
    review = config.model_dump(mode="json", exclude={"reviewers"})
    review["reviewers"] = [{"name": r.name, "role": r.role, "token": TOKENS[r.name]} for r in config.reviewers]
    path.write_text(yaml.safe_dump({"run": "r1", "review": review}))
    monkeypatch.setenv("NIFT_REVIEW_CONFIG", str(path))
    monkeypatch.delenv("NIFT_REVIEW_SET", raising=False)
    return config


@pytest.fixture
def app_env(tmp_path, monkeypatch, config):
    return write_app_config(tmp_path, monkeypatch, config)


def page_text(at: AppTest) -> str:
    """Everything the page shows as text, tables and choices included."""
    parts = [str(e.value) for kind in (*PLAIN_PAGE_ELEMENTS, "markdown") for e in getattr(at, kind)]
    parts += [e.value.to_string() for e in at.dataframe]
    parts += [" ".join(map(str, w.options)) for kind in ("radio", "selectbox") for w in getattr(at, kind)]
    parts += [p.proto.text for p in at.get("progress")]
    return "\n".join(parts)


def shown_item(at: AppTest) -> int:
    """The id of the item on the labelling page: the one submit button (``submit_<id>``) there is."""
    [key] = [b.key for b in at.button if (b.key or "").startswith("submit_")]
    return int(key.removeprefix("submit_"))


def label(at: AppTest, verdict: str = "accept", helpfulness: int = 4) -> AppTest:
    item_id = shown_item(at)
    at.radio(key=f"verdict_{item_id}").set_value(verdict)
    at.radio(key=f"helpfulness_{item_id}").set_value(helpfulness)
    return at.button(key=f"submit_{item_id}").click().run()


def sign_in(name: str, token: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_token").input(TOKENS[name] if token is None else token)
    return at.button(key="sign_in_submit").click().run()


def test_wrong_token_and_unknown_name_are_refused(app_env, run_store):
    enqueue(app_env, run_store)
    for name, token in (("ann", "bob-token"), ("ann", ""), ("ann", "ann-token "), ("mallory", "ann-token")):
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        at.text_input(key="sign_in_name").input(name)
        at.text_input(key="sign_in_token").input(token)
        at.button(key="sign_in_submit").click().run()
        assert [e.value for e in at.error] == ["Unknown name or wrong token."]
        assert "reviewer" not in at.session_state
        assert len(at.code) == 0 and len(at.dataframe) == 0  # nothing of the queue leaks
    at = sign_in("ann")
    assert not at.error and at.session_state["reviewer"] == "ann"
    assert "Signed in: ann (reviewer)" in [t.value for t in at.sidebar.text]


def test_labelling_stores_the_label_before_acknowledging_it(app_env, run_store):
    enqueue(app_env, run_store)
    at = sign_in("ann")
    item_id = shown_item(at)
    # Submitting without a verdict stores nothing.
    at.button(key=f"submit_{item_id}").click().run()
    assert [e.value for e in at.error] == ["Choose a verdict and a helpfulness rating."]
    review = open_store(app_env, run_store)
    assert review.my_label(item_id, "ann") is None
    at.radio(key=f"verdict_{item_id}").set_value("reject")
    at.radio(key=f"helpfulness_{item_id}").set_value(2)
    at.checkbox(key=f"flag_hallucination_{item_id}").check()
    at.text_area(key=f"comment_{item_id}").input("made up a date")
    at.button(key=f"submit_{item_id}").click().run()
    label = review.my_label(item_id, "ann")
    assert [s.value for s in at.success] == [f"Saved: label {label.id} on item {item_id}."]
    assert (label.verdict, label.helpfulness, label.comment) == ("reject", 2, "made up a date")
    assert label.flags == {"toxic": False, "hallucination": True, "unhelpful_refusal": False, "off_topic": False}
    assert label.guidelines_sha256 == app_env.guidelines_document().sha256  # the version shown beside the item
    assert 0 < label.lead_time_s < 60  # seconds from the item being shown to the submit
    assert shown_item(at) == review.queue("ann")[0].item_id != item_id  # the next item
    assert "Your queue: 1 of" in page_text(at) and "s per item (median)" in page_text(at)


def test_the_shortcut_buttons_set_the_choices_they_name(app_env, run_store):
    """Each key sets one widget: Y/N the verdict, 1-5 the helpfulness, T/H/U/O toggle a flag; S skips and
    Ctrl+Enter submits. (tests/dashboard/test_browser.py presses the real keys.)"""
    enqueue(app_env, run_store)
    at = sign_in("ann")
    item_id = shown_item(at)
    shortcuts = {b.key.removesuffix(f"_{item_id}"): b.proto.shortcut for b in at.button
                 if b.key and b.key.endswith(f"_{item_id}") and b.proto.shortcut}
    assert shortcuts == {"key_verdict_accept": "y", "key_verdict_reject": "n",
                         **{f"key_helpfulness_{i}": str(i) for i in range(1, 6)},
                         "key_flag_toxic": "t", "key_flag_hallucination": "h", "key_flag_unhelpful_refusal": "u",
                         "key_flag_off_topic": "o", "skip": "s", "submit": "ctrl+enter"}
    at.button(key=f"key_verdict_accept_{item_id}").click().run()
    at.button(key=f"key_verdict_reject_{item_id}").click().run()  # the later key wins
    at.button(key=f"key_helpfulness_3_{item_id}").click().run()
    for flag in ("toxic", "off_topic", "toxic"):  # a flag key toggles: toxic on, off again
        at.button(key=f"key_flag_{flag}_{item_id}").click().run()
    assert at.radio(key=f"verdict_{item_id}").value == "reject"
    assert at.radio(key=f"helpfulness_{item_id}").value == 3
    assert [at.checkbox(key=f"flag_{f}_{item_id}").value for f in ("toxic", "off_topic")] == [False, True]
    at.button(key=f"submit_{item_id}").click().run()
    stored = open_store(app_env, run_store).my_label(item_id, "ann")
    assert (stored.verdict, stored.helpfulness, stored.flags["off_topic"], stored.flags["toxic"]) == (
        "reject", 3, True, False)


def test_skipped_items_come_back_once_the_rest_is_done(app_env, run_store):
    review = ReviewStore(app_env.database)
    review.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                              source_item_id=str(i), task="qa", candidate=CANDIDATE, prompt=f"question {i}",
                              output=f"answer {i}", model=CANDIDATE, content_key=f"k{i}") for i in range(3)])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert shown_item(at) == 1
    at.button(key="skip_1").click().run()
    assert shown_item(at) == 2 and "1 item(s) skipped for later" in page_text(at)
    at = label(at)  # item 2
    assert shown_item(at) == 3
    at.button(key="skip_3").click().run()
    assert "Only the 2 item(s) you skipped are left." in page_text(at)
    assert not [b for b in at.button if (b.key or "").startswith("submit_")]
    at.button(key="unskip").click().run()
    assert shown_item(at) == 1
    at = label(label(at))  # items 1 and 3
    assert "Your queue is empty." in page_text(at)  # in the container keyed queue_empty (the browser test sees it)
    assert sorted(r["item_id"] for r in review.current_labels()) == [1, 2, 3]


def test_the_next_item_is_read_alone_not_with_the_whole_queue(app_env, run_store, monkeypatch):
    """After a submit the app asks the store for the next item only (skipped ones + 1), not a page of items."""
    enqueue(app_env, run_store)
    limits = []
    original = ReviewStore.queue
    monkeypatch.setattr(ReviewStore, "queue", lambda self, reviewer, limit=50, offset=0: (
        limits.append(limit), original(self, reviewer, limit, offset))[1])
    at = sign_in("ann")
    at = label(at)
    at.button(key=f"skip_{shown_item(at)}").click().run()
    label(at)
    assert limits and max(limits) <= 2, limits


def test_a_templated_prompt_is_shown_as_its_turns_without_special_tokens(app_env):
    templated = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n<|im_start|>user\n"
                 "Write a haiku about rain.<|im_end|>\n<|im_start|>assistant\n")
    review = ReviewStore(app_env.database)
    review.add_items([NewItem(kind="single", stratum="random", source="bench/nift_if", source_record_id="r",
                              source_item_id="1", task="nift_if", candidate=CANDIDATE, prompt=templated,
                              output="Grey drops on the roof", reference="any haiku", scores={"acc": 0.0},
                              model=CANDIDATE, content_key="k")])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert [c.value for c in at.code] == ["You are a helpful AI assistant named SmolLM", "Write a haiku about rain.",
                                          "Grey drops on the roof", "any haiku"]
    captions = [c.value for c in at.caption]
    assert captions[captions.index("System"):captions.index("System") + 3] == [
        "System", "User", "Output (judge this)"]
    assert "Reference answer (context)" in captions
    assert "Automatic scores and flags (context, not a verdict)" in captions
    assert "<|im_start|>" not in page_text(at) and "<|im_end|>" not in page_text(at)


def _two_turn_pair(messages: bool) -> NewItem:
    return NewItem(kind="pairwise", stratum="pairwise", source="bench/pairwise", source_record_id="r",
                   source_item_id="q2", task="pairwise", candidate=CANDIDATE, content_key=f"q2-{messages}",
                   prompt="(turn 1) Name a colour.\n\n(turn 2) Another one?", output_a="(turn 1) red\n\n(turn 2) blue",
                   output_b="(turn 1) green\n\n(turn 2) teal", model_a=CANDIDATE, model_b=BASELINE,
                   messages=[{"role": "user", "content": "Name a colour."}, {"role": "answer", "a": "red", "b": "green"},
                             {"role": "user", "content": "Another one?"}, {"role": "answer", "a": "blue", "b": "teal"}]
                   if messages else None)


@pytest.mark.parametrize("messages", [True, False], ids=["stored messages", "joined text only"])
def test_a_two_turn_pair_is_shown_turn_by_turn_with_a_and_b_side_by_side(app_env, messages):
    review = ReviewStore(app_env.database)
    review.add_items([_two_turn_pair(messages)])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert [c.value for c in at.code] == ["Name a colour.", "red", "green", "Another one?", "blue", "teal"]
    captions = [c.value for c in at.caption]
    start = captions.index("User")
    assert captions[start:start + 6] == ["User", "Answer A · turn 1", "Answer B · turn 1", "User",
                                         "Answer A · turn 2", "Answer B · turn 2"]
    assert "(turn 1)" not in page_text(at) and CANDIDATE not in page_text(at) and BASELINE not in page_text(at)


def _pairwise_item(review: ReviewStore) -> tuple[int, str, str]:
    with review.engine.connect() as conn:
        row = conn.execute(select(items.c.id, items.c.model_a, items.c.model_b).where(items.c.kind == "pairwise")
                           .order_by(items.c.id)).first()
    return row.id, row.model_a, row.model_b


def test_pairwise_is_blind_and_the_mapping_is_stored(app_env, run_store):
    enqueue(app_env, run_store)
    review = open_store(app_env, run_store)
    item_id, model_a, model_b = _pairwise_item(review)
    at = sign_in("ann")
    while shown_item(at) != item_id:  # skip to the first pair
        at.button(key=f"skip_{shown_item(at)}").click().run()
    view = review.item(item_id)
    shown = page_text(at)
    assert [c.value for c in at.code] == [view.prompt, view.output_a, view.output_b]
    assert {"Answer A", "Answer B"} <= {c.value for c in at.caption}
    assert CANDIDATE not in shown and BASELINE not in shown
    assert {b.proto.shortcut for b in at.button if (b.key or "").startswith("key_preference_")} == {"a", "b", "t"}
    at.button(key=f"key_preference_B_{item_id}").click().run()
    at.button(key=f"submit_{item_id}").click().run()
    assert review.my_label(item_id, "ann").preference == "B"
    assert CANDIDATE not in page_text(at) and BASELINE not in page_text(at)
    # The stored mapping says who B was; only the summary and the export use it.
    frame = review.history_frame()
    assert frame.loc[frame["item_id"] == item_id, "preferred_model"].tolist() == [model_b]
    assert {model_a, model_b} == {CANDIDATE, BASELINE}


def test_others_labels_are_hidden_until_submitting(app_env, run_store):
    enqueue(app_env, run_store)
    review = open_store(app_env, run_store)
    item_id = review.queue("ann")[0].item_id
    review.add_label(item_id, "bob", "reject", 1, {"off_topic": True}, "bob-secret-comment")
    at = sign_in("ann")
    assert shown_item(at) == item_id
    assert "bob-secret-comment" not in page_text(at)
    assert "Other reviewers' labels" not in [c.value for c in at.caption]
    at.radio(key=f"verdict_{item_id}").set_value("accept")
    at.radio(key=f"helpfulness_{item_id}").set_value(4)
    at.button(key=f"submit_{item_id}").click().run()
    assert "Other reviewers' labels" in [c.value for c in at.caption]
    [others] = [d.value for d in at.dataframe if "verdict" in d.value.columns]
    assert others[["reviewer", "verdict", "comment"]].values.tolist() == [["bob", "reject", "bob-secret-comment"]]


def test_correction_supersedes_the_earlier_label(app_env, run_store):
    enqueue(app_env, run_store)
    review = open_store(app_env, run_store)
    item_id = next(q.item_id for q in review.queue("ann") if q.kind == "single")
    first = review.add_label(item_id, "ann", "accept", 5)
    at = sign_in("ann")
    at.sidebar.radio(key="page").set_value("Corrections").run()
    assert at.selectbox(key="correction_choice").value == item_id
    at.radio(key=f"verdict_{item_id}").set_value("reject")
    at.radio(key=f"helpfulness_{item_id}").set_value(1)
    at.button(key=f"submit_{item_id}").click().run()
    current = review.my_label(item_id, "ann")
    assert (current.verdict, current.supersedes) == ("reject", first.id)
    assert review.history_frame()["superseded"].tolist() == [True, False]


def _agreement_store(app_env, ratings: dict[str, str]) -> None:
    """Items of the candidate, labelled accept (y) / reject (n) per reviewer, '-' = not labelled."""
    review = ReviewStore(app_env.database)
    n = len(next(iter(ratings.values())).split())
    review.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                              source_item_id=str(i), task="qa", candidate=CANDIDATE, prompt=f"p{i}", output=f"o{i}",
                              model=CANDIDATE, content_key=f"k{i}") for i in range(n)])
    for reviewer, values in ratings.items():
        for item_id, value in enumerate(values.split(), 1):
            if value != "-":
                review.add_label(item_id, reviewer, {"y": "accept", "n": "reject"}[value], 3,
                                 {"toxic": value == "n"})


@pytest.mark.parametrize(("ratings", "statistic", "expected"), [
    ({"ann": "y y n y n y y n y y", "bob": "y n n y n y y y y n"}, "cohen_kappa", 8 / 23),
    ({"ann": "y y n y", "bob": "y n n -", "cy": "y - n n"}, "krippendorff_alpha", 0.28),
])
def test_agreement_panel_shows_hand_computed_values(app_env, ratings, statistic, expected):
    _agreement_store(app_env, ratings)
    at = sign_in("meg")
    at.sidebar.radio(key="page").set_value("Agreement").run()
    table = at.dataframe[0].value.set_index("on")
    assert table.loc["accept/reject", "statistic"] == statistic
    assert table.loc["accept/reject", "value"] == pytest.approx(expected)
    assert table.loc["toxic", "value"] == pytest.approx(expected)  # toxic mirrors reject here
    assert pd.isna(table.loc["hallucination", "value"])  # never flagged: undefined, shown empty


def test_only_release_managers_see_agreement_and_export(app_env, run_store):
    enqueue(app_env, run_store)
    ReviewStore(app_env.database).assign(["zed"], 3)  # zed has since left review.reviewers
    assert sign_in("ann").sidebar.radio(key="page").options == ["Queue", "Corrections"]
    at = sign_in("meg")
    assert at.sidebar.radio(key="page").options == ["Queue", "Corrections", "Adjudication", "Agreement", "Export"]
    progress = at.dataframe[0].value  # everyone's progress, for the manager only
    assert progress["reviewer"].tolist() == ["ann", "bob", "zed"] and progress["labelled"].tolist() == [0, 0, 0]
    assert progress["configured"].tolist() == [True, True, False]
    assert "s per item (median)" in progress.columns
    at.sidebar.radio(key="page").set_value("Export").run()
    assert not at.exception
    assert at.get("download_button")[0].proto.label == "Download labels (csv)"


def test_model_output_is_never_rendered_as_markdown(app_env):
    hostile = "<script>document.title='pwned'</script><img src=x onerror=\"alert(1)\"> **bold** [x](javascript:1)"
    review = ReviewStore(app_env.database)
    review.add_items([NewItem(kind="single", stratum="flagged", source="audit/toxicity", source_record_id="r",
                              source_item_id="1", task="rtp", candidate=CANDIDATE, prompt="<b>prompt</b>",
                              output=hostile, model=CANDIDATE, content_key="k")])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert [c.value for c in at.code] == ["<b>prompt</b>", hostile]
    # the one Markdown on the page is the guidelines'
    assert [m.value for m in at.markdown if "<script>" in m.value or "<b>" in m.value] == []


def test_a_tokens_file_edited_in_place_takes_effect_at_the_next_sign_in(tmp_path, monkeypatch, config, run_store):
    """Tokens are an input of the review app, read at every sign-in: a rotated token in the tokens file
    (same size, mtime put back) locks the old one out without restarting the app."""
    from tiny import edit_in_place

    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({r.name: TOKENS[r.name] for r in config.reviewers}))
    path = tmp_path / "pipeline.yaml"
    review = config.model_dump(mode="json", exclude={"reviewers", "tokens_file"})
    review["reviewers"] = [{"name": r.name, "role": r.role} for r in config.reviewers]
    review["tokens_file"] = "tokens.yaml"  # relative to the pipeline YAML
    path.write_text(yaml.safe_dump({"run": "r1", "review": review}))
    monkeypatch.setenv("NIFT_REVIEW_CONFIG", str(path))
    monkeypatch.delenv("NIFT_REVIEW_SET", raising=False)
    enqueue(config, run_store)
    assert sign_in("ann").session_state["reviewer"] == "ann"
    edit_in_place(tokens, b"ann-token", b"ann-TOKEN")
    refused = sign_in("ann")
    assert [e.value for e in refused.error] == ["Unknown name or wrong token."]
    assert "reviewer" not in refused.session_state
    assert sign_in("ann", "ann-TOKEN").session_state["reviewer"] == "ann"


def test_failed_sign_ins_lock_the_name_out_across_sessions(app_env, run_store):
    """Five wrong tokens, each from a fresh browser session, lock `ann` out: her right token is refused next,
    while `bob` signs in as usual."""
    from review_support import TOKENS

    enqueue(app_env, run_store)
    errors = [sign_in("ann", f"guess-{i}").error[0].value for i in range(5)]
    assert errors[:4] == ["Unknown name or wrong token."] * 4
    assert errors[4].startswith("Too many failed sign-ins under this name: try again in ")
    locked = sign_in("ann", TOKENS["ann"])
    assert "reviewer" not in locked.session_state
    [message] = [e.value for e in locked.error]
    assert message.startswith("Too many failed sign-ins under this name: try again in ") and message.endswith(" s.")
    assert 0 < int(message.split(" in ")[1].split()[0]) <= 30
    assert len(locked.code) == 0 and len(locked.dataframe) == 0
    assert sign_in("bob").session_state["reviewer"] == "bob"


def test_a_visitor_sees_no_detail_of_a_config_the_app_cannot_load(tmp_path, monkeypatch, config):
    """A malformed tokens file stops the app with one generic line; the file, its path and the reason go to the
    server log only."""
    tokens = tmp_path / "secret-tokens.yaml"
    tokens.write_text("- ann-token\n- bob-token\n")  # a list, not name: token
    path = tmp_path / "pipeline.yaml"
    review = config.model_dump(mode="json", exclude={"reviewers", "tokens_file"})
    review["reviewers"] = [{"name": r.name, "role": r.role} for r in config.reviewers]
    review["tokens_file"] = str(tokens)
    path.write_text(yaml.safe_dump({"run": "r1", "review": review}))
    monkeypatch.setenv("NIFT_REVIEW_CONFIG", str(path))
    monkeypatch.delenv("NIFT_REVIEW_SET", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert [e.value for e in at.error] == [("The review app is not available: its configuration could not be "
                                            "loaded. The server log says why.")]
    shown = page_text(at)
    assert "secret-tokens" not in shown and str(tmp_path) not in shown and "mapping" not in shown
    assert not at.exception and len(at.text_input) == 0


def test_oidc_sign_out_signs_out(tmp_path, monkeypatch, run_store):
    """With OIDC the identity cookie would sign the next run straight back in: Sign out calls st.logout."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"run": "r1", "review": {
        "database": f"sqlite:///{tmp_path / 'review.db'}", "oidc": True,
        "reviewers": [{"name": "ann", "email": "ann@example.org"}, {"name": "bob", "email": "bob@example.org"}]}}))
    monkeypatch.setenv("NIFT_REVIEW_CONFIG", str(path))
    monkeypatch.delenv("NIFT_REVIEW_SET", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "ann@example.org"}
    at.run()
    assert "Signed in: ann (reviewer)" in [t.value for t in at.sidebar.text]
    at.sidebar.button(key="sign_out").click().run()
    assert at.user == {"is_logged_in": False}
    assert "reviewer" not in at.session_state and not at.sidebar.text
    assert [b.label for b in at.button] == ["Log in"]
    at.user = {"is_logged_in": True, "email": "Bob@Example.ORG"}  # the case an identity provider returns varies
    at.run()
    assert "Signed in: bob (reviewer)" in [t.value for t in at.sidebar.text]


# ---- guidelines ----------------------------------------------------------------------------------------------
def test_guidelines_are_shown_beside_every_item_and_each_label_records_their_version(tmp_path, monkeypatch, config):
    guidelines = tmp_path / "guidelines.md"
    guidelines.write_text("# Team rules\n\nReject any answer that invents a **date**.\n")
    first = hashlib.sha256(guidelines.read_bytes()).hexdigest()
    app_env = write_app_config(tmp_path, monkeypatch, config.model_copy(update={"guidelines": str(guidelines)}))
    review = ReviewStore(app_env.database)
    review.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                              source_item_id=str(i), task="qa", candidate=CANDIDATE, prompt=f"question {i}",
                              output=f"answer {i}", model=CANDIDATE, content_key=f"k{i}") for i in range(2)])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    # beside the item, headings two levels down to fit the side panel
    assert "### Team rules\n\nReject any answer that invents a **date**." in [m.value.strip() for m in at.markdown]
    assert f"Guidelines · version {first[:12]}" in [c.value for c in at.caption]
    at = label(at)
    assert review.my_label(1, "ann").guidelines_sha256 == first
    guidelines.write_text("# Team rules v2\n\nDates: check the reference.\n")  # edited while the app runs
    second = hashlib.sha256(guidelines.read_bytes()).hexdigest()
    at = label(at.run())  # the next run shows v2; the label given after reading it records v2
    assert review.my_label(2, "ann").guidelines_sha256 == second != first
    at.sidebar.radio(key="page").set_value("Corrections").run()
    assert f"Guidelines · version {second[:12]}" in [c.value for c in at.caption]


def test_hostile_guidelines_are_shown_without_html_or_script_links(tmp_path, monkeypatch, config):
    from markdown_it import MarkdownIt

    from dashboard.guidelines import link_scheme

    guidelines = tmp_path / "guidelines.md"
    guidelines.write_text(HOSTILE_GUIDELINES)
    app_env = write_app_config(tmp_path, monkeypatch, config.model_copy(update={"guidelines": str(guidelines)}))
    review = ReviewStore(app_env.database)
    review.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                              source_item_id="1", task="qa", candidate=CANDIDATE, prompt="q", output="a",
                              model=CANDIDATE, content_key="k")])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert not at.exception
    [shown] = [m.value for m in at.markdown if "Rules" in m.value]
    # A renderer that trusts raw HTML and every link (stricter than Streamlit's) still makes nothing executable.
    permissive = MarkdownIt("commonmark", {"html": True})
    permissive.validateLink = lambda url: True
    html = permissive.render(shown)
    assert "<script" not in html and "<img" not in html and "<svg" not in html and "<iframe" not in html
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', html)
    assert "https://example.org/style" in hrefs  # ordinary links still work
    assert all(link_scheme(h) in (None, "http", "https", "mailto") for h in hrefs), hrefs


HOSTILE_GUIDELINES = """# Rules
<script>document.title='pwned'</script>
<img src=x onerror="document.title='pwned'">
[a](javascript:alert(1)) [b](JaVaScRiPt:alert(2)) [c]( javascript\\:alert(3)) [d](jav&#97;script:alert(4))
[e](data:text/html;base64,PHNjcmlwdD4=) ![f](data:image/svg+xml,<svg onload=alert(5)>) [g](vbscript:x)
<javascript:alert(6)> [h][r] [i][r2] [style](https://example.org/style) <iframe src="javascript:alert(7)">
[j](<javascript:alert(8)>) [k](
javascript:alert(9))

[r]: javascript:alert(10)
[r2]:
   data:text/html,x

[l] [m]

> [l]: javascript:alert(11)

- [m]:
  javascript:alert(12)
"""


# ---- adjudication --------------------------------------------------------------------------------------------
@pytest.fixture
def team_env(tmp_path, monkeypatch):
    """ann and bob label; cy is a reviewer named in review.adjudicators; meg is the release manager. Items:
    1 disputed on the verdict, 2 on the toxic flag, 3 agreed, 4 a blind pair judged A by ann and B by bob."""
    config = review_config(tmp_path, reviewers=[{"name": "ann"}, {"name": "bob"}, {"name": "cy"},
                                                {"name": "meg", "role": "release_manager"}], adjudicators=["cy"])
    write_app_config(tmp_path, monkeypatch, config)
    review = ReviewStore(config.database)
    review.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="r",
                              source_item_id=str(i), task="qa", candidate=CANDIDATE, prompt=f"question {i}",
                              output=f"answer {i}", model=CANDIDATE, content_key=f"k{i}") for i in (1, 2, 3)]
                     + [_two_turn_pair(messages=True)])
    review.add_label(1, "ann", "accept", 4, comment="fine by me")
    review.add_label(1, "bob", "reject", 2, comment="wrong year")
    review.add_label(2, "ann", "accept", 3, {"toxic": True})
    review.add_label(2, "bob", "accept", 3)
    review.add_label(3, "ann", "accept", 5)
    review.add_label(3, "bob", "accept", 5)
    review.add_judgment(4, "ann", "A")
    review.add_judgment(4, "bob", "B")
    return config, review


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The table on the page that has ``column`` (AppTest does not expose a dataframe's key)."""
    [found] = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def _adjudication_page(name: str) -> AppTest:
    at = sign_in(name)
    return at.sidebar.radio(key="page").set_value("Adjudication").run()


def test_adjudicators_see_disputed_items_with_every_label_and_record_one_with_a_reason(team_env):
    config, review = team_env
    assert "Adjudication" not in sign_in("ann").sidebar.radio(key="page").options
    assert "Adjudication" in sign_in("meg").sidebar.radio(key="page").options
    at = _adjudication_page("cy")
    disputed = table(at, "disagree on")
    assert disputed["item"].tolist() == [1, 2, 4]  # 3 is agreed
    assert disputed["disagree on"].tolist() == ["verdict", "Toxic", "preference"]
    assert at.selectbox(key="adjudication_choice").value == 1
    labels = table(at, "labelled at")
    assert labels[["reviewer", "verdict", "helpfulness", "comment"]].values.tolist() == [
        ["ann", "accept", 4, "fine by me"], ["bob", "reject", 2, "wrong year"]]
    at.radio(key="adj_verdict_1").set_value("reject")
    at.radio(key="adj_helpfulness_1").set_value(2)
    at.button(key="adj_record_1").click().run()  # no reason
    assert [e.value for e in at.error] == ["Give a reason: an adjudication without one is refused."]
    assert review.adjudication(1) is None
    at.text_area(key="adj_reason_1").input("the answer gives 1912; the reference says 1921")
    at.button(key="adj_record_1").click().run()
    saved = review.adjudication(1)
    assert (saved.author, saved.verdict, saved.helpfulness, saved.reason) == (
        "cy", "reject", 2, "the answer gives 1912; the reference says 1921")
    assert saved.guidelines_sha256 == config.guidelines_document().sha256
    assert [s.value for s in at.success] == [f"Saved: adjudication {saved.id} on item 1."]
    assert table(at, "disagree on")["item"].tolist() == [2, 4]  # 1 is settled
    at.toggle(key="adjudication_all").set_value(True).run()
    assert table(at, "disagree on")["adjudicated"].tolist() == [True, False, False]
    at.selectbox(key="adjudication_choice").set_value(1).run()
    assert table(at, "adjudicated by")[["adjudicated by", "verdict"]].values.tolist() == [
        ["cy", "reject"]]
    # every reviewer's label stays as it was
    assert [(l.reviewer, l.verdict) for l in review.item_labels(1)] == [("ann", "accept"), ("bob", "reject")]


def test_a_pair_is_adjudicated_blind(team_env):
    _, review = team_env
    at = _adjudication_page("meg")
    at.selectbox(key="adjudication_choice").set_value(4).run()
    assert CANDIDATE not in page_text(at) and BASELINE not in page_text(at)
    assert table(at, "labelled at")[["reviewer", "preference"]].values.tolist() == [
        ["ann", "A"], ["bob", "B"]]
    at.radio(key="adj_preference_4").set_value("tie")
    at.text_area(key="adj_reason_4").input("both colours are fine")
    at.button(key="adj_record_4").click().run()
    assert (review.adjudication(4).author, review.adjudication(4).preference) == ("meg", "tie")


def test_an_adjudicator_does_not_decide_an_item_they_labelled(team_env):
    _, review = team_env
    review.add_label(2, "cy", "reject", 1)
    at = _adjudication_page("cy")
    at.selectbox(key="adjudication_choice").set_value(2).run()
    assert [w.value for w in at.warning] == ["You labelled this item yourself: another adjudicator decides it."]
    assert not [b for b in at.button if (b.key or "").startswith("adj_record_")]


def _decide_item_1(at: AppTest) -> None:
    at.radio(key="adj_verdict_1").set_value("reject")
    at.radio(key="adj_helpfulness_1").set_value(2)
    at.text_area(key="adj_reason_1").input("bob is right")


def test_an_adjudication_over_a_label_the_adjudicator_was_not_shown_is_not_saved(team_env):
    """meg is shown ann's accept and bob's reject on item 1; bob labels it again (reject, toxic) before she records
    hers. Before, it was saved, stamped after bob's label (so not stale), over a toxic flag she never saw. Now the
    page names bob, shows his new label and keeps her choices; recorded again, it decides on what is shown."""
    _, review = team_env
    at = _adjudication_page("meg")
    _decide_item_1(at)
    review.add_label(1, "bob", "reject", 1, {"toxic": True}, comment="a slur in line 3")
    at.button(key="adj_record_1").click().run()
    assert review.adjudication(1) is None
    assert [e.value for e in at.error] == [
        "bob labelled this item while you were deciding; review the labels again. Nothing was saved: record the "
        "adjudication again to decide on the labels now shown."]
    assert table(at, "labelled at")[["reviewer", "comment"]].values.tolist() == [
        ["ann", "fine by me"], ["bob", "a slur in line 3"]]
    assert (at.radio(key="adj_verdict_1").value, at.text_area(key="adj_reason_1").value) == ("reject", "bob is right")
    at.checkbox(key="adj_flag_toxic_1").check()
    at.button(key="adj_record_1").click().run()
    saved = review.adjudication(1)
    assert (saved.author, saved.verdict, saved.flags["toxic"]) == ("meg", "reject", True)
    assert 1 not in review.stale_adjudications()
    assert not at.error and not at.warning and [s.value for s in at.success] == [
        f"Saved: adjudication {saved.id} on item 1."]


def test_an_adjudication_over_one_recorded_meanwhile_is_not_saved(team_env):
    """With already adjudicated items shown, item 1 stays listed when cy adjudicates it while meg decides it:
    before, meg's click superseded cy's adjudication, which she never saw."""
    _, review = team_env
    at = _adjudication_page("meg")
    at.toggle(key="adjudication_all").set_value(True).run()
    _decide_item_1(at)
    review.add_adjudication(1, "cy", reason="ann is right", verdict="accept", helpfulness=4)
    at.button(key="adj_record_1").click().run()
    assert review.adjudication(1).author == "cy"
    assert [e.value for e in at.error] == [
        "cy adjudicated this item while you were deciding; their adjudication is now shown. Nothing was saved: "
        "record yours again to supersede it."]
    assert table(at, "adjudicated by")["adjudicated by"].tolist() == ["cy"]
    at.button(key="adj_record_1").click().run()
    assert (review.adjudication(1).author, review.adjudication(1).verdict) == ("meg", "reject")


def test_an_item_that_left_the_list_while_deciding_says_nothing_was_saved(team_env):
    """bob's new label settles item 1 while meg decides it; cy adjudicates item 2 while meg decides that one."""
    _, review = team_env
    at = _adjudication_page("meg")
    _decide_item_1(at)
    review.add_label(1, "bob", "accept", 4)
    at.button(key="adj_record_1").click().run()
    assert review.adjudication(1) is None
    assert [w.value for w in at.warning] == [
        "bob labelled item 1 while you were deciding, and it is no longer disputed; nothing was saved."]
    at.selectbox(key="adjudication_choice").set_value(2).run()
    assert not at.warning
    at.radio(key="adj_verdict_2").set_value("accept")
    at.radio(key="adj_helpfulness_2").set_value(3)
    at.text_area(key="adj_reason_2").input("not toxic")
    review.add_adjudication(2, "cy", reason="toxic", verdict="accept", helpfulness=3, flags={"toxic": True})
    at.button(key="adj_record_2").click().run()
    assert review.adjudication(2).author == "cy"
    assert [w.value for w in at.warning] == [
        "cy adjudicated item 2 while you were deciding; nothing was saved. Turn on 'Also show items already "
        "adjudicated' to review it (a new adjudication supersedes theirs)."]


# ---- what the app counts: the review record's items --------------------------------------------------------
# The Queue page's progress, the Adjudication page's disputed items and the Agreement page are over the
# candidate's items of the current evidence, as `nift-gate review summary` counts them; stale items (queued from
# an earlier bench or audit record), baselines' outputs and other candidates' items are left out of those
# figures, still shown, and marked.


def _counted_single(key: str, record_id: str, model: str = CANDIDATE) -> NewItem:
    return NewItem(kind="single", stratum="random", source="bench/qa", source_record_id=record_id,
                   source_item_id=key, task="qa", candidate=CANDIDATE, model=model,
                   role="candidate" if model == CANDIDATE else "baseline", prompt=f"prompt {key}",
                   output=f"output {key}", content_key=f"s-{key}", required_reviewers=2)


@pytest.fixture
def mixed(tmp_path, monkeypatch, config, run_store):
    """The auditor's store (expG): 10 items of the current bench (5 with quorum, 1 of them disputed), 10 stale
    items of earlier weights and 5 baseline outputs, all with quorum; disputes on 3 stale and 2 baseline items."""
    write_app_config(tmp_path, monkeypatch, config)
    review = ReviewStore(config.database)
    current = review.add_items([_counted_single(f"now{i}", "bench-test") for i in range(10)])
    stale = review.add_items([_counted_single(f"old{i}", "bench-OLD-weights") for i in range(10)])
    baseline = review.add_items([_counted_single(f"b{i}", "bench-test", model=BASELINE) for i in range(5)])
    review.assign(["ann", "bob"], 2)
    for item in current[:4] + stale + baseline:
        review.add_label(item, "ann", "accept", 4)
        review.add_label(item, "bob", "accept", 4)
    for item in stale[:3] + baseline[:2]:
        review.add_label(item, "bob", "reject", 1)
    review.add_label(current[4], "ann", "accept", 4)
    review.add_label(current[4], "bob", "reject", 1)
    return config, run_store, review, {"current": current, "stale": stale, "baseline": baseline}


def _progress_texts(at) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_the_queue_pages_progress_is_the_review_records(mixed):
    config, run_store, review, ids = mixed
    record = summarise_review(config, run_store)
    assert (record.items_with_quorum, record.items_total) == (5, 10)
    at = sign_in("meg")
    mine, everyone = _progress_texts(at)
    assert everyone == ("All reviewers: 5 of 10 items have their quorum (the candidate's outputs the review record "
                        "counts)")  # the whole store's 19 of 25 before
    captions = [c.value for c in at.caption]
    assert ("Whole label store (stale items, baselines' outputs, blind pairs and other candidates' included): "
            "20 of 25 items have their quorum.") in captions  # labelled as the whole store's
    manager = table(at, "not counted: assigned").set_index("reviewer")
    # counted: the 10 current items and the 5 baseline outputs of the current bench; not counted: the 10 stale
    assert manager.loc["ann"].tolist()[:4] == [4 + 1 + 5, 15, 10, 10]
    assert manager.loc["bob"].tolist()[:4] == [4 + 1 + 5, 15, 10, 10]
    ann = sign_in("ann")
    assert _progress_texts(ann)[0] == "Your queue: 10 of 15 labelled"  # 20 of 25 over the whole store
    assert ("Besides these, 10 item(s) in your queue are not counted by the review record (stale, or another "
            "candidate's); you labelled 10 of them.") in [c.value for c in ann.caption]


def test_the_whole_stores_quorum_is_counted_at_the_records_number(tmp_path, monkeypatch, run_store):
    """Items queued when one reviewer sufficed, the config now asking for three: ann's labels give no item its
    quorum, on the record's bar and on the whole store's beside it (which said 4 of 5 before)."""
    config = write_app_config(tmp_path, monkeypatch, review_config(tmp_path, required_reviewers=3))
    review = ReviewStore(config.database)
    ids = review.add_items([single_item(str(i), required_reviewers=1) for i in range(5)])
    review.assign(["ann"], 1)
    for item_id in ids[:4]:
        review.add_label(item_id, "ann", "accept", 4)
    at = sign_in("ann")
    assert _progress_texts(at)[1] == ("All reviewers: 0 of 5 items have their quorum (the candidate's outputs the "
                                      "review record counts)")
    assert ("Whole label store (stale items, baselines' outputs, blind pairs and other candidates' included): "
            "0 of 5 items have their quorum.") in [c.value for c in at.caption]


def test_the_adjudication_page_waits_on_the_records_disputes_and_lists_the_others_apart(mixed):
    config, run_store, review, ids = mixed
    record = summarise_review(config, run_store)
    assert (record.disputed_items, record.adjudication_pending) == (1, 1)
    at = sign_in("meg").sidebar.radio(key="page").set_value("Adjudication").run()
    assert "1 disputed item(s) wait for adjudication" in [t.value for t in at.text]  # 6 before
    assert table(at, "disagree on")["item"].tolist() == [ids["current"][4]]
    assert ("Besides these, 5 disputed item(s) the review record does not count (stale: queued from an earlier "
            "bench or audit record; baselines' outputs; another candidate's).") in [c.value for c in at.caption]
    # still there, on request, marked
    at.toggle(key="adjudication_uncounted").set_value(True).run()
    listed = table(at, "disagree on")
    expected = sorted([ids["current"][4], *ids["stale"][:3], *ids["baseline"][:2]])
    assert listed["item"].tolist() == expected
    assert dict(zip(listed["item"], listed["counted"])) == {i: i == ids["current"][4] for i in expected}
    assert "1 disputed item(s) wait for adjudication" in [t.value for t in at.text]
    at.selectbox(key="adjudication_choice").set_value(ids["stale"][0]).run()
    assert [w.value for w in at.warning][0].startswith("Not counted: the review record does not count this dispute")


def test_a_stale_item_is_still_served_and_marked_as_counted_for_nothing(tmp_path, monkeypatch, config, run_store):
    write_app_config(tmp_path, monkeypatch, config)
    review = ReviewStore(config.database)
    [current] = review.add_items([_counted_single("now", "bench-test")])
    [stale] = review.add_items([_counted_single("old", "bench-OLD-weights")])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert shown_item(at) == current and NOT_COUNTED not in [w.value for w in at.warning]
    assert _progress_texts(at)[0] == "Your queue: 0 of 1 labelled"
    at.radio(key=f"verdict_{current}").set_value("accept")
    at.radio(key=f"helpfulness_{current}").set_value(4)
    at.button(key=f"submit_{current}").click().run()
    assert shown_item(at) == stale  # served, not hidden
    assert [w.value for w in at.warning] == [NOT_COUNTED]
    assert _progress_texts(at)[0].startswith("Your queue: 1 of 1 labelled")
    assert CANDIDATE not in page_text(at) and BASELINE not in page_text(at)  # blind: no model name in the mark
    at.radio(key=f"verdict_{stale}").set_value("reject")
    at.radio(key=f"helpfulness_{stale}").set_value(1)
    at.button(key=f"submit_{stale}").click().run()
    assert review.my_label(stale, "ann").verdict == "reject"  # kept, counted for nothing
    corrections = at.sidebar.radio(key="page").set_value("Corrections").run()
    assert corrections.selectbox(key="correction_choice").value == stale
    assert [w.value for w in corrections.warning] == [NOT_COUNTED]


def test_the_agreement_page_is_the_review_records_agreement(tmp_path, monkeypatch, config, run_store):
    """Stale items on which the reviewers always agree would lift the page's kappa above the record's."""
    write_app_config(tmp_path, monkeypatch, config)
    review = ReviewStore(config.database)
    current = review.add_items([_counted_single(f"now{i}", "bench-test") for i in range(6)])
    stale = review.add_items([_counted_single(f"old{i}", "bench-OLD-weights") for i in range(6)])
    for item, (ann, bob) in zip(current + stale, ["yy", "yn", "nn", "ny", "yy", "nn"] + ["yy", "nn"] * 3):
        review.add_label(item, "ann", "accept" if ann == "y" else "reject", 3)
        review.add_label(item, "bob", "accept" if bob == "y" else "reject", 3)
    record = summarise_review(config, run_store)
    at = sign_in("meg").sidebar.radio(key="page").set_value("Agreement").run()
    shown = at.dataframe[0].value.set_index("on").loc["accept/reject"]
    assert (shown["statistic"], shown["items"]) == (record.agreement.statistic, record.agreement.n) == (
        "cohen_kappa", 6)
    assert shown["value"] == pytest.approx(record.agreement.value)
    assert any(c.value.startswith("Counted as the review record counts it (review.agreement)") and
               "6 stale item(s), queued from earlier records, left out" in c.value for c in at.caption)


def test_without_a_record_to_count_against_the_figures_say_they_are_the_whole_stores(tmp_path, monkeypatch,
                                                                                        config):
    """No bench or audit record in the run: nothing can be counted as the record would, so the bars are over
    the whole label store and say so."""
    write_app_config(tmp_path, monkeypatch, config)
    review = ReviewStore(config.database)
    review.add_items([_counted_single(f"k{i}", "r") for i in range(2)])
    review.assign(["ann"], 1)
    at = sign_in("ann")
    assert _progress_texts(at) == ["Your queue: 0 of 2 labelled",
                                   "All reviewers: 0 of 2 items have their quorum (whole label store)"]
    assert NO_RECORD in [c.value for c in at.caption]
    assert not at.warning  # no item is marked: what counts is unknown
