"""Filling the queue from bench and audit records: strata, duplicates, blind pairs, bad input."""

from __future__ import annotations

import json

import pytest
from pinning import pin_outputs
from review_support import BASELINE, CANDIDATE, make_run
from sqlalchemy import select

from harness.core.errors import InputError
from harness.review.enqueue import enqueue
from harness.review.store import items, open_store


def _rows(config, run_store):
    review = open_store(config, run_store)
    with review.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(items).order_by(items.c.id))]
    review.close()
    return rows


def test_strata_sizes_and_choices(run_store, tmp_path):
    from review_support import review_config

    config = review_config(tmp_path, worst_k=2, random_per_task=1, pairwise_per_baseline=3)
    result = enqueue(config, run_store)
    rows = _rows(config, run_store)
    by_stratum = {}
    for row in rows:
        by_stratum.setdefault(row["stratum"], []).append(row)
    # Every flagged candidate sample (2 toxic, 1 hallucination); the refusal flag does not queue by default,
    # and the baseline's flagged sample is left out without include_baselines.
    flagged = sorted(r["source_item_id"] for r in by_stratum["flagged"])
    assert flagged == ["closed_book/q2#0", "rtp/p3#0", "rtp/p5#0"]
    # Worst 2 by acc (higher is better): the two items the candidate failed; by errors (lower is better): 5, 2.
    assert sorted(r["source_item_id"] for r in by_stratum["worst:acc"]) == ["hash1", "hash4"]
    assert sorted(r["source_item_id"] for r in by_stratum["worst:errors"]) == ["hash2", "hash5"]
    # Worst 2 toxicity scores: p7 (0.7) and p6 (0.6) are the same text, so one item; p5 already flagged.
    assert [r["source_item_id"] for r in by_stratum["worst:toxicity"]] == ["rtp/p7#0"]
    # "correct" is higher-is-better: its worst is the wrong answer (q1), then the first tie by id (q0).
    assert [r["source_item_id"] for r in by_stratum["worst:correct"]] == ["closed_book/q1#0", "closed_book/q0#0"]
    assert not any(s.startswith("worst:sentence_") for s in by_stratum)  # unlisted scores are not ranked
    # Blind pairs: 3 for the one baseline; the mapping is stored and the answers match it.
    pairs = by_stratum["pairwise"]
    assert len(pairs) == 3
    for row in pairs:
        assert {row["model_a"], row["model_b"]} == {CANDIDATE, BASELINE}
        cand_answer = row["output_a"] if row["model_a"] == CANDIDATE else row["output_b"]
        assert cand_answer.startswith(("first answer", "hi there", "(turn 1) red"))
    assert result.candidate == CANDIDATE
    assert sum(result.added.values()) == len(rows)
    assert all(r["required_reviewers"] == 2 for r in rows)
    assert not any(r["model"] == BASELINE for r in rows if r["kind"] == "single")


def test_rerun_adds_nothing_and_every_item_gets_two_reviewers(run_store, config):
    first = enqueue(config, run_store)
    again = enqueue(config, run_store)
    assert again.added == {} and again.assignments == 0
    # everything queued the first time is now a duplicate too
    assert again.skipped_duplicates == first.skipped_duplicates + sum(first.added.values())
    review = open_store(config, run_store)
    per = review.progress(required_reviewers=config.required_reviewers).per_reviewer
    review.close()
    total = sum(first.added.values())
    assert set(per) == {"ann", "bob"}  # the release manager is not assigned
    assert first.assignments == 2 * total == sum(n for _, n in per.values())


def test_ab_order_cannot_be_recomputed_from_the_public_seed_and_the_texts(tmp_path):
    """A reviewer knows review.seed (it is in the config), the model names and the texts on the page. Until
    now the order was random.Random(f"{seed}:{content key}"): recomputing it for both possible mappings
    de-blinded every pair where the two disagree (2 of 3 in the issue). Now the stored order is no function of
    those: over 3 fresh stores x 8 pairs with the same seed, the old formula must miss at least once (a false
    alarm needs 24 coin flips to agree with it: p = 2**-24)."""
    import random as public

    from review_support import review_config

    from harness.review.enqueue import content_key

    orders, matches = [], []
    for n in range(3):
        store = make_run(tmp_path / f"runs{n}", "r")
        config = review_config(tmp_path / f"c{n}", pairwise_per_baseline=8, seed=0)
        (tmp_path / f"c{n}").mkdir()
        enqueue(config, store)
        pairs = [r for r in _rows(config, store) if r["kind"] == "pairwise"]
        assert len(pairs) == 8  # 6 task items answered by both + 2 pairwise questions
        for row in pairs:
            cand_first = row["model_a"] == CANDIDATE
            cand, base = (row["output_a"], row["output_b"]) if cand_first else (row["output_b"], row["output_a"])
            key = content_key(kind="pairwise", candidate=CANDIDATE, baseline=BASELINE, prompt=row["prompt"],
                              candidate_output=cand, baseline_output=base)
            assert key == row["content_key"]  # the key does not depend on the order
            matches.append((public.Random(f"{config.seed}:{key}").random() < 0.5) == cand_first)
        orders.append({r["source_item_id"]: r["model_a"] for r in pairs})
    assert not all(matches)
    assert {m for order in orders for m in order.values()} == {CANDIDATE, BASELINE}  # both orders occur


def test_missing_hallucination_audit_is_fine(tmp_path, config):
    store = make_run(tmp_path / "runs", "r", hallucination=False, pairwise=False)
    result = enqueue(config, store)
    assert [s.rsplit("/", 2)[-2:] for s in result.sources] == [["bench", CANDIDATE], ["audit", "toxicity"]]
    assert result.added["flagged"] == 2


def test_include_baselines_queues_their_flagged_samples(run_store, tmp_path):
    from review_support import review_config

    config = review_config(tmp_path, include_baselines=True)
    enqueue(config, run_store)
    assert [r["source_item_id"] for r in _rows(config, run_store) if r["model"] == BASELINE] == ["rtp/p0#0"]


def test_malformed_audit_row_names_file_line_and_field(run_store, config):
    path = run_store.stage_dir("audit", "hallucination") / "samples.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["output"]
    lines[1] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    pin_outputs(path.parent)  # as the audit would have written it
    with pytest.raises(InputError, match=r"hallucination/samples.jsonl:2: field output: Field required"):
        enqueue(config, run_store)
    path.write_text(lines[0] + "\n{not json\n")
    pin_outputs(path.parent)
    with pytest.raises(InputError, match=r"samples.jsonl:2: not valid JSON"):
        enqueue(config, run_store)


def test_nothing_to_review_is_a_clear_error(tmp_path, config):
    from harness.core.store import RunStore

    with pytest.raises(InputError, match="no bench record and no audit samples"):
        enqueue(config, RunStore("empty", tmp_path / "runs"))


def test_an_audit_unknown_to_review_code_is_queued(run_store, tmp_path):
    """Any <run>/audit/<name>/ with a record is read the same way: a new audit needs no review code."""
    from review_support import review_config, write_audit

    from harness.core.samples import AuditSample

    rows = [AuditSample(audit="toy", suite="jokes", model=CANDIDATE, role="candidate", item_id=f"j{i}",
                        prompt=f"Tell joke {i}.", output=f"joke {i}", scores={"groan": i / 4},
                        flags={"toxic": i == 1}).model_dump() for i in range(4)]
    write_audit(run_store, "toy", rows)
    config = review_config(tmp_path, random_per_task=0, worst_k=1, audit_scores={"groan": False})
    result = enqueue(config, run_store)
    toy = [r for r in _rows(config, run_store) if r["source"] == "audit/toy"]
    assert [(r["stratum"], r["source_item_id"]) for r in toy] == [("flagged", "jokes/j1#0"),
                                                                 ("worst:groan", "jokes/j3#0")]
    assert {r["source_record_id"] for r in toy} == {"toy-test"}
    assert str(run_store.stage_dir("audit", "toy")) in result.sources


def test_audit_folders_without_a_record_are_not_read(run_store, config):
    """Resume state (audit/_work) and an audit still running (samples, no record yet) are left alone."""
    from harness.core.store import atomic_write_jsonl

    for name in ("_work", "unfinished"):
        atomic_write_jsonl(run_store.stage_dir("audit", name) / "samples.jsonl", [{"not": "an AuditSample"}])
    result = enqueue(config, run_store)
    assert sorted(s.rsplit("/", 1)[-1] for s in result.sources if "/audit/" in s) == ["hallucination", "toxicity"]


def test_audit_score_direction_declared_by_the_record_wins_over_the_config(run_store, tmp_path):
    """review.audit_scores says toxicity is lower-is-better; a record declaring toxicity.rtp.toxicity as
    higher-is-better turns the worst-k around (lowest first)."""
    from review_support import review_config, write_audit

    from harness.core.metrics import MetricSpec
    from harness.core.store import read_jsonl

    folder = run_store.stage_dir("audit", "toxicity")
    write_audit(run_store, "toxicity", read_jsonl(folder / "samples.jsonl"),
                metrics=[MetricSpec(name="toxicity.rtp.toxicity", higher_is_better=True)])
    config = review_config(tmp_path, worst_k=2, random_per_task=0)
    enqueue(config, run_store)
    worst = [r["source_item_id"] for r in _rows(config, run_store) if r["stratum"] == "worst:toxicity"]
    assert worst == ["rtp/p0#0", "rtp/p1#0"]


def test_bench_worst_k_directions_come_from_the_record_without_comparisons(run_store, tmp_path):
    """A bench with no baseline has no paired comparisons: acc, which the record declares (higher is
    better), is still ranked; errors, declared nowhere, is not."""
    from review_support import review_config

    from harness.bench.record import BenchRecord
    from harness.core.store import read_record, write_record

    folder = run_store.stage_dir("bench", CANDIDATE)
    record = read_record(folder, BenchRecord)
    write_record(folder, record.model_copy(update={"comparisons": [], "deltas": []}))
    config = review_config(tmp_path, worst_k=2, random_per_task=0)
    enqueue(config, run_store)
    strata = {r["stratum"] for r in _rows(config, run_store) if r["source"] == "bench/qa"}
    assert "worst:acc" in strata and "worst:errors" not in strata
    assert sorted(r["source_item_id"] for r in _rows(config, run_store) if r["stratum"] == "worst:acc") == [
        "hash1", "hash4"]


def test_pairwise_prompt_is_the_questions_turns_from_the_bench_rows(run_store, tmp_path):
    """The prompt comes from the bench's pairwise rows; the questions file the bench read is gone."""
    from review_support import review_config

    config = review_config(tmp_path, pairwise_per_baseline=8)
    enqueue(config, run_store)
    prompts = {r["source_item_id"]: r["prompt"] for r in _rows(config, run_store) if r["source"] == "bench/pairwise"}
    assert prompts == {"q1": "Say hi.", "q2": "(turn 1) Name a colour.\n\n(turn 2) Another one?"}


def test_pairwise_rows_without_turns_are_a_clear_error(run_store, config):
    from harness.core.store import atomic_write_jsonl, read_jsonl

    path = run_store.stage_dir("bench", CANDIDATE) / "pairwise.jsonl"
    atomic_write_jsonl(path, [{k: v for k, v in row.items() if k != "turns"} for row in read_jsonl(path)])
    pin_outputs(path.parent)
    with pytest.raises(InputError, match=r"pairwise questions \['q1', 'q2'\] have no turns"):
        enqueue(config, run_store)


def test_a_two_turn_pairwise_question_keeps_its_turns_as_messages_in_the_blind_order(run_store, tmp_path):
    """q2 has two turns: the item's messages are each user turn followed by A's and B's answer to it, A and B
    as the stored mapping says; items the bench kept only as text have no messages (the app parses those)."""
    from review_support import review_config

    config = review_config(tmp_path, pairwise_per_baseline=8)
    enqueue(config, run_store)
    rows = _rows(config, run_store)
    [q2] = [r for r in rows if r["source_item_id"] == "q2"]
    answers = {CANDIDATE: ["red", "blue"], BASELINE: ["green", "teal"]}
    a, b = answers[q2["model_a"]], answers[q2["model_b"]]
    assert json.loads(q2["messages_json"]) == [
        {"role": "user", "content": "Name a colour."}, {"role": "answer", "a": a[0], "b": b[0]},
        {"role": "user", "content": "Another one?"}, {"role": "answer", "a": a[1], "b": b[1]}]
    assert all(r["messages_json"] is None for r in rows if r["source"] != "bench/pairwise")
    # the messages are not part of what makes an item new: a second enqueue (a new coin flip) adds nothing
    assert enqueue(config, run_store).added == {}
