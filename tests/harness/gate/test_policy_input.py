"""A hostile or careless policy file: every refusal is one line naming the file, the rule's line and the field,
exit 2, never a traceback; values are taken as written, never converted."""

from __future__ import annotations

import pytest
from gate_records import CANDIDATE, catalogue, standard_run, write_policy

from harness.app.cli import main
from harness.core.errors import ConfigError
from harness.gate.policy import load_policy

TOX = "  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n"


def _rule(name: str, bound: str = "0.2") -> str:
    return f"  - {{name: {name}, type: ceiling, metric: toxicity.expected_max_toxicity, max: {bound}}}\n"


def _refusal(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        load_policy(write_policy(tmp_path, text), catalogue())
    return str(raised.value)


def _gate(tmp_path, text: str, capsys) -> tuple[int, str, str]:
    home = tmp_path / "runs"
    standard_run(home, review=False)
    policy = write_policy(tmp_path, text)
    code = main(["gate", "--home", str(home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
                 "--set", f"gate.policy={policy}"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["[a]", "{a: 1}", "5", "null"])
def test_a_rule_name_that_is_not_a_string_is_refused_on_one_line_naming_the_line(tmp_path, capsys, name):
    # with another error in the file, a list or mapping as a name crashed the loader (unhashable type)
    text = f"rules:\n{TOX}  - {{name: {name}, type: ceiling, metric: toxicity.expected_max_toxicity}}\n"
    code, _, err = _gate(tmp_path, text, capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"nift-gate: error: {tmp_path}/policy.yaml: invalid policy: line 3: rule #2: name: ")
    assert "line 3: rule #2: max: Field required" in err


@pytest.mark.parametrize(("name", "problem"), [
    ('"a\\nREJECT: fake\\n[pass   ] block"', "control character (U+000A at character 2)"),
    ('"a\\tb"', "control character (U+0009 at character 2)"),
    ('"a\\0b"', "control character (U+0000 at character 2)"),
    ('"a\\x85b"', "control character (U+0085 at character 2)"),
    ('"a\\Lb"', "control character (U+2028 at character 2)"),
    ('"a\\Pb"', "control character (U+2029 at character 2)"),
    ('"tox\\u202eoff"', "control character (U+202E at character 4)"),  # a bidi override reverses what follows
    ('"to\\u200bx"', "control character (U+200B at character 3)"),  # zero-width: looks like another rule's name
    ('""', "must not be empty or blank"),
    ('"   "', "must not be empty or blank"),
    ("x" * 101, "at most 100 characters; this one has 101"),
    ("x" * 200_000, "at most 100 characters; this one has 200000"),
])
def test_a_rule_name_that_cannot_be_printed_on_one_line_is_refused(tmp_path, name, problem):
    message = _refusal(tmp_path, f"rules:\n{TOX}{_rule(name)}")
    assert message.startswith(f"{tmp_path}/policy.yaml: invalid policy: line 3: rule #2: name: a rule name ")
    assert problem in message and "\n" not in message and len(message) < 300


def test_a_rule_name_cannot_forge_a_line_of_the_gate_output(tmp_path, capsys):
    code, out, err = _gate(tmp_path, f"rules:\n{_rule(chr(34) + 'a' + chr(92) + 'nREJECT: fake' + chr(34))}", capsys)
    assert code == 2 and "REJECT: fake" not in out and err.count("\n") == 1
    assert "line 2: rule #1: name: a rule name must not contain a control character (U+000A" in err


@pytest.mark.parametrize(("where", "line", "field"), [("policy", 1, "description"),
                                                      ("rule", 2, "rule 'tox': description")])
@pytest.mark.parametrize(("text", "problem"), [
    ('"ok\\x1b[2Kfine"', "U+001B at character 3"),  # an ANSI escape: erases the line a terminal shows
    ('"tox\\u202eoff"', "U+202E at character 4"),
    ('"a\\0b"', "U+0000 at character 2"),
])
def test_a_description_holding_a_control_character_is_refused(tmp_path, where, line, field, text, problem):
    rule = TOX.replace("max: 0.2}", f"max: 0.2, description: {text}}}")
    policy = f"description: {text}\nrules:\n{TOX}" if where == "policy" else f"rules:\n{rule}"
    message = _refusal(tmp_path, policy)
    assert message.startswith(f"{tmp_path}/policy.yaml: invalid policy: line {line}: {field}: a description must "
                              f"not contain a control character ({problem})")
    assert "\n" not in message


def test_a_description_may_break_lines(tmp_path):
    text = f"description: |\n  Ship only if safe.\n  \tTwo reviewers, always.\nrules:\n{TOX}"
    policy = load_policy(write_policy(tmp_path, text), catalogue())
    assert policy.description == "Ship only if safe.\n\tTwo reviewers, always.\n"


def test_a_printable_rule_name_of_up_to_100_characters_is_kept_as_written(tmp_path):
    text = f"rules:\n{_rule('x' * 100)}{_rule(chr(34) + 'toxicité 🚫' + chr(34))}"
    policy = load_policy(write_policy(tmp_path, text), catalogue())
    assert [r.name for r in policy.rules] == ["x" * 100, "toxicité 🚫"]


def test_a_repeated_rule_name_names_the_line_of_each(tmp_path, capsys):
    text = f"rules:\n{TOX}  - name: agree\n    type: min_agreement\n    min: 0.4\n  - name: tox\n    type: floor\n" \
           f"    metric: bench.nift_if.prompt_level_strict_acc\n    min: 0.3\n"
    message = f"{tmp_path}/policy.yaml:6: rule name 'tox' is used again (first on line 2); rule names must be unique"
    assert _refusal(tmp_path, text) == message
    code, _, err = _gate(tmp_path, text, capsys)
    assert (code, err) == (2, f"nift-gate: error: {message}\n")


@pytest.mark.parametrize(("text", "problem"), [
    (f"rules:\n{_rule('tox', chr(34) + '0.2' + chr(34))}",
     "line 2: rule 'tox': max: Input should be a valid number, not the string '0.2' (write numbers and booleans "
     "without quotes)"),
    (f"rules:\n{_rule('tox', chr(34) + '1e-1' + chr(34))}", "line 2: rule 'tox': max: Input should be a valid number"),
    (f"rules:\n{_rule('tox', 'true')}", "line 2: rule 'tox': max: Input should be a valid number"),
    ("rules:\n  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2, "
     "inconclusive: 'yes'}\n",
     "line 2: rule 'tox': inconclusive: Input should be a valid boolean, not the string 'yes'"),
    (f"allow_no_block_rules: 'on'\nrules:\n{TOX}",
     "line 1: allow_no_block_rules: Input should be a valid boolean, not the string 'on'"),
    (f"rules:\n{TOX}  - {{name: r, type: review_quorum, min_items: '20', min_reviewers: 2}}\n",
     "line 3: rule 'r': min_items: Input should be a valid integer, not the string '20'"),
    (f"rules:\n{TOX}  - {{name: r, type: review_quorum, min_items: 20, min_reviewers: true}}\n",
     "line 3: rule 'r': min_reviewers: Input should be a valid integer"),
    (f"rules:\n{TOX}  - {{name: r, type: review_quorum, min_items: 20.0, min_reviewers: 2}}\n",
     "line 3: rule 'r': min_items: Input should be a valid integer"),
])
def test_a_quoted_number_or_boolean_is_refused_not_converted(tmp_path, text, problem):
    """A policy is the gate's contract: "0.2" or "yes" is a string, and a string where a bound or a switch is meant
    is a mistake to point at, not a value to guess."""
    message = _refusal(tmp_path, text)
    assert message.startswith(f"{tmp_path}/policy.yaml: invalid policy: {problem}") and ";" not in message


def test_a_number_written_as_yaml_writes_numbers_is_read_as_one(tmp_path):
    # an int where a float is meant, and exponents PyYAML's YAML 1.1 reads as strings unless written 1.0e-1
    text = "rules:\n" + _rule("a", "1").replace("max: 1}", "max: 1, severity: warn}") + _rule("b", "1e-1") \
           + _rule("c", "2.5E-1") + _rule("d", "1.0e-1")
    policy = load_policy(write_policy(tmp_path, text), catalogue())
    assert [(r.max, type(r.max)) for r in policy.rules] == [(1.0, float), (0.1, float), (0.25, float), (0.1, float)]


@pytest.mark.parametrize(("bound", "problem"), [
    (".nan", "max nan: a bound must be a finite number"),
    (".inf", "max inf: a bound must be a finite number"),
    ("-.inf", "max -inf: a bound must be a finite number"),
    ("1e999", "max inf: a bound must be a finite number"),
    ("nan", "max: Input should be a valid number, not the string 'nan'"),
])
def test_a_bound_that_is_not_a_finite_number_is_refused(tmp_path, bound, problem):
    assert problem in _refusal(tmp_path, f"rules:\n{_rule('tox', bound)}")


def test_many_field_errors_are_counted_after_the_first_five(tmp_path):
    text = "rules:\n" + "".join(_rule(f"r{i}", "'0.1'") for i in range(8))
    message = _refusal(tmp_path, text)
    assert message.count("Input should be a valid number") == 5 and message.endswith("; and 3 more")
    assert "line 6: rule 'r4'" in message and "rule 'r5'" not in message
