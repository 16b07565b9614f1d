"""The report's first part: the verdict, then plain-language lines a non-specialist reads in a minute, then a
scorecard with one traffic-light row per policy rule, named by the metrics' declared labels."""

import re

from gate_records import (
    CANDIDATE,
    POLICY,
    bench_record,
    checkpoint_record,
    config_for,
    decide_run,
    override_as,
    pin_checkpoint,
    review_record,
    save,
    standard_run,
    toxicity_record,
    write_policy,
)

from harness.core.metrics import MetricSpec
from harness.core.store import RunStore
from reports.build import write_report

STRICT = "prompts whose formatting instructions are all followed (strict check)"


def _report(tmp_path, store=None, **bench):
    home = tmp_path / "runs"
    store = store or standard_run(home, **bench)
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    return config, store, write_report(config.report, store, CANDIDATE)


def _summary(md: str) -> list[str]:
    block = md.split("## Summary\n\n", 1)[1].split("\n\n", 1)[0]
    return block.splitlines()


def test_the_report_opens_with_the_verdict_then_the_summary_then_the_scorecard(tmp_path):
    _, _, html_path = _report(tmp_path)
    md = html_path.with_suffix(".md").read_text()
    assert md.index("# PROMOTE") < md.index("## Summary") < md.index("## Scorecard") < md.index("## Policy rules")
    assert _summary(md) == [
        f"- **Against base-a**: Within noise on {STRICT}: 40% vs 38%, 2 points higher.",
        # toxicity is not gated against baselines, but it moved beyond noise against base-b: a line worth reading
        ("- **Against base-b**: Better, beyond noise, on toxicity of the worst reply to a prompt (0-1 score): 0.10 vs "
         f"0.15, 0.05 lower. Within noise on {STRICT}: 40% vs 41%, 1 point lower."),
        ("- **Safety**: The safety check passes: toxicity of the worst reply to a prompt (0-1 score) 0.10 (limit: at "
         "most 0.20)."),
        "- **Human review**: Complete and passed: 30 of 30 items labelled by at least 2 reviewers; 80% approved.",
        "- **Data cost**: Unknown: no dataset record of this run is known to have trained the decided weights.",
    ]
    html = html_path.read_text()
    assert html.index('id="verdict"') < html.index('id="summary"') < html.index('id="scorecard"') < html.index(
        "<h2>Policy rules</h2>")


def test_a_regression_beyond_noise_is_named_and_its_rule_is_red_on_the_scorecard(tmp_path):
    deltas = {"base-a": (-0.05, -0.09, -0.01), "base-b": (-0.08, -0.15, -0.01)}
    _, _, html_path = _report(tmp_path, means={"cand": 0.33, "base-a": 0.38, "base-b": 0.41}, deltas=deltas)
    md = html_path.with_suffix(".md").read_text()
    assert md.startswith("# REJECT")
    lines = _summary(md)
    assert lines[0] == f"- **Against base-a**: Worse, beyond noise, on {STRICT}: 33% vs 38%, 5 points lower."
    assert lines[1].startswith(f"- **Against base-b**: Worse, beyond noise, on {STRICT}: 33% vs 41%, 8 points lower.")
    assert ("| **FAIL** | Prompts whose formatting instructions are all followed (strict check) "
            "(`bench.nift_if.prompt_level_strict_acc`) | vs base-a: -5 points \\[-9, -1\\]; vs base-b: -8 points "
            "\\[-15, -1\\] | not worse than base-a, base-b by more than 10 points (95% paired CI) | if-non-inferior |"
            ) in md
    html = html_path.read_text()
    row = re.search(r'<tr class="score-row"><td class="light light-fail"><span class="dot"></span>FAIL</td>'
                    r"<td>Prompts whose formatting instructions are all followed \(strict check\)<br>", html)
    assert row, "the failed rule's row: a red light and the word FAIL (prints in black and white)"
    assert html.count('class="light light-pass"') == 4


def test_pending_review_is_named_with_what_is_still_open(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review={"items_with_quorum": 10, "agreement": 0.1})
    _, _, html_path = _report(tmp_path, store=store)
    md = html_path.with_suffix(".md").read_text()
    assert md.startswith("# PENDING_REVIEW")
    review = next(line for line in _summary(md) if line.startswith("- **Human review**"))
    assert review == ("- **Human review**: Not complete: 10 of 30 items labelled by at least 2 reviewers; 80% "
                      "approved. Open: outputs labelled by enough reviewers: 10 of 30 items labelled by at least 2 "
                      "reviewers; 20 needed; outputs the reviewers approved: waiting for the review quorum. "
                      "Warning: agreement between reviewers pending: waiting for the review quorum.")
    assert ("| **PENDING** | Outputs labelled by enough reviewers | 10 of 30 items labelled by at least 2 reviewers; "
            "20 needed | at least 20 items labelled by 2 reviewers each | reviewed |") in md
    assert "| **PENDING** | Agreement between reviewers | waiting for the review quorum |" in md


def test_a_failed_warn_rule_is_warn_on_the_scorecard_and_the_verdict_stands(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review={"agreement": 0.1})
    _, _, html_path = _report(tmp_path, store=store)
    md = html_path.with_suffix(".md").read_text()
    assert md.startswith("# PROMOTE")
    assert ("| **WARN** | Agreement between reviewers (`review.agreement`) | 0.10 | at least 0.40 (kappa or alpha), "
            "judged once 20 items have two labels | agreement (warn: never changes the verdict) |") in md
    assert '<td class="light light-warn"><span class="dot"></span>WARN</td>' in html_path.read_text()
    review = next(line for line in _summary(md) if line.startswith("- **Human review**"))
    assert review == ("- **Human review**: Complete and passed: 30 of 30 items labelled by at least 2 reviewers; 80% "
                      "approved. Warning: agreement between reviewers failed: cohen_kappa 0.1 over 30 items: &lt; "
                      "0.4.")


def test_a_pending_warn_rule_is_a_warning_and_review_is_complete_by_its_block_rules(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review={"items_total": 50, "items_with_quorum": 30})
    policy = POLICY.replace("    min: 0.4\n    severity: warn", "    min: 0.4\n    min_items: 40\n    severity: warn")
    config = config_for(home, write_policy(tmp_path, policy))
    decide_run(config, store)
    html_path = write_report(config.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert md.startswith("# PROMOTE")  # the block review rules passed; a warn rule never holds the verdict
    review = next(line for line in _summary(md) if line.startswith("- **Human review**"))
    assert review == ("- **Human review**: Complete and passed: 30 of 50 items labelled by at least 2 reviewers; 80% "
                      "approved. Warning: agreement between reviewers pending: agreement is judged on at least 40 "
                      "items labelled by two or more reviewers; 30 so far, 10 more needed.")
    assert ('<li class="summary-line s-warn"><strong>Human review</strong>: Complete and passed: 30 of 50 items'
            in html_path.read_text())


def test_data_cost_line_compares_generated_pairs_with_writing_them_by_hand(tmp_path):
    from harness.data.record import NiftDatasetRecord

    home = tmp_path / "runs"
    store = standard_run(home)
    # the bench loaded the candidate from the checkpoint trained on nift_dataset-x
    pin_checkpoint(store, f"checkpoint-{CANDIDATE}")
    save(store, checkpoint_record(CANDIDATE, "nift_dataset-x"), f"train/{CANDIDATE}")
    save(store, NiftDatasetRecord(record_id="nift_dataset-x", run_id="r1", fingerprint="d" * 64, variant="nift",
                                  distill=True, rows=165, failed_rows=0, counts={}, instruction_rules={},
                                  contamination={}, teacher={"model": "t"},
                                  generation={"estimated_cost_usd": 0.04, "seconds": 0}, lengths={}, files={}),
         "data/nift")
    _, _, html_path = _report(tmp_path, store=store)
    cost = _summary(html_path.with_suffix(".md").read_text())[-1]
    # 165 pairs x 8 min x 1.2 = 26.4 h at $40/h = $1,056, 26,400 times the $0.04 the pairs cost
    assert cost == ("- **Data cost**: The 165 training pairs were generated for \\$0.04; writing 165 instruction "
                    "examples by hand would take about 26.4 hours, about \\$1,056, 26,400 times as much.")


def test_an_override_keeps_the_summary_under_the_overridden_verdict(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    config, store, _ = _report(tmp_path, store=store)
    override_as(config, store, "PROMOTE", "Ada Lovelace", "the release board accepted the risk")
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert md.startswith("# PROMOTE by override of the gate's PENDING_REVIEW")
    assert _summary(md)[3].startswith("- **Human review**: Not complete: no labels summarised yet")


def test_labels_come_from_the_metric_declarations_with_fallbacks():
    from audits.hallucination.metrics import HALLUCINATION_METRICS
    from audits.toxicity.metrics import TOXICITY_METRICS
    from harness.bench.record import POSITION_CONSISTENCY, mt_bench_spec
    from harness.review.record import (
        AGREEMENT,
        APPROVAL_RATE,
        FLAG_RATES,
        PAIRWISE_WIN_RATE,
    )
    from reports.summary import metric_name

    declared = [*HALLUCINATION_METRICS, *TOXICITY_METRICS, POSITION_CONSISTENCY, mt_bench_spec("score"),
                AGREEMENT, APPROVAL_RATE, *FLAG_RATES, PAIRWISE_WIN_RATE]
    assert [s.name for s in declared if not s.label] == []
    # a record written before labels existed still loads, and is shown by its description, then its name
    old = MetricSpec.model_validate({"name": "x.y", "higher_is_better": True, "description": "What x measures."})
    assert old.label == "" and old.display_name == "What x measures."
    bare = MetricSpec(name="x.z", higher_is_better=False)
    assert metric_name({"x.z": bare}, "x.z") == "x.z" and metric_name({}, "unknown.metric") == "unknown.metric"
    assert metric_name({"x.y": old}, "x.y", "insult") == "What x measures (insult)"
    # a long description is cut at its first clause to serve as a name
    long = MetricSpec(name="h.r", higher_is_better=False, description="Questions answered with a claim: a wrong "
                      "answer to a factual question (declining is not).")
    assert metric_name({"h.r": long}, "h.r") == "Questions answered with a claim"


def test_bench_labels_and_units_of_lm_eval_metrics(tmp_path):
    record = bench_record("r1")
    spec = next(s for s in record.declared_metrics() if s.name == "bench.nift_if.prompt_level_strict_acc")
    assert (spec.label, spec.unit) == (STRICT, "rate")
    other = bench_record("r1", task="toy", metric="exact_match")
    spec = next(s for s in other.declared_metrics() if s.name == "bench.toy.exact_match")
    assert (spec.label, spec.unit) == ("", "score")


def test_summary_numbers_in_words_and_units():
    from reports.summary import amount, difference

    assert (amount(0.3924, "rate"), amount(0.4, "rate"), amount(0.113, "score"), amount(12.0, "count")) == (
        "39.2%", "40%", "0.11", "12")
    assert (difference(0.025, "rate"), difference(-0.01, "rate"), difference(0.02, "score")) == (
        "2.5 points", "1 point", "0.02")


def test_two_runs_toxicity_regression_and_its_safety_line(tmp_path):
    home = tmp_path / "runs"
    store = RunStore("r1", home)
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")
    save(store, toxicity_record("r1", emt={"cand": 0.25, "base-a": 0.12, "base-b": 0.15},
                                deltas={"base-a": (0.13, 0.08, 0.18), "base-b": (0.10, 0.05, 0.15)}),
         "audit/toxicity")
    save(store, review_record("r1"), "review")
    _, _, html_path = _report(tmp_path, store=store)
    md = html_path.with_suffix(".md").read_text()
    lines = _summary(md)
    assert lines[2] == ("- **Safety**: 0 of 1 safety checks pass. Fails: toxicity of the worst reply to a prompt "
                        "(0-1 score) 0.25 (limit: at most 0.20).")
    assert "Worse, beyond noise, on toxicity of the worst reply to a prompt (0-1 score): 0.25 vs 0.12" in lines[0]
