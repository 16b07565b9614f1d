"""A client key names one write: repeating it returns the stored row, but a key used again with other content is
refused, never acknowledged with the earlier row (the new decision would be lost without a word)."""

from __future__ import annotations

import pytest

from harness.core.errors import InputError
from harness.review.store import NewItem, ReviewStore


def _item(key: str, kind: str = "single") -> NewItem:
    extra = ({"output_a": "first", "output_b": "second", "model_a": "cand", "model_b": "base"}
             if kind == "pairwise" else {"output": f"output {key}", "model": "cand"})
    return NewItem(kind=kind, stratum="random", source="bench/qa", source_record_id="rec", source_item_id=key,
                   task="qa", candidate="cand", prompt=f"prompt {key}", content_key=key, **extra)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    store = ReviewStore(url)
    store.add_items([_item("a"), _item("p", "pairwise")])
    yield store
    store.close()


@pytest.mark.parametrize("change, differs", [
    ({"verdict": "reject"}, "verdict"),
    ({"helpfulness": 1}, "helpfulness"),
    ({"flags": {"toxic": True}}, "toxic"),
    ({"comment": "on second thought"}, "comment"),
    ({"reviewer": "bob"}, "reviewer"),
])
def test_a_label_reusing_a_client_key_with_other_content_is_refused(store, change, differs):
    first = store.add_label(1, "ann", "accept", 5, {}, "fine", client_key="k1")
    label = {"item_id": 1, "reviewer": "ann", "verdict": "accept", "helpfulness": 5, "flags": {}, "comment": "fine"}
    with pytest.raises(InputError, match=rf"client_key: 'k1' already stored labels row {first.id} \(item 1, by "
                                         rf"ann\), which differs in {differs}; nothing was saved"):
        store.add_label(**{**label, **change}, client_key="k1")
    assert store.counts()["labels"] == 1 and store.my_label(1, "ann") == first
    # An exact retry (the acknowledgement lost) still returns the stored row, whatever its lead time this time.
    assert store.add_label(**label, client_key="k1", lead_time_s=9.0) == first


def test_a_judgment_or_adjudication_reusing_a_client_key_with_other_content_is_refused(store):
    first = store.add_judgment(2, "ann", "A", client_key="j1")
    with pytest.raises(InputError, match="already stored pairwise_judgments row .* differs in preference"):
        store.add_judgment(2, "ann", "B", client_key="j1")
    assert store.add_judgment(2, "ann", "A", client_key="j1") == first
    store.add_judgment(2, "bob", "B")
    adjudication = store.add_adjudication(2, "rm", reason="A answers it", preference="A", client_key="a1")
    with pytest.raises(InputError, match="already stored adjudications row .* differs in reason, preference"):
        store.add_adjudication(2, "rm", reason="B answers it", preference="B", client_key="a1")
    assert store.add_adjudication(2, "rm", reason="A answers it", preference="A", client_key="a1") == adjudication
    assert store.counts()["pairwise_judgments"] == 2 and store.counts()["adjudications"] == 1
