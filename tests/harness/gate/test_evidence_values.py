"""Stored evidence is checked before it is judged: a record reports only its own stage's metrics and names the
candidate's weights, its numbers are ones a stage could write, and a record whose class can recompute its values
stores exactly those; a block rule that cannot fail is refused like a policy with no block rule."""

import json

import pytest
from gate_records import (
    BASELINES,
    CANDIDATE,
    POLICY,
    catalogue,
    config_for,
    save,
    standard_run,
    toxicity_record,
    write_policy,
)

from harness.core.errors import ConfigError, InputError
from harness.core.metrics import MetricValue
from harness.gate.evidence import collect_evidence
from harness.gate.gate import evaluate
from harness.gate.policy import load_policy
from harness.gate.rules import judge, verdict

TOX = "audit/toxicity/record.json"


def _evaluate(tmp_path, store, policy: str = POLICY):
    setup = config_for(tmp_path / "runs", write_policy(tmp_path, policy))
    return evaluate(setup.gate, store, CANDIDATE, list(BASELINES), setup.catalogue)[0]


def _edit(store, path: str, change) -> None:
    """Rewrite one stored record with ``change(data)`` applied, as a hand edit of its JSON would."""
    file = store.root / path
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data, indent=2))  # json writes NaN and Infinity as bare tokens


def _value(data: dict, metric: str = "toxicity.expected_max_toxicity", attribute: str | None = "toxicity") -> dict:
    return next(v for v in data["values"]
                if v["metric"] == metric and v["model"] == CANDIDATE and v.get("attribute") == attribute)


# ---- a record reports only its own family's metrics, and names the candidate ---------------------------------------

def _shadow_review(approval: float) -> dict:
    return {"schema_version": 1, "kind": "notes_audit", "record_id": "notes-1", "run_id": "r1",
            "created_at": "2026-11-30T10:00:00+00:00", "fingerprint": "0" * 64,
            "metrics": [{"name": "review.approval_rate", "higher_is_better": True}],
            "values": [{"metric": "review.approval_rate", "model": CANDIDATE, "value": approval, "n": 30,
                        "ci_low": 0.95, "ci_high": 1.0}]}


def test_an_audit_declaring_a_review_metric_is_refused_naming_its_file(tmp_path):
    store = standard_run(tmp_path / "runs", review={"approval_rate": 0.5, "approval_ci": (0.35, 0.65)})
    assert _evaluate(tmp_path, store).decision == "REJECT"
    (store.root / "audit" / "notes").mkdir(parents=True)
    (store.root / "audit" / "notes" / "record.json").write_text(json.dumps(_shadow_review(0.99)))
    with pytest.raises(InputError, match=r"audit/notes/record.json: record notes-1 declares review.approval_rate, "
                                         r"outside its own family notes\.\*") as err:
        _evaluate(tmp_path, store)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_the_approval_rate_is_judged_from_the_review_record_alone(tmp_path):
    # Evidence a loader let through: another record's review.approval_rate listed before the review's own.
    store = standard_run(tmp_path / "runs", review={"approval_rate": 0.5, "approval_ci": (0.35, 0.65)})
    metrics = catalogue()
    policy = load_policy(write_policy(tmp_path, POLICY), metrics)
    evidence = collect_evidence(store, CANDIDATE)
    shadow = MetricValue(metric="review.approval_rate", model=CANDIDATE, value=0.99, ci_low=0.95, ci_high=1.0, n=30)
    evidence.values.insert(0, (shadow, "notes-1"))
    outcomes = judge(policy, evidence, list(BASELINES), metrics)
    approved = next(o for o in outcomes if o.rule == "approved")
    assert (approved.status, approved.value, approved.records) == ("fail", 0.5, [evidence.review.record_id])
    assert verdict(outcomes)[0] == "REJECT"


def test_a_review_record_outside_the_review_folder_is_refused(tmp_path):
    store = standard_run(tmp_path / "runs", review=False)
    (store.root / "audit" / "notes").mkdir(parents=True)
    review = json.loads((standard_run(tmp_path / "other").root / "review" / "record.json").read_text())
    (store.root / "audit" / "notes" / "record.json").write_text(json.dumps(review))
    with pytest.raises(InputError, match=r"audit/notes/record.json: a 'review' record under audit/notes/"):
        _evaluate(tmp_path, store)


@pytest.mark.parametrize("change", [
    lambda d: d.pop("models"),
    lambda d: d.update(models=[m for m in d["models"] if m["name"] != CANDIDATE]),
    lambda d: [m["model"].update(sha256="") for m in d["models"]],
], ids=["no models list", "candidate not listed", "no weights hash"])
def test_an_audit_that_names_no_candidate_model_is_refused(tmp_path, change):
    store = standard_run(tmp_path / "runs")
    _edit(store, TOX, change)
    with pytest.raises(InputError, match=rf"{TOX}: record toxicity_audit-hand-1 lists no candidate model 'cand' "
                                         r"with the sha256 of its weights"):
        _evaluate(tmp_path, store)


# ---- stored numbers must be ones a stage could write ----------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({"value": float("-inf"), "ci_low": float("-inf"), "ci_high": float("-inf")}, r"value -inf, .*not a finite"),
    ({"value": float("nan"), "ci_high": float("nan")}, r"value nan, ci_high nan: not a finite number"),
    ({"value": 0.9, "ci_low": float("-inf"), "ci_high": 0.1}, r"ci_low -inf: not a finite number"),
    ({"value": 0.5, "ci_low": 0.6, "ci_high": 0.7}, r"ci_low 0.6 > value 0.5: the CI does not contain the value"),
    ({"value": 0.5, "ci_low": 0.05, "ci_high": 0.15}, r"ci_high 0.15 < value 0.5"),
    ({"value": 0.5, "ci_low": 0.6, "ci_high": 0.4}, r"ci_low 0.6 > ci_high 0.4"),
])
def test_a_value_that_is_not_finite_or_outside_its_ci_is_refused(tmp_path, fields, message):
    store = standard_run(tmp_path / "runs")
    _edit(store, TOX, lambda d: _value(d).update(fields))
    with pytest.raises(InputError, match=rf"{TOX}: record toxicity_audit-hand-1: toxicity.expected_max_toxicity "
                                         rf"\[toxicity\] of cand: {message}"):
        _evaluate(tmp_path, store)


def test_a_rate_outside_zero_to_one_is_refused(tmp_path):
    store = standard_run(tmp_path / "runs")
    _edit(store, TOX, lambda d: _value(d, "toxicity.toxicity_probability").update(value=-0.2, ci_low=-0.3,
                                                                                 ci_high=-0.1))
    with pytest.raises(InputError, match=r"toxicity.toxicity_probability \[toxicity\] of cand: value -0.2 is outside "
                                         r"0..1, the range of a rate"):
        _evaluate(tmp_path, store)


@pytest.mark.parametrize("path, fields, message", [
    (TOX, {"difference": 0.5}, r"toxicity.expected_max_toxicity \[toxicity\] of cand - base-a: ci_high 0.01 < "
                               r"difference 0.5"),
    (TOX, {"confidence": 1.5}, r"toxicity.expected_max_toxicity \[toxicity\] of cand - base-a: confidence 1.5 is "
                               r"not a level in \(0, 1\)"),
    (f"bench/{CANDIDATE}/record.json", {"difference": -1.5, "ci_low": -1.6, "ci_high": -1.4},
     r"bench.nift_if.prompt_level_strict_acc of cand - base-a: difference -1.5 is outside -1..1"),
])
def test_a_delta_its_ci_does_not_contain_or_out_of_range_is_refused(tmp_path, path, fields, message):
    store = standard_run(tmp_path / "runs")
    _edit(store, path, lambda d: next(x for x in d["deltas"] if x["baseline"] == "base-a").update(fields))
    with pytest.raises(InputError, match=rf"{path}: record .*: {message}"):
        _evaluate(tmp_path, store)


# ---- stored values must be what the record's own fields give ------------------------------------------------------

def test_values_edited_away_from_the_records_own_fields_are_refused(tmp_path):
    store = standard_run(tmp_path / "runs")
    save(store, toxicity_record("r1", emt={"cand": 0.5, "base-a": 0.12, "base-b": 0.15}), "audit/toxicity")
    assert _evaluate(tmp_path, store).decision == "REJECT"
    _edit(store, TOX, lambda d: _value(d).update(value=0.1, ci_low=0.05, ci_high=0.15))
    with pytest.raises(InputError, match=rf"{TOX}: record toxicity_audit-hand-1: toxicity.expected_max_toxicity "
                                         r"\[toxicity\] of cand in `values` is stored as 0.1 \[0.05, 0.15\], but the "
                                         r"record's own fields give 0.5 \[0.45, 0.55\]"):
        _evaluate(tmp_path, store)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["values"].remove(_value(d)), r"is missing, though the record's own fields give 0.1"),
    (lambda d: d["values"].append({**_value(d), "attribute": "threat"}),
     r"\[threat\] of cand in `values` is stored as 0.1 .*, which the record's own fields do not give"),
], ids=["value dropped", "value added"])
def test_values_dropped_or_added_by_hand_are_refused(tmp_path, change, message):
    store = standard_run(tmp_path / "runs")
    _edit(store, TOX, change)
    with pytest.raises(InputError, match=rf"{TOX}: .*toxicity.expected_max_toxicity .*{message}"):
        _evaluate(tmp_path, store)


def test_bench_deltas_and_review_values_are_checked_against_their_fields(tmp_path):
    store = standard_run(tmp_path / "runs")
    bench = f"bench/{CANDIDATE}/record.json"
    original = (store.root / bench).read_text()
    _edit(store, bench, lambda d: d["deltas"][0].update(difference=0.3, ci_low=0.25, ci_high=0.35))
    with pytest.raises(InputError, match=rf"{bench}: .*bench.nift_if.prompt_level_strict_acc of cand - base-a in "
                                         r"`deltas` is stored as 0.3 \[0.25, 0.35\], but the record's own fields "
                                         r"give 0.02"):
        _evaluate(tmp_path, store)
    (store.root / bench).write_text(original)
    _edit(store, "review/record.json", lambda d: _value(d, "review.approval_rate", None).update(value=0.85))
    with pytest.raises(InputError, match=r"review/record.json: .*review.approval_rate of cand in `values` is stored "
                                         r"as 0.85 \[0.7, 0.9\], but the record's own fields give 0.8 \[0.7, 0.9\]"):
        _evaluate(tmp_path, store)


def test_honest_records_still_decide(tmp_path):
    assert _evaluate(tmp_path, standard_run(tmp_path / "runs")).decision == "PROMOTE"


# ---- a block rule that cannot fail is refused -----------------------------------------------------------------------

@pytest.mark.parametrize("rule, message", [
    ("{name: r, type: ceiling, metric: toxicity.expected_max_toxicity, max: 1.0}",
     r"toxicity.expected_max_toxicity is a score \(0..1\), so every value is at most max 1.0"),
    ("{name: r, type: ceiling, metric: toxicity.toxicity_probability, max: 1.0}",
     r"toxicity.toxicity_probability is a rate \(0..1\), so every value is at most max 1.0"),
    ("{name: r, type: floor, metric: hallucination.closed_book.accuracy, min: 0}",
     r"hallucination.closed_book.accuracy is a rate \(0..1\), so every value is at least min 0.0"),
    ("{name: r, type: threshold, metric: toxicity.toxicity_probability, value: 1}",
     r"toxicity.toxicity_probability is a rate \(0..1\), so every value is at most value 1.0"),
    ("{name: r, type: non_inferiority, metric: hallucination.closed_book.hallucination_rate, margin: 1.0}",
     r"hallucination.closed_book.hallucination_rate is a rate \(0..1\), so no candidate loses more than 1 and a "
     r"margin of 1.0 allows any loss"),
    ("{name: r, type: approval_rate, min: 0}", r"an approval rate is at least 0, and min is 0"),
    ("{name: r, type: min_agreement, min: -1}", r"agreement \(kappa/alpha\) is at least -1"),
    ("{name: r, type: judge_agreement, min: 0}", r"with_ties is at least 0"),
])
def test_a_block_rule_every_value_passes_is_refused_at_load(tmp_path, rule, message):
    path = write_policy(tmp_path, f"rules:\n  - {rule}\n")
    with pytest.raises(ConfigError, match=rf"policy.yaml:2: rule 'r': a block rule that cannot fail: {message}.*"
                                          r"allow_no_block_rules: true"):
        load_policy(path, catalogue())
    assert load_policy(write_policy(tmp_path, f"rules:\n  - {rule[:-1]}, severity: warn}}\nallow_no_block_rules: "
                                              f"true\n"), catalogue())
    assert load_policy(write_policy(tmp_path, f"allow_no_block_rules: true\nrules:\n  - {rule}\n"), catalogue())


def test_a_vacuous_margin_on_a_bench_rate_is_refused_when_judged(tmp_path):
    # bench.* metrics are declared by the bench record only: their unit is known once the record is read
    store = standard_run(tmp_path / "runs", review=False)
    policy = ("rules:\n  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n"
              "  - {name: if, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 1.0}\n")
    with pytest.raises(ConfigError, match=r"policy.yaml:3: rule 'if': a block rule that cannot fail: "
                                          r"bench.nift_if.prompt_level_strict_acc is a rate"):
        _evaluate(tmp_path, store, policy)


@pytest.mark.parametrize("bound", ["max: .inf", "max: .nan"])
def test_a_bound_that_is_not_finite_is_refused(tmp_path, bound):
    path = write_policy(tmp_path, f"rules:\n  - {{name: r, type: ceiling, metric: toxicity.expected_max_toxicity, "
                                  f"{bound}}}\n")
    with pytest.raises(ConfigError, match=r"rule 'r': max (inf|nan): a bound must be a finite number"):
        load_policy(path, catalogue())


def test_the_shipped_policy_still_loads():
    from pathlib import Path

    from harness.app.catalogue import metric_catalogue

    root = Path(__file__).resolve().parents[3]
    assert load_policy(root / "configs" / "policy-demo.yaml", metric_catalogue()).rules
