"""A stored review record is reused only while it holds what the label store gives.

The record's fingerprint names the store's state it was made from, not its figures: a record.json edited by hand
(approval raised, ``values`` recomputed through the record class so the gate's own consistency check passes) keeps
its fingerprint. The summary is made again on every call and compared; a stored record that differs is replaced,
with a warning naming the file, and one that differs only in when and by which code it was written is kept.
"""

from __future__ import annotations

import json
import logging

import pytest
from review_support import single_item

from harness.core.store import RECORD_FILE
from harness.review.record import ReviewRecord
from harness.review.store import open_store
from harness.review.summary import summarise_review


def _rejected_by_both(config, store, n: int = 4) -> None:
    review = open_store(config, store)
    ids = review.add_items([single_item(f"k{i}") for i in range(n)])
    for item in ids:
        for reviewer in ("ann", "bob"):
            review.add_label(item, reviewer, "reject", 1, {"toxic": True})
    review.close()


def _approve_everything(data: dict) -> None:
    """p10's edit: approval 0 -> 1 with a CI and strata to match, ``values`` recomputed from the edited fields."""
    data["approval_rate"], data["approval_ci"] = 1.0, [0.95, 1.0]
    for stratum in data["approval_strata"]:
        stratum.update(rate=1.0, approved=stratum["items"], ci_low=0.95, ci_high=1.0)
    data["values"] = []
    data["values"] = [v.model_dump(mode="json") for v in ReviewRecord.model_validate(data).values]


def _empty_values(data: dict) -> None:
    """No values at all: a parsed ReviewRecord fills them from its fields again, the gate reads the file's []."""
    data["values"] = []


def _fewer_flags(data: dict) -> None:
    """Every label flags its output toxic; the edit says none did."""
    assert data["flag_rates"]["toxic"] == 1.0
    data["flag_rates"] = {flag: 0.0 for flag in data["flag_rates"]}
    data["values"] = []
    data["values"] = [v.model_dump(mode="json") for v in ReviewRecord.model_validate(data).values]


@pytest.mark.parametrize("edit", [_approve_everything, _empty_values, _fewer_flags])
def test_an_edited_record_with_a_matching_fingerprint_is_replaced_by_the_stores_summary(config, run_store,
                                                                                        caplog, edit):
    _rejected_by_both(config, run_store)
    made = summarise_review(config, run_store)
    assert made.approval_rate == 0.0
    path = run_store.root / "review" / RECORD_FILE
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2) + "\n")

    with caplog.at_level(logging.WARNING, logger="nift_gate"):
        again = summarise_review(config, run_store)
    assert again.approval_rate == 0.0 and again.fingerprint == made.fingerprint
    on_disk = json.loads(path.read_text())
    assert on_disk["approval_rate"] == 0.0 and on_disk["record_id"] == again.record_id != made.record_id
    assert on_disk["values"] == json.loads(made.model_dump_json())["values"]  # the store's figures, as first made
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and "does not hold what the label store gives now" in warning
    # Made again, it is the same summary: kept as it is now, with no warning.
    caplog.clear()
    before = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="nift_gate"):
        assert summarise_review(config, run_store).record_id == again.record_id
    assert path.read_bytes() == before and not caplog.records


def test_the_fields_that_differ_from_write_to_write_alone_keep_the_stored_record(config, run_store, caplog):
    """The record id, the time, the library versions and the code revision say when and how the record was
    written (a later commit, a streamlit upgrade), not what the labels give: the record stays, bytes and id."""
    _rejected_by_both(config, run_store)
    made = summarise_review(config, run_store)
    path = run_store.root / "review" / RECORD_FILE
    data = json.loads(path.read_text())
    data.update(record_id="review-written-earlier", created_at="2020-01-01T00:00:00+00:00",
                code_revision="0" * 40, versions={**data["versions"], "streamlit": "0.1"})
    path.write_text(json.dumps(data, indent=2) + "\n")
    before = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="nift_gate"):
        kept = summarise_review(config, run_store)
    assert kept.record_id == "review-written-earlier" and kept.approval_rate == made.approval_rate
    assert path.read_bytes() == before and not caplog.records
