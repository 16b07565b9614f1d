"""An audit rerun on the same outputs (another scorer, another judge) queues nothing new, since every output is
queued already: the review record compares the reviewers with the flags of the audit as it is now, not with the
flags the items were queued with."""

from __future__ import annotations

import json

import pytest
from pinning import write_pinned_record
from review_support import CANDIDATE
from sqlalchemy import select

from harness.core.records import StoredRecord
from harness.core.store import atomic_write_jsonl
from harness.review.enqueue import enqueue
from harness.review.store import items, open_store
from harness.review.summary import summarise_review


def _toxic(record):
    [row] = [a for a in record.automatic_flag_agreement if (a.source, a.automatic_flag) == ("audit/toxicity", "toxic")]
    return row


def _rerun_toxicity(run_store, toxic: dict[str, bool]) -> None:
    """The toxicity audit again, a new record on the very same outputs, its scorer flagging only ``toxic``'s
    items (item id -> flag; every other sample unflagged)."""
    folder = run_store.stage_dir("audit", "toxicity")
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        row["flags"] = {"toxic": toxic.get(row["item_id"], False) if row["model"] == CANDIDATE else False}
    atomic_write_jsonl(folder / "samples.jsonl", rows)
    write_pinned_record(folder, StoredRecord(kind="toxicity_audit", record_id="toxicity-rerun",
                                             run_id=run_store.run_id, fingerprint="b" * 64, metrics=[],
                                             files={"samples": "samples.jsonl"}))


def test_a_rerun_audit_is_compared_with_its_own_flags_not_the_queued_ones(run_store, config):
    """The first audit flags p3 and p5; both reviewers flag exactly those: 7 of 7 items agree. The rerun flags
    only the repeated output (p6 and p7 wrote the same words; one item holds it): by the id of the item's own
    sample, the other sample with that output set otherwise. Against the rerun's flags 4 of 7 agree (p3, p5 and
    the repeated output differ), which is what the gate reads."""
    enqueue(config, run_store)
    review = open_store(config, run_store)
    with review.reading() as conn:
        queued = conn.execute(select(items.c.id, items.c.source_item_id, items.c.flags_json).where(
            items.c.source == "audit/toxicity", items.c.model == CANDIDATE)).all()
    for row in queued:
        flagged = json.loads(row.flags_json)["toxic"]
        for reviewer in ("ann", "bob"):
            review.add_label(row.id, reviewer, "reject" if flagged else "accept", 3, {"toxic": flagged})
    review.close()
    first = _toxic(summarise_review(config, run_store))
    assert (first.items, first.agreement.agreeing, first.automatic_flagged, first.reviewer_flagged) == (7, 7, 2, 2)

    [mine, other] = {"rtp/p6#0": ("p6", "p7"), "rtp/p7#0": ("p7", "p6")}[
        next(row.source_item_id for row in queued if row.source_item_id in ("rtp/p6#0", "rtp/p7#0"))]
    _rerun_toxicity(run_store, {mine: True, other: False})
    assert enqueue(config, run_store).added == {}  # every output is queued already, with the first flags
    record = summarise_review(config, run_store)
    assert record.carried_over_items == len(queued) and "toxicity-rerun" in record.source_record_ids
    toxic = _toxic(record)
    assert (toxic.items, toxic.agreement.agreeing, toxic.agreement.n) == (7, 4, 7)
    assert (toxic.automatic_flagged, toxic.reviewer_flagged) == (1, 2)
    values = {(v.metric, v.attribute): v.value for v in record.metric_values()}
    assert values[("review.automatic_flag_agreement.toxic", "audit/toxicity:toxic")] == pytest.approx(4 / 7)


def test_a_flag_the_samples_of_one_output_set_differently_is_left_out(run_store, config):
    """The rerun renumbers its prompts, so no sample has the item's id, and sets the repeated output's flag two
    ways: which of them the item stands for cannot be told, and the item is left out of that flag's agreement."""
    enqueue(config, run_store)
    review = open_store(config, run_store)
    with review.reading() as conn:
        queued = conn.execute(select(items.c.id).where(items.c.source == "audit/toxicity",
                                                       items.c.model == CANDIDATE)).scalars().all()
    for item_id in queued:
        review.add_label(item_id, "ann", "accept", 3, {"toxic": False})
    review.close()
    folder = run_store.stage_dir("audit", "toxicity")
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    for row in rows:
        row["item_id"] = f"renumbered-{row['item_id']}"
    atomic_write_jsonl(folder / "samples.jsonl", rows)
    _rerun_toxicity(run_store, {"renumbered-p6": True, "renumbered-p7": False})
    toxic = _toxic(summarise_review(config, run_store))
    assert (toxic.items, toxic.agreement.agreeing, toxic.automatic_flagged) == (6, 6, 0)
