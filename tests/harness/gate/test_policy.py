"""Loading a policy file: what is refused before any record is read, each with a one-line error naming the file."""

from __future__ import annotations

import pytest
from gate_records import CANDIDATE, catalogue, standard_run, write_policy

from harness.app.cli import main
from harness.core.errors import ConfigError
from harness.gate.policy import load_policy

ALL_WARN = """\
schema_version: 1
rules:
  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2, severity: warn}
  - {name: agree, type: min_agreement, min: 0.4, severity: warn}
"""


def _gate(home, policy) -> int:
    return main(["gate", "--home", str(home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
                 "--set", f"gate.policy={policy}"])


def test_a_policy_with_no_block_rule_is_refused(tmp_path):
    """An all-warn policy would PROMOTE a failing, unreviewed candidate."""
    with pytest.raises(ConfigError, match=r"policy.yaml: no rule has severity block, so this policy would PROMOTE "
                                          r"any candidate.*set `allow_no_block_rules: true`"):
        load_policy(write_policy(tmp_path, ALL_WARN), catalogue())


def test_a_policy_may_say_it_has_no_block_rule_on_purpose(tmp_path):
    text = ALL_WARN.replace("schema_version: 1\n", "schema_version: 1\nallow_no_block_rules: true\n")
    policy = load_policy(write_policy(tmp_path, text), catalogue())
    assert policy.allow_no_block_rules is True and [r.severity for r in policy.rules] == ["warn", "warn"]


def test_one_block_rule_is_enough(tmp_path):
    text = ALL_WARN.replace("max: 0.2, severity: warn}", "max: 0.2}")
    assert load_policy(write_policy(tmp_path, text), catalogue()).allow_no_block_rules is False


def test_a_policy_path_that_is_a_folder_exits_2_naming_it(tmp_path, capsys):
    home = tmp_path / "runs"
    standard_run(home, review=False)
    folder = tmp_path / "policies"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"policies: is a folder, not a policy file"):
        load_policy(folder, catalogue())
    assert _gate(home, folder) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nift-gate: error: {folder}: is a folder, not a policy file (gate.policy names a YAML file)"


def test_a_policy_that_is_not_utf8_exits_2_naming_the_file_and_line(tmp_path, capsys):
    home = tmp_path / "runs"
    standard_run(home, review=False)
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"schema_version: 1\ndescription: caf\xe9\nrules: []\n")
    with pytest.raises(ConfigError, match=r"policy.yaml:2: the policy is not UTF-8 \(byte 0xe9 at offset 34\)"):
        load_policy(path, catalogue())
    assert _gate(home, path) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "policy.yaml:2: the policy is not UTF-8" in err and "Traceback" not in err


def test_a_judge_agreement_rule_defaults_to_the_judge_based_prefixes_and_names_its_metric(tmp_path):
    text = "rules:\n  - {name: judge-checked, type: judge_agreement, min: 0.6}\n"
    [rule] = load_policy(write_policy(tmp_path, text), catalogue()).rules
    assert (rule.statistic, rule.min_items, rule.applies_to, rule.metric) == (
        "with_ties", 20, ["bench.pairwise.", "bench.mt_bench.", "bench.alpaca_eval.", "bench.arena."], "review.judge_agreement")


def test_an_unknown_judge_agreement_statistic_is_refused_naming_the_rule_and_line(tmp_path):
    text = "rules:\n  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n" \
           "  - {name: judge-checked, type: judge_agreement, min: 0.6, statistic: spearman}\n"
    with pytest.raises(ConfigError, match=r"policy.yaml: invalid policy: line 3: rule 'judge-checked': statistic"):
        load_policy(write_policy(tmp_path, text), catalogue())


@pytest.mark.parametrize(("text", "message"), [
    ("schema_version: 1\nrules:\n  - name: a\x00\n", "policy.yaml:3: not valid YAML (unacceptable character #x0000: "
                                                     "special characters are not allowed)"),
    ("schema_version: 1\nrules: [\n", "policy.yaml:3: not valid YAML (expected the node content, but found "
                                      "'<stream end>')"),
    ("rules:\n  - {name: a, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n"
     "rules:\n  - {name: b, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.9}\n",
     "policy.yaml:3: key 'rules' appears twice (first on line 1)"),
    ("rules:\n  - {name: a, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2, max: 0.9}\n",
     "policy.yaml:2: key 'max' appears twice (first on line 2)"),
])
def test_a_policy_that_is_not_yaml_or_repeats_a_key_exits_2_on_one_line(tmp_path, capsys, text, message):
    """A repeated key would otherwise keep the last value silently: a looser bound, or half the rules gone."""
    home = tmp_path / "runs"
    standard_run(home, review=False)
    path = write_policy(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_policy(path, catalogue())
    assert str(raised.value) == f"{path.parent}/{message}"
    assert _gate(home, path) == 2
    err = capsys.readouterr().err
    assert err == f"nift-gate: error: {path.parent}/{message}\n"


def test_a_judge_agreement_prefix_that_names_no_judged_metric_is_refused(tmp_path):
    # a typo held no rule: the judge-based rule it meant to hold decided on an unchecked judge
    text = ("rules:\n  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n"
            "  - {name: judge-checked, type: judge_agreement, min: 0.6, applies_to: [bench.pairwse.]}\n")
    with pytest.raises(ConfigError, match=r"rule 'judge-checked'.*applies_to 'bench.pairwse.' names no judge-based "
                                          r"metric \(did you mean 'bench.pairwise.'\?\)"):
        load_policy(write_policy(tmp_path, text), catalogue())
    # a judge's family, or the start of a declared metric, is fine
    for prefix in ("bench.mt_bench.turn_1", "toxicity.expected"):
        good = text.replace("bench.pairwse.", prefix)
        [_, rule] = load_policy(write_policy(tmp_path, good), catalogue()).rules
        assert rule.applies_to == [prefix]
