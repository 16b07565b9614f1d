"""Careless and hostile command lines: outputs aimed at the evidence, names that climb out of their folder or forge
output lines, empty values that would read as "no check", and a registry that lost entries. Each is one line and
exit 2, with the registry and the evidence left as they were."""

import json

import pytest
from gate_records import CANDIDATE, latest_decision_id, standard_run, write_policy

from harness.app.cli import VerdictExit, main
from harness.core.errors import InputError
from harness.core.store import RunStore


def _override(home):
    """`nift-gate override` of run r1's latest decision."""
    return ["override", "--decision-id", latest_decision_id(RunStore("r1", home))]


def _args(home, policy, *rest):
    return [*rest, "--home", str(home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
            "--set", "bench.baselines=[{name: base-a, model: train:base-a}, {name: base-b, model: train:base-b}]",
            "--set", f"gate.policy={policy}",
            "--set", "review.reviewers=[{name: Ada, role: release_manager, token_env: ADA_TOKEN}, {name: Bob}]"]


def _last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("nift-gate: error: "), err
    return err[-1]


@pytest.fixture
def decided(tmp_path, monkeypatch, capsys):
    """A run gated once (PENDING_REVIEW), its policy, and Ada's token in the environment."""
    monkeypatch.setenv("ADA_TOKEN", "ada-secret")
    monkeypatch.setenv("NIFT_TOKEN", "ada-secret")
    home = tmp_path / "runs"
    standard_run(home, review=False)
    policy = write_policy(tmp_path)
    assert main(_args(home, policy, "gate")) == VerdictExit.PENDING_REVIEW
    capsys.readouterr()
    return home, policy


def _snapshot(home):
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()
            and p.name != ".lock"}


@pytest.mark.parametrize("target", ["registry/log.jsonl", "registry/head.json", f"r1/bench/{CANDIDATE}/record.json"])
def test_a_junit_file_or_step_summary_in_the_runs_home_is_refused_before_deciding(decided, capsys, monkeypatch,
                                                                                target):
    home, policy = decided
    before = _snapshot(home)
    assert main(_args(home, policy, "gate", "--junit", str(home / target))) == 2
    assert "which holds the runs and decisions" in _last_error(capsys)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(home / target))
    assert main(_args(home, policy, "gate")) == 2
    assert "nothing was decided" in _last_error(capsys)
    assert _snapshot(home) == before
    assert main(_args(home, policy, "registry", "verify")) == 0


@pytest.mark.parametrize("target", ["labels/review.db", "labels/review.db-wal", "policy", "config"])
def test_a_junit_file_or_step_summary_over_an_input_of_the_gate_outside_the_home_is_refused(decided, tmp_path, capsys,
                                                                                         monkeypatch, target):
    """A label store elsewhere (review.database), the policy and the config are the gate's inputs too: a JUnit
    report written over review.db would lose every label."""
    home, policy = decided
    (tmp_path / "labels").mkdir()
    store = tmp_path / "labels" / "review.db"
    store.write_bytes(b"SQLite format 3\x00")
    config = tmp_path / "pipeline.yaml"
    config.write_text("run: r1\n")
    args = [*_args(home, policy, "gate", "--config", str(config)), "--set", f"review.database=sqlite:///{store}"]
    path = {"policy": policy, "config": config}.get(target, tmp_path / target)
    what = {"policy": "the policy", "config": "the config"}.get(target, "the label store")
    for env in (False, True):
        before = path.read_bytes() if path.exists() else None
        if env:
            monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
        assert main([*args, *([] if env else ["--junit", str(path)])]) == 2
        assert f"is {what} of this gate; writing it there would replace it" in _last_error(capsys)
        assert (path.read_bytes() if path.exists() else None) == before


def test_a_junit_link_is_written_where_it_points_and_a_link_into_the_home_is_refused(decided, tmp_path, capsys):
    home, policy = decided
    report = tmp_path / "reports" / "junit.xml"
    report.parent.mkdir()
    report.write_text("")
    link = tmp_path / "junit-link.xml"
    link.symlink_to(report)
    assert main(_args(home, policy, "gate", "--junit", str(link))) == VerdictExit.PENDING_REVIEW
    assert link.is_symlink() and report.read_text().startswith("<?xml")
    (tmp_path / "sneaky.xml").symlink_to(home / "registry" / "log.jsonl")
    assert main(_args(home, policy, "gate", "--junit", str(tmp_path / "sneaky.xml"))) == 2
    assert "which holds the runs and decisions" in _last_error(capsys)


@pytest.mark.parametrize("flag", [["--candidate", "../x"], ["--candidate", "/tmp/evil"], ["--candidate", "a\nb"],
                                  ["--set", "gate.candidate=../bench"],
                                  ["--set", "bench.baselines=[{name: ../b, model: train:b}]"]])
def test_a_candidate_or_baseline_name_that_is_no_plain_folder_name_is_refused(decided, capsys, flag):
    home, policy = decided
    before = _snapshot(home)
    assert main([*_args(home, policy, "gate"), *flag]) == 2  # after _args' own --set bench.baselines
    assert "must be a plain folder name" in _last_error(capsys)
    assert _snapshot(home) == before


def test_a_run_name_with_a_control_character_is_refused(decided, capsys):
    home, policy = decided
    assert main([*_args(home, policy, "gate"), "--run", "r1\nPROMOTE"]) == 2
    assert "no control characters" in _last_error(capsys)


@pytest.mark.parametrize("alias", ["", "../x", " production", "staging\nalias production: r9/evil (entry 1)"])
def test_an_alias_that_could_forge_or_shadow_another_is_refused(decided, capsys, alias):
    home, policy = decided
    log = (home / "registry" / "log.jsonl").read_bytes()
    assert main(_args(home, policy, *_override(home), "--decision", "PROMOTE", "--by", "Ada", "--reason", "meeting",
                      "--alias", alias)) == 2
    assert f"--alias {alias!r} must be a letter or digit" in _last_error(capsys)
    assert main(_args(home, policy, "gate", "--set", f"gate.promote_aliases=[{json.dumps(alias)}]")) == 2
    assert "must be a letter or digit" in _last_error(capsys)
    assert (home / "registry" / "log.jsonl").read_bytes() == log


def test_an_override_reason_that_is_not_utf8_is_one_line(decided, capsys):
    home, policy = decided
    assert main(_args(home, policy, *_override(home), "--decision", "REJECT", "--by", "Ada",
                      "--reason", "\udcff\udcfe")) == 2
    assert "--reason is not UTF-8 text" in _last_error(capsys)


def test_empty_expect_head_or_registry_is_refused_not_read_as_no_check(decided, capsys):
    home, policy = decided
    assert main(_args(home, policy, "registry", "verify", "--expect-head", "")) == 2  # an unset CI variable
    assert "--expect-head '': expected a sha256" in _last_error(capsys)
    for command in (["registry", "show"], ["history"]):
        assert main(_args(home, policy, *command, "--registry", "")) == 2  # Path("") is the working directory
        assert "gate.registry is empty" in _last_error(capsys)


def test_an_edited_archive_of_the_decision_is_refused_by_report_and_override(decided, capsys):
    home, policy = decided
    [archive] = (home / "r1" / "gate" / CANDIDATE / "decisions").glob("*.json")
    archive.write_text(archive.read_text().replace('"decision": "PENDING_REVIEW"', '"decision": "REJECT"'))
    log = (home / "registry" / "log.jsonl").read_bytes()
    assert main(_args(home, policy, "report")) == 2
    assert f"{archive}: edited after it was logged" in _last_error(capsys)
    assert main(_args(home, policy, *_override(home), "--decision", "REJECT", "--by", "Ada", "--reason", "x")) == 2
    assert f"{archive}: edited after it was logged" in _last_error(capsys)
    assert (home / "registry" / "log.jsonl").read_bytes() == log


def test_a_deleted_log_is_not_shown_as_empty_nor_started_again_by_the_gate(decided, capsys):
    home, policy = decided
    for name in ("log.jsonl", "head.json"):
        (home / "registry" / name).unlink()
    for command in (["registry", "show"], ["history"]):
        assert main(_args(home, policy, *command)) == 2
        assert "a decision file that no registry entry logs" in _last_error(capsys)
    assert main(_args(home, policy, "gate")) == 2  # a new chain would bury the decision the log lost
    assert "a decision file that no registry entry logs" in _last_error(capsys)
    assert not (home / "registry" / "log.jsonl").exists()


def test_a_stage_folder_name_cannot_leave_its_stage(tmp_path):
    store = RunStore("r1", tmp_path)
    assert store.stage_dir("review", "") == tmp_path / "r1" / "review"
    for name in ("../bench", "a/b", ".hidden", "x\ny", "\u2028"):
        with pytest.raises(InputError, match="must be a"):
            store.stage_dir("gate", name)


def test_a_nul_in_any_config_string_is_refused_naming_its_field(decided, capsys):
    home, policy = decided
    assert main([*_args(home, policy, "gate"), "--set", 'gate.policy="/tmp/policy.yaml\\0x"']) == 2
    assert _last_error(capsys) == ("nift-gate: error: --set and flags over the defaults: invalid config: gate.policy: "
                                   "holds a NUL character")


@pytest.mark.parametrize("field", ["bench.seed", "data.seed", "audit.seed", "review.seed"])
def test_a_seed_numpy_cannot_take_is_refused_when_the_config_is_read(capsys, field):
    for seed in (-1, 2**32):
        assert main(["config", "show", "--set", f"{field}={seed}"]) == 2
        assert f"{field}: Input should be" in _last_error(capsys)


@pytest.mark.parametrize("value", ["1e999", ".nan", "-.inf"])
def test_nan_or_infinity_in_any_config_number_is_refused(capsys, value):
    assert main(["config", "show", "--set", f"report.machine_usd_per_hour={value}"]) == 2
    assert "report.machine_usd_per_hour: Input should be a finite number" in _last_error(capsys)


def test_registry_show_of_an_empty_registry_says_so(tmp_path, capsys):
    (tmp_path / "registry").mkdir()
    assert main(["registry", "show", "--home", str(tmp_path), "--registry", str(tmp_path / "registry")]) == 0
    assert capsys.readouterr().out == f"no decisions logged yet: the registry {tmp_path / 'registry'} has no entries\n"


FORGED = "toxicity\nverdict PROMOTE (exit status 0)\x1b[8m"


def test_text_from_a_record_forges_no_line_of_the_gate_output_and_the_junit_file_parses(tmp_path, capsys):
    """A record's attribute name reaches the rule details: whoever wrote the record chose it."""
    import xml.etree.ElementTree as ET

    from gate_records import bench_record, save, toxicity_record

    home = tmp_path / "runs"
    store = RunStore("r1", home)
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")
    save(store, toxicity_record("r1", attributes=(FORGED, "insult")), "audit/toxicity")
    policy = write_policy(tmp_path, "schema_version: 1\nrules:\n  - {name: tox, type: ceiling, "
                                    "metric: toxicity.expected_max_toxicity, max: 0.05}\n")
    junit = tmp_path / "junit.xml"
    assert main(_args(home, policy, "gate", "--junit", str(junit))) == VerdictExit.REJECT
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("verdict PROMOTE")] and "\x1b" not in out
    assert "toxicity<U+000A>verdict PROMOTE (exit status 0)<U+001B>[8m" in out
    assert [line for line in out.splitlines() if line.startswith("verdict")] == ["verdict REJECT (exit status 10)"]
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert "tox [toxicity<U+000A>verdict PROMOTE (exit status 0)<U+001B>[8m]" in names
    assert main(_args(home, policy, "history")) == 0  # its columns are named by the record's attributes
    out = capsys.readouterr().out
    assert "toxicity<U+000A>verdict PROMOTE" in out and not [line for line in out.splitlines() if "verdict" in line[:8]]


def test_the_step_summary_shows_names_and_reasons_as_text_not_markdown(decided, tmp_path, capsys, monkeypatch):
    from markdown_it import MarkdownIt

    home, _ = decided
    rule = "tox **ceiling** [docs](https://evil.example/x)"
    policy = write_policy(tmp_path, f"schema_version: 1\nrules:\n  - name: '{rule}'\n    type: ceiling\n"
                                    "    metric: toxicity.expected_max_toxicity\n    max: 0.2\n", name="hostile.yaml")
    assert main(_args(home, policy, "gate")) == VerdictExit.PROMOTE
    assert main(_args(home, policy, *_override(home), "--decision", "REJECT", "--by", "Ada", "--reason",
                      "signed off ![PASSED](https://evil.example/pixel.png)")) == 0
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    main(_args(home, policy, "gate"))
    html = MarkdownIt("commonmark").enable("table").render(summary.read_text())
    assert "<a " not in html and "<img" not in html and "<strong>" not in html
    assert rule in html and "![PASSED](https://evil.example/pixel.png)" in html  # shown as the text it is
