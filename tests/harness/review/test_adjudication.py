"""Disputed items, append-only adjudications, and the per-label guidelines hash, lead time and item messages."""

from __future__ import annotations

import pytest

from harness.core.errors import InputError
from harness.review.store import LabelsChanged, NewItem, ReviewStore

GUIDE = "0123456789abcdef" * 4


def _item(key: str, kind: str = "single", candidate: str = "cand") -> NewItem:
    extra = ({"output_a": "first", "output_b": "second", "model_a": candidate, "model_b": "base"}
             if kind == "pairwise" else {"output": f"output {key}", "model": candidate})
    return NewItem(kind=kind, stratum="random", source="bench/qa", source_record_id="rec", source_item_id=key,
                   task="qa", candidate=candidate, prompt=f"prompt {key}", content_key=f"{candidate}-{key}", **extra)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    store = ReviewStore(url)
    yield store
    store.close()


def test_disputed_items_are_those_whose_current_labels_disagree(store):
    store.add_items([_item(k) for k in "abcde"] + [_item("p", "pairwise"), _item("q", "pairwise"),
                                                   _item("z", candidate="other")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "reject", 4)  # verdict
    store.add_label(2, "ann", "accept", 4, {"toxic": True})
    store.add_label(2, "bob", "accept", 1)  # a flag (helpfulness alone is no dispute)
    store.add_label(3, "ann", "accept", 5)
    store.add_label(3, "bob", "accept", 1)  # helpfulness only: agree
    store.add_label(4, "ann", "reject", 3)  # one reviewer: nothing to disagree with
    store.add_label(5, "ann", "accept", 3)
    store.add_label(5, "bob", "reject", 3)
    store.add_label(5, "bob", "accept", 3)  # bob's correction settles it: only current labels count
    store.add_judgment(6, "ann", "A")
    store.add_judgment(6, "bob", "tie")
    store.add_judgment(7, "ann", "B")
    store.add_judgment(7, "bob", "B")
    store.add_label(8, "ann", "accept", 4)
    store.add_label(8, "bob", "reject", 4)
    disputed = store.disputed_items("cand")
    assert [(d.item_id, d.kind, d.disagreements) for d in disputed] == [
        (1, "single", ("verdict",)), (2, "single", ("toxic",)), (6, "pairwise", ("preference",))]
    assert [label.reviewer for label in disputed[0].labels] == ["ann", "bob"]
    assert [label.verdict for label in disputed[0].labels] == ["accept", "reject"]
    assert disputed[0].adjudication is None
    assert [d.item_id for d in store.disputed_items()] == [1, 2, 6, 8]


def test_an_adjudication_is_an_append_only_row_and_the_latest_counts(store):
    store.add_items([_item("a"), _item("p", "pairwise")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "reject", 2, {"hallucination": True})
    first = store.add_adjudication(1, "rm", reason="the date is invented", verdict="reject", helpfulness=2,
                                   flags={"hallucination": True}, guidelines_sha256=GUIDE)
    assert (first.author, first.reason, first.verdict, first.flags["hallucination"], first.supersedes,
            first.guidelines_sha256) == ("rm", "the date is invented", "reject", True, None, GUIDE)
    assert store.disputed_items(pending_only=True) == []
    assert store.disputed_items()[0].adjudication == first  # still disputed: the reviewers' labels stay
    second = store.add_adjudication(1, "third", reason="on a second reading the date is right", verdict="accept",
                                    helpfulness=4)
    assert second.supersedes == first.id and store.adjudication(1) == second
    assert store.counts()["adjudications"] == 2
    store.add_judgment(2, "ann", "A")
    store.add_judgment(2, "bob", "B")
    pair = store.add_adjudication(2, "rm", reason="B answers the question", preference="B")
    assert (pair.preference, pair.verdict, pair.flags) == ("B", None, {})
    assert set(store.adjudications("cand")) == {1, 2}
    history = store.history_frame()
    rows = history[history["type"] == "adjudication"]
    assert list(rows["author"]) == ["rm", "third", "rm"]
    assert list(rows["superseded"]) == [True, False, False]
    assert list(rows["preferred_model"])[-1] == "base"  # de-blinded like judgments


def test_a_repeated_adjudication_write_returns_the_stored_row(store):
    store.add_items([_item("a")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "reject", 2)
    once = store.add_adjudication(1, "rm", reason="r", verdict="reject", helpfulness=2, client_key="k1")
    again = store.add_adjudication(1, "rm", reason="r", verdict="reject", helpfulness=2, client_key="k1")
    assert once == again and store.counts()["adjudications"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"reason": "  ", "verdict": "accept", "helpfulness": 3}, "reason: an adjudication needs a reason"),
    ({"reason": "", "verdict": "accept", "helpfulness": 3}, "reason: an adjudication needs a reason"),
    ({"reason": "r", "helpfulness": 3}, "verdict: None is not one of"),
    ({"reason": "r", "verdict": "accept"}, "helpfulness: None is not an integer"),
    ({"reason": "r", "verdict": "accept", "helpfulness": 3, "flags": {"rude": True}}, "flags: unknown"),
    ({"reason": "r", "preference": "A"}, "item 1 is not a pairwise item"),
    ({"reason": "r", "preference": "A", "verdict": "accept"}, "takes a preference only"),
    ({"reason": "r", "verdict": "accept", "helpfulness": 3, "guidelines_sha256": "abc"}, "guidelines_sha256"),
])
def test_an_adjudication_missing_a_field_is_refused_and_nothing_is_written(store, kwargs, message):
    store.add_items([_item("a")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "reject", 2)
    with pytest.raises(InputError, match=message):
        store.add_adjudication(1, "rm", **kwargs)
    assert store.counts()["adjudications"] == 0


def test_an_item_its_reviewers_agree_on_is_not_adjudicated(store):
    store.add_items([_item("a"), _item("b")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "accept", 2)
    store.add_label(2, "ann", "accept", 4)
    for item_id in (1, 2):
        with pytest.raises(InputError, match=f"item {item_id}: its reviewers' current labels agree"):
            store.add_adjudication(item_id, "rm", reason="r", verdict="reject", helpfulness=1)
    with pytest.raises(InputError, match="author: empty"):
        store.add_adjudication(1, "", reason="r", verdict="reject", helpfulness=1)
    with pytest.raises(InputError, match="no review item 9"):
        store.add_adjudication(9, "rm", reason="r", verdict="reject", helpfulness=1)


def test_an_adjudication_decided_on_labels_since_replaced_is_refused(store):
    """The adjudicator is shown ann's accept and bob's reject; bob labels again (reject, toxic) before she
    submits. Her adjudication names the labels she was shown and is refused, naming bob: it would have been
    stamped after his label, so not stale, and decided over a toxic flag she never saw."""
    store.add_items([_item("a"), _item("p", "pairwise")])
    shown = [store.add_label(1, "ann", "accept", 4).id, store.add_label(1, "bob", "reject", 2).id]
    assert [label.id for label in store.disputed_items()[0].labels] == shown
    store.add_label(1, "bob", "reject", 1, {"toxic": True})
    with pytest.raises(LabelsChanged, match=r"the \[1, 2\] the adjudication was decided on \(bob labelled it since\); "
                                            r"nothing was saved") as refused:
        store.add_adjudication(1, "rm", reason="bob is right", verdict="reject", helpfulness=2, decided_on=shown)
    assert refused.value.reviewers == ("bob",) and store.counts()["adjudications"] == 0
    now = [label.id for label in store.item_labels(1)]
    saved = store.add_adjudication(1, "rm", reason="bob is right", verdict="reject", helpfulness=1,
                                   flags={"toxic": True}, decided_on=now, client_key="k1")
    assert saved.flags["toxic"] and 1 not in store.stale_adjudications()
    # A retry of that write (its acknowledgement lost) after ann's new label returns the stored row.
    store.add_label(1, "ann", "reject", 2)
    assert store.add_adjudication(1, "rm", reason="bob is right", verdict="reject", helpfulness=1,
                                  flags={"toxic": True}, decided_on=now, client_key="k1") == saved
    # A pair: a third reviewer's judgment is a change too. Without decided_on (a script): the labels as written.
    store.add_judgment(2, "ann", "A")
    store.add_judgment(2, "bob", "B")
    seen = [judgment.id for judgment in store.item_labels(2)]
    store.add_judgment(2, "cy", "tie")
    with pytest.raises(LabelsChanged, match=r"\(cy labelled it since\)"):
        store.add_adjudication(2, "rm", reason="A answers it", preference="A", decided_on=seen)
    assert store.add_adjudication(2, "rm", reason="A answers it", preference="A").preference == "A"
    with pytest.raises(InputError, match="decided_on: "):
        store.add_adjudication(2, "rm", reason="r", preference="A", decided_on="12")


def test_an_adjudication_never_supersedes_one_its_author_was_not_shown(store):
    """meg is shown item 1 without an adjudication; cy adjudicates it before meg submits. meg's would supersede
    cy's, which she never saw: refused, naming cy. Decided again over cy's (replacing its id), it is saved."""
    store.add_items([_item("a")])
    shown = [store.add_label(1, "ann", "accept", 4).id, store.add_label(1, "bob", "reject", 2).id]
    cys = store.add_adjudication(1, "cy", reason="ann is right", verdict="accept", helpfulness=4)
    with pytest.raises(LabelsChanged, match=rf"replacing: item 1's adjudication is now {cys.id} by cy, not None, "
                                            r"the one shown; nothing was saved") as refused:
        store.add_adjudication(1, "meg", reason="bob is right", verdict="reject", helpfulness=2, decided_on=shown,
                               replacing=None)
    assert (refused.value.adjudicator, refused.value.reviewers) == ("cy", ())
    assert store.adjudication(1).author == "cy"
    saved = store.add_adjudication(1, "meg", reason="bob is right", verdict="reject", helpfulness=2,
                                   decided_on=shown, replacing=cys.id)
    assert (store.adjudication(1).id, saved.supersedes) == (saved.id, cys.id)
    with pytest.raises(LabelsChanged, match=rf"not {cys.id}, the one shown"):  # cy, again from the old showing
        store.add_adjudication(1, "cy", reason="r", verdict="accept", helpfulness=4, replacing=cys.id)
    with pytest.raises(InputError, match="replacing: 'latest' is not an adjudication id"):
        store.add_adjudication(1, "cy", reason="r", verdict="accept", helpfulness=4, replacing="latest")


def test_an_adjudicator_who_labelled_the_item_does_not_decide_it(store):
    store.add_items([_item("a")])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "bob", "reject", 2)
    with pytest.raises(InputError, match=r"author: ann labelled item 1 \(label 1\); an adjudicator who labelled the "
                                         r"item does not decide it"):
        store.add_adjudication(1, "ann", reason="mine is right", verdict="accept", helpfulness=4)
    assert store.counts()["adjudications"] == 0
    assert store.add_adjudication(1, "rm", reason="bob is right", verdict="reject", helpfulness=2).author == "rm"


def test_labels_carry_the_guidelines_hash_and_lead_time_and_progress_reports_the_median(store):
    store.add_items([_item(k) for k in "abc"] + [_item("p", "pairwise")])
    store.assign(["ann", "bob"], 2)
    label = store.add_label(1, "ann", "accept", 4, guidelines_sha256=GUIDE, lead_time_s=10.0)
    store.add_label(2, "ann", "accept", 4, lead_time_s=30.0)
    store.add_label(2, "ann", "reject", 4, lead_time_s=20.0)  # the correction's time is the current one
    judged = store.add_judgment(4, "ann", "A", guidelines_sha256=GUIDE, lead_time_s=50.0)
    store.add_label(1, "bob", "accept", 4)
    assert (label.guidelines_sha256, label.lead_time_s) == (GUIDE, 10.0)
    assert store.my_label(4, "ann") == judged and judged.guidelines_sha256 == GUIDE
    assert store.progress(required_reviewers=2).lead_time_s == {"ann": 20.0, "bob": None}
    for bad in ("ABCDEF" * 10 + "ABCD", "xyz"):
        with pytest.raises(InputError, match="guidelines_sha256"):
            store.add_label(3, "ann", "accept", 4, guidelines_sha256=bad)
    for bad in (-1.0, float("nan"), float("inf"), True):
        with pytest.raises(InputError, match="lead_time_s"):
            store.add_judgment(4, "bob", "A", lead_time_s=bad)
    history = store.history_frame()
    assert set(history["guidelines_sha256"].dropna()) == {GUIDE}


def test_item_messages_round_trip_and_stay_out_of_the_content_key(store):
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<b>hi</b>"},
             {"role": "answer", "a": "A's", "b": "B's"}]
    ids = store.add_items([NewItem(**{**_item("p", "pairwise").__dict__, "messages": turns}), _item("a")])
    assert store.item(ids[0]).messages == turns
    assert store.item(ids[1]).messages is None
    # The same content with messages added later is the same item (the content key is enqueue's, not the store's).
    assert store.add_items([NewItem(**{**_item("a").__dict__, "messages": turns})]) == []
    with pytest.raises(InputError, match="messages: expected a list of objects"):
        store.add_items([NewItem(**{**_item("b").__dict__, "messages": ["user: hi"]})])
    assert store.counts()["items"] == 2


def test_the_adjudicator_sees_every_current_label(store):
    store.add_items([_item("a")])
    store.add_label(1, "bob", "reject", 2)
    store.add_label(1, "ann", "accept", 4)
    store.add_label(1, "ann", "accept", 5)
    assert [(label.reviewer, label.helpfulness) for label in store.item_labels(1)] == [("ann", 5), ("bob", 2)]
