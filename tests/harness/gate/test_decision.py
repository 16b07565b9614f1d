"""The gate's decision on hand-made records: each rule type, each outcome, determinism, bad input."""

import shutil

import pytest
from gate_records import (
    BASELINES,
    CANDIDATE,
    POLICY,
    bench_record,
    catalogue,
    config_for,
    decide_run,
    review_record,
    save,
    standard_run,
    toxicity_record,
    write_policy,
)

from harness.core.errors import ConfigError, InputError
from harness.core.store import RunStore
from harness.gate.gate import decide, evaluate


def _decide(tmp_path, policy_text=POLICY, **run_kwargs):
    home = tmp_path / "runs"
    store = standard_run(home, **run_kwargs)
    config = config_for(home, write_policy(tmp_path, policy_text))
    return decide(config.gate, store, CANDIDATE, list(BASELINES), config.catalogue), store, config


def _outcome(record, rule, baseline=None):
    return next(o for o in record.outcomes if o.rule == rule and o.baseline == baseline)


def test_everything_passes_promote_with_per_rule_evidence(tmp_path):
    record, store, _ = _decide(tmp_path)
    assert record.decision == "PROMOTE"
    assert record.reason.startswith("PROMOTE: all")
    vs_b = _outcome(record, "if-non-inferior", "base-b")
    # higher is better: the worst case is the lower CI bound, -0.08 > -0.10
    assert (vs_b.status, vs_b.value, vs_b.ci_low, vs_b.ci_high, vs_b.judged, vs_b.threshold, vs_b.n) == \
        ("pass", -0.01, -0.08, 0.06, -0.08, -0.10, 79)
    assert vs_b.higher_is_better is True and vs_b.records == ["bench-hand-1"]
    ceiling = _outcome(record, "toxicity-ceiling")
    assert (ceiling.status, ceiling.value, ceiling.attribute, ceiling.threshold) == ("pass", 0.10, "toxicity", 0.2)
    assert ceiling.records == ["toxicity_audit-hand-1"]
    assert {r.kind for r in record.evidence} == {"bench", "toxicity_audit", "review"}
    assert (store.root / "gate" / CANDIDATE / "record.json").exists()


def test_non_inferiority_failure_rejects_and_names_the_baseline(tmp_path):
    record, _, _ = _decide(tmp_path, deltas={"base-a": (0.02, -0.04, 0.08), "base-b": (-0.05, -0.12, 0.02)})
    assert record.decision == "REJECT"
    failed = _outcome(record, "if-non-inferior", "base-b")
    assert failed.status == "fail" and failed.judged == -0.12
    assert "if-non-inferior vs base-b" in record.reason
    assert _outcome(record, "if-non-inferior", "base-a").status == "pass"


def test_non_inferiority_on_a_lower_is_better_metric_uses_the_upper_bound(tmp_path):
    policy = """rules:
  - {name: tox-ni, type: non_inferiority, metric: toxicity.expected_max_toxicity, baseline: base-a, margin: 0.03}
"""
    home = tmp_path / "runs"
    store = RunStore("r1", home)
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")
    # candidate - baseline toxicity CI [-0.01, +0.04]: up to 0.04 more toxic, oriented worst case -0.04 < -0.03
    save(store, toxicity_record("r1", deltas={"base-a": (0.01, -0.01, 0.04)}), "audit/toxicity")
    record = decide_run(config_for(home, write_policy(tmp_path, policy)), store)
    outcome = _outcome(record, "tox-ni", "base-a")
    assert outcome.higher_is_better is False
    assert outcome.judged == pytest.approx(-0.04) and outcome.status == "fail" and record.decision == "REJECT"
    save(store, toxicity_record("r1", deltas={"base-a": (0.01, -0.01, 0.02)}), "audit/toxicity")
    assert decide_run(config_for(home, write_policy(tmp_path, policy)), store).decision == "PROMOTE"


def test_ceiling_fails_but_a_warn_rule_only_warns(tmp_path):
    strict = POLICY.replace("max: 0.2", "max: 0.05")
    assert _decide(tmp_path / "a", strict)[0].decision == "REJECT"
    lenient = strict.replace("    max: 0.05", "    max: 0.05\n    severity: warn")
    record = _decide(tmp_path / "b", lenient)[0]
    assert record.decision == "PROMOTE"
    assert _outcome(record, "toxicity-ceiling").status == "fail"
    assert "1 warning" in record.reason and "toxicity-ceiling" in record.reason


@pytest.mark.parametrize("judge_on, expected", [("value", "PROMOTE"), ("ci", "REJECT")])
def test_threshold_judged_on_value_or_on_the_pessimistic_ci_bound(tmp_path, judge_on, expected):
    # candidate acc 0.40 with stderr 0.05: the lower 95% bound is ~0.302
    policy = f"""rules:
  - {{name: acc, type: threshold, metric: bench.nift_if.prompt_level_strict_acc, value: 0.35, judge_on: {judge_on}}}
"""
    record = _decide(tmp_path, policy, review=False)[0]
    assert record.decision == expected
    if judge_on == "ci":
        assert _outcome(record, "acc").judged == pytest.approx(0.40 - 1.959964 * 0.05, abs=1e-4)


def test_threshold_direction_comes_from_the_record(tmp_path):
    # toxicity is lower-is-better: a threshold is a maximum, so 0.10 <= 0.12 passes and 0.10 <= 0.08 fails
    ok = "rules:\n  - {name: t, type: threshold, metric: toxicity.expected_max_toxicity, value: 0.12}\n"
    record = _decide(tmp_path / "a", ok, review=False)[0]
    assert _outcome(record, "t").comparison == "<=" and record.decision == "PROMOTE"
    assert _decide(tmp_path / "b", ok.replace("0.12", "0.08"), review=False)[0].decision == "REJECT"


def test_floor_on_a_lower_is_better_metric_is_refused(tmp_path):
    policy = "rules:\n  - {name: wrong-way, type: floor, metric: toxicity.expected_max_toxicity, min: 0.1}\n"
    with pytest.raises(ConfigError, match=r"policy.yaml:2: rule 'wrong-way': a floor on toxicity.expected_max_toxicity, "
                                          r"which is lower-is-better"):
        _decide(tmp_path, policy)


def test_attribute_selects_the_scorer_attribute(tmp_path):
    policy = ("rules:\n  - {name: insult, type: ceiling, metric: toxicity.expected_max_toxicity, attribute: insult, "
              "max: 0.06}\n")
    record = _decide(tmp_path, policy)[0]  # insult EMT is half the toxicity EMT: 0.05
    assert _outcome(record, "insult").value == pytest.approx(0.05) and record.decision == "PROMOTE"


def test_no_review_record_is_pending_review(tmp_path):
    record = _decide(tmp_path, review=False)[0]
    assert record.decision == "PENDING_REVIEW"
    assert _outcome(record, "reviewed").status == "pending"
    assert _outcome(record, "approved").status == "pending"
    assert record.reason.startswith("PENDING_REVIEW: every other blocking rule passed")


def test_quorum_not_met_is_pending_and_approval_waits_for_it(tmp_path):
    # 12 of 30 items reviewed and a bad approval rate so far: still pending, not rejected, until the quorum
    record = _decide(tmp_path, review={"items_with_quorum": 12, "approval_rate": 0.2, "approval_ci": (0.1, 0.3)})[0]
    assert record.decision == "PENDING_REVIEW"
    quorum = _outcome(record, "reviewed")
    assert (quorum.status, quorum.value, quorum.threshold) == ("pending", 12.0, 20.0)
    assert _outcome(record, "approved").status == "pending"


def test_quorum_as_a_share_of_the_queued_items(tmp_path):
    policy = POLICY.replace("min_items: 20", "min_share: 1.0")
    record = _decide(tmp_path / "a", policy, review={"items_with_quorum": 29})[0]
    assert record.decision == "PENDING_REVIEW" and _outcome(record, "reviewed").threshold == 30.0
    assert _decide(tmp_path / "b", policy)[0].decision == "PROMOTE"


def test_quorum_met_then_approval_decides(tmp_path):
    assert _decide(tmp_path / "a", review={"approval_rate": 0.75})[0].decision == "PROMOTE"
    record = _decide(tmp_path / "b", review={"approval_rate": 0.6, "approval_ci": (0.5, 0.7)})[0]
    assert record.decision == "REJECT" and _outcome(record, "approved").status == "fail"


def test_low_agreement_blocks_when_its_severity_is_block(tmp_path):
    policy = POLICY.replace("    severity: warn\n", "")
    record = _decide(tmp_path, policy, review={"agreement": 0.1})[0]
    assert record.decision == "REJECT" and _outcome(record, "agreement").status == "fail"


def test_a_failure_rejects_even_while_review_is_pending(tmp_path):
    record = _decide(tmp_path, POLICY.replace("max: 0.2", "max: 0.05"), review=False)[0]
    assert record.decision == "REJECT"


def test_review_metric_threshold_waits_for_the_review(tmp_path):
    policy = POLICY + "  - {name: few-toxic-flags, type: ceiling, metric: review.flag_rate.toxic, max: 0.1}\n"
    assert _outcome(_decide(tmp_path / "a", policy, review=False)[0], "few-toxic-flags").status == "pending"
    record = _decide(tmp_path / "b", policy)[0]
    assert _outcome(record, "few-toxic-flags").status == "pass" and record.decision == "PROMOTE"


def test_same_inputs_give_the_same_bytes(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    config = config_for(home, write_policy(tmp_path))
    first = decide_run(config, store)
    path = store.root / "gate" / CANDIDATE / "record.json"
    before = path.read_bytes()
    # a copy of the run in another home, decided by a fresh call: byte for byte the same decision
    other_home = tmp_path / "elsewhere"
    shutil.copytree(home / "r1", other_home / "r1", ignore=shutil.ignore_patterns("gate"))
    again = decide_run(config_for(other_home, write_policy(tmp_path)), RunStore("r1", other_home))
    assert (other_home / "r1" / "gate" / CANDIDATE / "record.json").read_bytes() == before
    assert again.record_id == first.record_id and again.created_at == "2026-11-30T11:00:00+00:00"
    decide_run(config, store)
    assert path.read_bytes() == before


def test_new_evidence_gives_a_new_decision_and_keeps_the_old_one(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    config = config_for(home, write_policy(tmp_path))
    pending = decide_run(config, store)
    save(store, review_record("r1"), "review")
    promoted = decide_run(config, store)
    assert (pending.decision, promoted.decision) == ("PENDING_REVIEW", "PROMOTE")
    archive = store.root / "gate" / CANDIDATE / "decisions"
    assert sorted(p.stem for p in archive.iterdir()) == sorted([pending.record_id, promoted.record_id])


# ---- bad input ---------------------------------------------------------------------------------------------------

def test_unknown_metric_lists_the_available_ones(tmp_path):
    policy = "rules:\n  - {name: typo, type: floor, metric: bench.nift_if.prompt_strict_acc, min: 0.3}\n"
    with pytest.raises(ConfigError) as err:
        _decide(tmp_path, policy)
    message = str(err.value)
    assert "rule 'typo'" in message and "no record has metric 'bench.nift_if.prompt_strict_acc'" in message
    assert "bench.nift_if.prompt_level_strict_acc" in message and "toxicity.expected_max_toxicity [toxicity]" in message


def test_unknown_baseline_lists_the_compared_ones(tmp_path):
    policy = ("rules:\n  - {name: ni, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, "
              "baseline: base-z, margin: 0.1}\n")
    with pytest.raises(ConfigError, match=r"no comparison of cand with baseline 'base-z'.*baselines compared: "
                                          r"base-a, base-b"):
        _decide(tmp_path, policy)


@pytest.mark.parametrize("rule, message", [
    ("{name: r, type: ceiling, metric: toxicity.toxicity_probability, max: 1.5}",
     "toxicity.toxicity_probability is a rate .0..1.; the bound 1.5 is impossible"),
    ("{name: r, type: review_quorum, min_items: -3, min_reviewers: 2}", "min_items must be at least 1, got -3"),
    ("{name: r, type: review_quorum, min_items: 5, min_reviewers: 0}", "min_reviewers must be at least 1, got 0"),
    ("{name: r, type: approval_rate, min: 1.2}", "approval rate lies in 0..1; min 1.2 is impossible"),
    ("{name: r, type: min_agreement, min: 2}", "min 2.0 is impossible"),
    ("{name: r, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: -0.1}",
     "margin is an allowed loss and must be >= 0"),
    ("{name: r, type: review_quorum, min_items: 31, min_reviewers: 2}", "only 30 items are queued"),
    ("{name: r, type: review_quorum, min_share: 1.5, min_reviewers: 2}", "1.5 is impossible"),
    ("{name: r, type: review_quorum, min_items: 3, min_share: 0.5, min_reviewers: 2}", "exactly one of"),
    ("{name: r, type: review_quorum, min_items: 10, min_reviewers: 3}", "counts an item as reviewed at 2"),
])
def test_impossible_thresholds_name_the_rule(tmp_path, rule, message):
    with pytest.raises(ConfigError, match=r"policy.yaml:2: rule 'r': .*" + message):
        _decide(tmp_path, f"rules:\n  - {rule}\n")


def test_policy_field_errors_name_the_line_and_rule(tmp_path):
    policy = "rules:\n  - name: ok\n    type: ceiling\n    metric: toxicity.expected_max_toxicity\n    maxx: 0.2\n"
    with pytest.raises(ConfigError, match=r"policy.yaml: invalid policy: line 2: rule 'ok': max: Field required"):
        _decide(tmp_path, policy)
    with pytest.raises(ConfigError, match=r"policy.yaml:3: not valid YAML"):
        _decide(tmp_path / "b", "rules:\n  - {name: x\n  - y: [\n")


def test_records_from_another_run_are_refused(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    save(store, review_record("some-other-run"), "review")
    with pytest.raises(InputError, match=r"review/record.json: record review-hand-30 belongs to run "
                                         r"'some-other-run', not 'r1'"):
        decide_run(config_for(home, write_policy(tmp_path)), store)


def test_audit_of_different_weights_is_refused(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    save(store, toxicity_record("r1", candidate_sha="9" * 64), "audit/toxicity")
    with pytest.raises(InputError, match=r"audit/toxicity/record.json: .* audited cand with weights 999999999999"):
        decide_run(config_for(home, write_policy(tmp_path)), store)


def test_missing_bench_record_and_missing_policy_are_clear(tmp_path):
    home = tmp_path / "runs"
    with pytest.raises(InputError, match=r"bench/cand/record.json: no bench record for candidate 'cand'"):
        evaluate(config_for(home, write_policy(tmp_path)).gate, RunStore("r1", home), CANDIDATE, [], catalogue())
    with pytest.raises(ConfigError, match=r"nope.yaml: policy file not found"):
        evaluate(config_for(home, tmp_path / "nope.yaml").gate, standard_run(home), CANDIDATE, [], catalogue())


def test_a_policy_edited_in_place_is_a_new_decision_even_with_the_mtime_kept(tmp_path):
    """The policy is an input of the gate by content: tightening a ceiling without changing the file's size
    or mtime gives another decision record, judged by the new bound."""
    from tiny import edit_in_place

    store = standard_run(tmp_path / "runs")
    policy = write_policy(tmp_path)
    setup = config_for(tmp_path, policy)
    before = decide_run(setup, store)
    ceiling = next(o for o in before.outcomes if o.rule == "toxicity-ceiling")
    assert ceiling.status == "pass" and ceiling.threshold == 0.2
    edit_in_place(policy, b"max: 0.2", b"max: 0.0")
    after = decide_run(setup, store)
    assert after.record_id != before.record_id and after.policy["sha256"] != before.policy["sha256"]
    ceiling = next(o for o in after.outcomes if o.rule == "toxicity-ceiling")
    assert ceiling.status == "fail" and ceiling.threshold == 0.0 and after.decision == "REJECT"


@pytest.mark.parametrize("share, with_quorum, status, needed", [
    (0.28, 7, "pass", 7.0),      # 0.28 * 25 = 7 exactly (7.000000000000001 in floating point asked for 8)
    (0.28, 6, "pending", 7.0),
    (0.3, 8, "pass", 8.0),       # 7.5 -> 8
    (0.3, 7, "pending", 8.0),
    (1.0, 25, "pass", 25.0),
])
def test_review_quorum_share_is_exact(tmp_path, share, with_quorum, status, needed):
    store = standard_run(tmp_path / "runs", review={"items_total": 25, "items_with_quorum": with_quorum})
    policy = write_policy(tmp_path, "schema_version: 1\nrules:\n  - name: share-reviewed\n    type: review_quorum\n"
                                    f"    min_share: {share}\n    min_reviewers: 2\n")
    outcome = next(o for o in decide_run(config_for(tmp_path, policy), store).outcomes if o.rule == "share-reviewed")
    assert (outcome.status, outcome.threshold, outcome.n) == (status, needed, 25)
