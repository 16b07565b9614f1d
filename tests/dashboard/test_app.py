"""The review app through streamlit.testing's AppTest: sign-in, labelling, blind pairwise, blindness to
others' labels until submitting, corrections, the agreement panel against hand-computed values, export."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from review_support import BASELINE, CANDIDATE, TOKENS
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from harness.review.enqueue import enqueue
from harness.review.store import NewItem, ReviewStore, items, open_store

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PLAIN_PAGE_ELEMENTS = ("text", "code", "caption", "success", "error", "info", "warning")


@pytest.fixture
def app_env(tmp_path, monkeypatch, config):
    """A pipeline YAML holding the review section; the app finds it through NIFT_REVIEW_CONFIG."""
    path = tmp_path / "pipeline.yaml"
    review = config.model_dump(mode="json", exclude={"reviewers"})
    review["reviewers"] = [{"name": r.name, "role": r.role, "token": TOKENS[r.name]} for r in config.reviewers]
    path.write_text(yaml.safe_dump({"run": "r1", "review": review}))
    monkeypatch.setenv("NIFT_REVIEW_CONFIG", str(path))
    monkeypatch.delenv("NIFT_REVIEW_SET", raising=False)
    return config


def page_text(at: AppTest) -> str:
    """Everything the page shows as text, tables and choices included."""
    parts = [str(e.value) for kind in (*PLAIN_PAGE_ELEMENTS, "markdown") for e in getattr(at, kind)]
    parts += [e.value.to_string() for e in at.dataframe]
    parts += [" ".join(map(str, w.options)) for kind in ("radio", "selectbox") for w in getattr(at, kind)]
    parts += [p.proto.text for p in at.get("progress")]
    return "\n".join(parts)


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
    item_id = at.selectbox(key="queue_choice").value
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
    assert at.selectbox(key="queue_choice").value != item_id  # next item
    assert item_id not in at.selectbox(key="queue_choice").options
    assert "Your queue: 1 of" in page_text(at)


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
    at.selectbox(key="queue_choice").set_value(item_id).run()
    view = review.item(item_id)
    shown = page_text(at)
    assert [c.value for c in at.code] == [view.prompt, view.output_a, view.output_b]
    assert {"Answer A", "Answer B"} <= {c.value for c in at.caption}
    assert CANDIDATE not in shown and BASELINE not in shown
    at.radio(key=f"preference_{item_id}").set_value("B")
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
    assert at.selectbox(key="queue_choice").value == item_id
    assert "bob-secret-comment" not in page_text(at)
    assert "Other reviewers' labels" not in page_text(at)
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
    assert sign_in("ann").sidebar.radio(key="page").options == ["Queue", "Corrections"]
    at = sign_in("meg")
    assert at.sidebar.radio(key="page").options == ["Queue", "Corrections", "Agreement", "Export"]
    progress = at.dataframe[0].value  # everyone's progress, for the manager only
    assert progress["reviewer"].tolist() == ["ann", "bob"] and progress["labelled"].tolist() == [0, 0]
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
    assert all("<script>" not in m.value and "<b>" not in m.value for m in at.markdown)


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
