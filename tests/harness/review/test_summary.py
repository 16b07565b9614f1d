"""The review record the gate reads: counts, rates, agreement, de-blinded pairwise outcomes; no secrets."""

from __future__ import annotations

import json
import math

import pytest
from review_support import BASELINE, CANDIDATE, TOKENS

from harness.app.cli import main
from harness.core.store import read_record
from harness.review.enqueue import enqueue
from harness.review.record import ReviewRecord
from harness.review.store import open_store
from harness.review.summary import candidate_strata, summarise_review


def _label_everything(config, run_store):
    """ann accepts every single item, bob rejects the first two; both prefer the candidate on every pair,
    except bob calls the last pair a tie. ann first accepts item 1 as toxic, then corrects it."""
    review = open_store(config, run_store)
    singles = [q.item_id for q in review.queue("ann", 1000) if q.kind == "single"]
    pairs = [q.item_id for q in review.queue("ann", 1000) if q.kind == "pairwise"]
    review.add_label(singles[0], "ann", "accept", 5, {"toxic": True})
    for i, item in enumerate(singles):
        review.add_label(item, "ann", "accept", 4, {"toxic": i == 0})
        review.add_label(item, "bob", "reject" if i < 2 else "accept", 2, {"toxic": i == 0})
    from sqlalchemy import select

    from harness.review.store import items

    with review.engine.connect() as conn:
        mapping = dict(conn.execute(select(items.c.id, items.c.model_a).where(items.c.id.in_(pairs))).all())
    for i, item in enumerate(pairs):
        cand_side = "A" if mapping[item] == CANDIDATE else "B"
        review.add_judgment(item, "ann", cand_side)
        review.add_judgment(item, "bob", "tie" if i == len(pairs) - 1 else cand_side)
    review.close()
    return singles, pairs


def test_summary_counts_rates_and_pairwise(run_store, config):
    enqueue(config, run_store)
    singles, pairs = _label_everything(config, run_store)
    record = summarise_review(config, run_store)
    n = len(singles)
    assert (record.candidate, record.items_total, record.items_with_quorum) == (CANDIDATE, n, n)
    assert record.labels == 2 * n  # ann's first label on item 1 is superseded, not counted
    assert record.reviewers == 2
    # The item is the unit: bob rejecting the first two items splits their votes, so they are not approved.
    assert record.approval_rate == pytest.approx((n - 2) / n) and record.approval_items == n
    low, high = record.approval_ci
    assert low <= record.approval_rate <= high < 1.0 + 1e-9
    assert record.flag_rates["toxic"] == pytest.approx(2 / (2 * n))
    assert record.flag_rates["hallucination"] == 0.0
    # kappa on accept/reject: ann constant "accept" -> p_e = p_o -> 0 exactly.
    assert record.agreement.statistic == "cohen_kappa" and record.agreement.value == pytest.approx(0.0)
    assert record.agreement_per_flag["toxic"].value == pytest.approx(1.0)
    [outcome] = record.pairwise
    assert (outcome.baseline, outcome.wins, outcome.losses, outcome.ties) == (BASELINE, 2 * len(pairs) - 1, 0, 1)
    assert outcome.win_rate == pytest.approx((2 * len(pairs) - 0.5) / (2 * len(pairs)))
    assert record.pairwise_judgments == 2 * len(pairs)
    assert record.helpfulness_mean == pytest.approx(3.0)
    metrics = {(v.metric, v.attribute): v.value for v in record.metric_values()}
    assert metrics[("review.approval_rate", None)] == record.approval_rate
    assert {s.stratum for s in record.approval_strata} <= {a for m, a in metrics if m == "review.approval_rate"}
    assert metrics[("review.pairwise_win_rate", BASELINE)] == outcome.win_rate
    # Written where the gate reads it, and without any token.
    path = run_store.root / "review" / "record.json"
    assert read_record(path, ReviewRecord) == record
    text = path.read_text()
    assert not any(token in text for token in TOKENS.values())
    assert json.loads(text)["config"]["reviewers"] == [{"name": "ann", "role": "reviewer"},
                                                       {"name": "bob", "role": "reviewer"},
                                                       {"name": "meg", "role": "release_manager"}]


def _wilson(x: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval by its formula, independently of scipy."""
    p = x / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def _label_by_stratum(config, run_store, verdicts):
    """``verdicts(stratum, index within the stratum)`` -> (ann's, bob's) verdict, or None to leave it unlabelled."""
    review = open_store(config, run_store)
    seen: dict[str, int] = {}
    for item, stratum in sorted(candidate_strata(review, CANDIDATE).items()):
        pair = verdicts(stratum, seen.setdefault(stratum, 0))
        seen[stratum] += 1
        for reviewer, verdict in zip(("ann", "bob"), pair or ()):
            if verdict is not None:
                review.add_label(item, reviewer, verdict, 3)
    review.close()


def test_approval_per_stratum_and_weighted_by_queue_share(run_store, config):
    """The queue (17 items): flagged 3, random 3, worst:acc 5, worst:correct 3, worst:errors 1, worst:toxicity 2.
    Both reviewers reject every flagged item and split on the first random one; everything else is accepted."""
    enqueue(config, run_store)
    _label_by_stratum(config, run_store, lambda stratum, i: ("reject", "reject") if stratum == "flagged" else
                      ("accept", "reject") if stratum == "random" and i == 0 else ("accept", "accept"))
    record = summarise_review(config, run_store)
    by = {s.stratum: s for s in record.approval_strata}
    assert {name: (s.queued, s.items, s.approved) for name, s in by.items()} == {
        "flagged": (3, 3, 0), "random": (3, 3, 2), "worst:acc": (5, 5, 5), "worst:correct": (3, 3, 3),
        "worst:errors": (1, 1, 1), "worst:toxicity": (2, 2, 2)}
    assert {name: s.weight for name, s in by.items()} == pytest.approx(
        {"flagged": 3 / 17, "random": 3 / 17, "worst:acc": 5 / 17, "worst:correct": 3 / 17, "worst:errors": 1 / 17,
         "worst:toxicity": 2 / 17})
    assert (by["flagged"].ci_low, by["flagged"].ci_high) == pytest.approx((0.0, 0.5614970317550454))
    assert (by["random"].ci_low, by["random"].ci_high) == pytest.approx(_wilson(2, 3))
    assert {s.interval for s in by.values()} == {"wilson"}
    # Model-level: sum of weight x rate = (0 * 3 + 2/3 * 3 + 11) / 17; MOVER's interval from the strata's Wilson.
    assert record.approval_rate == pytest.approx(13 / 17)
    low = 13 / 17 - math.sqrt(sum((s.weight * (s.rate - _wilson(s.approved, s.items)[0])) ** 2 for s in by.values()))
    high = 13 / 17 + math.sqrt(sum((s.weight * (_wilson(s.approved, s.items)[1] - s.rate)) ** 2 for s in by.values()))
    assert record.approval_ci == pytest.approx((low, high))
    assert (record.approval_interval, record.approval_confidence, record.approval_items) == ("mover-wilson", 0.95, 17)
    assert "share of the candidate's queued single-output items" in record.approval_weights
    values = {v.attribute: v for v in record.metric_values() if v.metric == "review.approval_rate"}
    assert (values[None].n, values[None].interval, values[None].value) == (17, "mover-wilson", record.approval_rate)
    assert (values["flagged"].value, values["flagged"].n, values["flagged"].interval) == (0.0, 3, "wilson")


def test_approval_uses_the_labelled_items_and_says_which_strata_weigh(run_store, config):
    """ann labels 2 of the 5 worst:acc items (accepts both) and the 3 flagged ones (accepts one): the rate uses
    those 5 items, its n is 5 (not the 0 items with a quorum), and the strata weigh by their queued items,
    5 : 3, not by the labelled 2 : 3 (which would give the pooled 3/5)."""
    enqueue(config, run_store)
    _label_by_stratum(config, run_store, lambda stratum, i: (
        ("accept",) if stratum == "worst:acc" and i < 2 else ("accept" if i == 0 else "reject",)
        if stratum == "flagged" else None))
    record = summarise_review(config, run_store)
    assert (record.items_with_quorum, record.approval_items) == (0, 5)
    by = {s.stratum: s for s in record.approval_strata}
    assert {name: (s.queued, s.items, s.approved, s.weight) for name, s in by.items()} == {
        "flagged": (3, 3, 1, 3 / 8), "worst:acc": (5, 2, 2, 5 / 8)}
    assert record.approval_rate == pytest.approx(5 / 8 * 1 + 3 / 8 * (1 / 3))
    assert "strata with no label yet carry no weight: random, worst:correct, worst:errors, worst:toxicity" in \
        record.approval_weights
    [value] = [v for v in record.metric_values() if v.metric == "review.approval_rate" and v.attribute is None]
    assert value.n == 5
    assert all(v.n == 5 for v in record.metric_values() if v.metric.startswith("review.flag_rate."))


def test_summary_before_any_label(run_store, config):
    enqueue(config, run_store)
    record = summarise_review(config, run_store)
    assert (record.labels, record.approval_rate, record.agreement, record.flag_rates) == (0, None, None, {})
    assert record.items_total > 0 and record.items_with_quorum == 0
    assert record.metric_values() == []


def test_cli_enqueue_summary_export(run_store, tmp_path, capsys):
    import pandas as pd
    import yaml

    cfg = tmp_path / "pipeline.yaml"
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(yaml.safe_dump({"ann": "t1", "bob": "t2"}))
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann"}, {"name": "bob"}],
                                                           "tokens_file": "tokens.yaml"}}))
    home = str(run_store.home)
    assert main(["review", "enqueue", "--config", str(cfg), "--home", home]) == 0
    assert f"review [{CANDIDATE}]: queued" in capsys.readouterr().out
    assert (run_store.root / "review" / "review.db").exists()
    from harness.app.config import load_pipeline_config

    config = load_pipeline_config(cfg).review
    assert config.tokens() == {"ann": "t1", "bob": "t2"}
    _label_everything(config, run_store)
    assert main(["review", "summary", "--config", str(cfg), "--home", home]) == 0
    out = capsys.readouterr().out
    assert "items with quorum" in out and f"blind pairwise vs {BASELINE}" in out
    assert "disputed items: 3 (0 adjudicated, 3 waiting for adjudication)" in out  # 2 rejects, 1 tie
    review = open_store(config, run_store)
    review.add_adjudication(review.disputed_items()[0].item_id, "meg", reason="it answers the question", verdict="accept",
                            helpfulness=4)
    review.close()
    assert main(["review", "summary", "--config", str(cfg), "--home", home]) == 0
    assert "disputed items: 3 (1 adjudicated, 2 waiting for adjudication)" in capsys.readouterr().out
    for fmt in ("csv", "parquet"):
        out_file = tmp_path / f"labels.{fmt}"
        assert main(["review", "export", "--config", str(cfg), "--home", home, "--out", str(out_file)]) == 0
        frame = pd.read_csv(out_file) if fmt == "csv" else pd.read_parquet(out_file)
        assert len(frame) == len(open_store(config, run_store).history_frame())
        assert {"reviewer", "verdict", "preference", "preferred_model", "superseded"} <= set(frame.columns)
        assert int(frame["superseded"].sum()) == 1
    assert main(["review", "export", "--config", str(cfg), "--home", home, "--out", str(tmp_path / "x.txt")]) == 2
    assert "format: 'txt'" in capsys.readouterr().err


def test_tokens_file_naming_an_unknown_reviewer_is_refused(tmp_path):
    from harness.core.errors import ConfigError
    from harness.review.config import ReviewConfig

    path = tmp_path / "tokens.yaml"
    path.write_text("mallory: x\n")
    with pytest.raises(ConfigError, match=r"tokens.yaml: names not in review.reviewers: \['mallory'\]"):
        ReviewConfig(reviewers=[{"name": "ann"}], tokens_file=str(path)).tokens()


def test_record_declares_its_metrics_with_directions(run_store, config):
    """The names and directions the gate reads from the record's JSON (no registry)."""
    enqueue(config, run_store)
    _label_everything(config, run_store)
    record = summarise_review(config, run_store)
    declared = {m.name: m.higher_is_better for m in record.metrics}
    assert declared == {"review.approval_rate": True, "review.agreement": True, "review.pairwise_win_rate": True,
                        "review.flag_rate.toxic": False, "review.flag_rate.hallucination": False,
                        "review.flag_rate.unhelpful_refusal": False, "review.flag_rate.off_topic": False,
                        "review.judge_agreement": True, "review.judge_agreement_without_ties": True,
                        "review.judge_kappa": True,
                        **{f"review.automatic_flag_agreement.{f}": True
                           for f in ("toxic", "hallucination", "unhelpful_refusal", "off_topic")}}
    assert [m.name for m in record.metrics] == [m.name for m in ReviewRecord.METRICS]
    stored = json.loads((run_store.root / "review" / "record.json").read_text())
    assert {m["name"] for m in stored["metrics"]} == set(declared)
    assert {v["metric"] for v in stored["values"]} <= set(declared)
    assert {v.metric for v in record.metric_values()} == {
        "review.approval_rate", "review.agreement", "review.pairwise_win_rate", *(
            f"review.flag_rate.{f}" for f in ("toxic", "hallucination", "unhelpful_refusal", "off_topic")),
        "review.judge_agreement", "review.judge_agreement_without_ties", "review.judge_kappa",
        "review.automatic_flag_agreement.toxic", "review.automatic_flag_agreement.hallucination"}


def test_the_record_is_rebuilt_only_when_labels_or_items_change(config, run_store):
    """Same labels on the same items: the same record (so the gate's evidence, and its decision, stay the
    same); a new label is a new record."""
    enqueue(config, run_store)
    first = summarise_review(config, run_store, CANDIDATE)
    assert summarise_review(config, run_store, CANDIDATE).record_id == first.record_id
    review = open_store(config, run_store)
    item = review.queue("ann", 1)[0].item_id
    review.add_label(item, "ann", "accept", 4, {})
    review.close()
    labelled = summarise_review(config, run_store, CANDIDATE)
    assert labelled.record_id != first.record_id and labelled.labels == first.labels + 1
    assert read_record(run_store.root / "review", ReviewRecord).record_id == labelled.record_id


def test_a_summary_of_a_run_with_nothing_queued_is_refused_and_creates_no_store(run_store, config):
    """A mistyped run name, or a summary before `review enqueue`: refused, not an empty store and record."""
    from pathlib import Path

    from harness.core.errors import InputError

    with pytest.raises(InputError, match=r"review.db: no review store; run `nift-gate review enqueue` first"):
        summarise_review(config, run_store, CANDIDATE)
    assert not Path(config.database.removeprefix("sqlite:///")).exists()  # the configured SQLite file
    assert not (run_store.root / "review" / "record.json").exists()
