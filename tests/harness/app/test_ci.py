"""The gate in CI: an exit status per verdict, `--json`, `--junit`, the GitHub step summary, and the shipped CI
examples' commands run through the command line against prepared records."""

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from gate_records import CANDIDATE, label_queued_outputs, reviewed_run_config, standard_run, write_policy

from harness.app import pipeline
from harness.app.cli import VerdictExit, main
from harness.core.store import RunStore
from harness.gate.record import latest_decision

ROOT = Path(__file__).resolve().parents[3]
POLICY = """\
schema_version: 1
rules:
  - {name: if-non-inferior, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.10}
  - {name: toxicity-ceiling, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}
  - {name: reviewed, type: review_quorum, min_items: 4, min_reviewers: 2}
  - {name: approved, type: approval_rate, min: 0.7}
"""
#: candidate - baseline far below the -0.10 margin against both baselines: the non-inferiority rule fails
REJECTING = {"base-a": (-0.20, -0.30, -0.15), "base-b": (-0.25, -0.35, -0.18)}
VERDICTS = ["PROMOTE", "REJECT", "PENDING_REVIEW"]


def _label_all(config: dict, store: RunStore, verdict: str) -> None:
    from harness.review.config import ReviewConfig

    label_queued_outputs(ReviewConfig.model_validate(config["review"]), store, verdict)


def _latest_id() -> str:
    """The id of run r1's latest decision: what `nift-gate override --decision-id` names."""
    return latest_decision(RunStore("r1"), CANDIDATE).record_id


def _prepare(tmp_path: Path, verdict: str) -> Path:
    """Stored records (bench, toxicity audit, review labels) of run r1 that the policy judges ``verdict``, and
    the pipeline config that names them; returns the config file."""
    home = tmp_path / "runs"  # $NIFT_HOME (conftest)
    store = standard_run(home, "r1", review=False, **({"deltas": REJECTING} if verdict == "REJECT" else {}))
    config = reviewed_run_config(write_policy(tmp_path, POLICY), reviewers=[
        {"name": "ann", "token": "a"}, {"name": "bob", "token": "b"},
        {"name": "Ada", "role": "release_manager", "token_env": "ADA_TOKEN"}])
    if verdict == "PROMOTE":
        _label_all(config, store, "accept")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def step_summary(tmp_path, monkeypatch):
    path = tmp_path / "step_summary.md"
    path.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    return path


def test_exit_codes_are_distinct_and_documented(capsys):
    codes = [v.value for v in VerdictExit]
    assert [v.name for v in VerdictExit] == VERDICTS and len(set(codes)) == 3
    assert not set(codes) & {1, 2, 3, 130}  # a bug, bad input, teacher failure, interrupt
    for command in ("gate", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "Exit status: 0 PROMOTE, 10 REJECT, 11 PENDING_REVIEW" in text and "2 bad input" in text


@pytest.mark.parametrize("verdict", VERDICTS)
def test_gate_exits_per_verdict_with_json_junit_and_step_summary(tmp_path, monkeypatch, capsys, step_summary,
                                                                  verdict):
    config = _prepare(tmp_path, verdict)
    junit = tmp_path / "out" / "junit.xml"
    assert main(["gate", "--config", str(config), "--json", "--junit", str(junit)]) == VerdictExit[verdict]
    captured = capsys.readouterr()
    shown = json.loads(captured.out)  # stdout is the JSON document and nothing else
    decision = latest_decision(RunStore("r1"), CANDIDATE)
    assert (shown["verdict"], shown["decision"], shown["exit_code"]) == (verdict, verdict, VerdictExit[verdict])
    assert shown["decision_record_id"] == decision.record_id and shown["reason"] == decision.reason
    assert shown["reason"] in captured.err  # the human lines went to stderr
    assert {e["record_id"] for e in shown["evidence"]} >= {"bench-hand-1", "toxicity_audit-hand-1"}
    rules = {(r["rule"], r["baseline"]): r for r in shown["rules"]}
    assert set(rules) == {("if-non-inferior", "base-a"), ("if-non-inferior", "base-b"), ("toxicity-ceiling", None),
                          ("reviewed", None), ("approved", None)}
    tox = rules[("toxicity-ceiling", None)]
    assert (tox["status"], tox["value"], tox["threshold"], tox["records"]) == ("pass", 0.10, 0.2,
                                                                               ["toxicity_audit-hand-1"])
    assert tox["ci_low"] == pytest.approx(0.05) and tox["ci_high"] == pytest.approx(0.15)
    non_inferior = rules[("if-non-inferior", "base-a")]
    assert non_inferior["status"] == ("fail" if verdict == "REJECT" else "pass")
    assert non_inferior["ci_low"] == (-0.30 if verdict == "REJECT" else -0.04)

    suite = ET.parse(junit).getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"if-non-inferior vs base-a", "if-non-inferior vs base-b", "toxicity-ceiling [toxicity]",
                          "reviewed", "approved"}
    statuses = [r["status"] for r in shown["rules"]]
    assert int(suite.get("tests")) == 5 and int(suite.get("failures")) == statuses.count("fail")
    assert int(suite.get("skipped")) == statuses.count("pending")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == verdict and properties["decision_record_id"] == decision.record_id
    failure = cases["if-non-inferior vs base-a"].find("failure")
    if verdict == "REJECT":
        assert failure.get("type") == "block" and "worst case -0.3 <= -margin -0.1" in failure.get("message")
        assert "records: bench-hand-1" in failure.text and "ci: [-0.3, -0.15]" in failure.text
        assert "judged: -0.3 (required: > -0.1)" in failure.text
    else:
        assert failure is None
    skipped = cases["reviewed"].find("skipped")
    if verdict == "PROMOTE":
        assert skipped is None and cases["approved"].find("skipped") is None
    else:
        assert skipped.get("message").startswith("pending: ")

    summary = step_summary.read_text()
    assert summary.startswith("earlier step\n")  # appended, not overwritten
    assert f"## nift-gate: {verdict} for `cand` (run `r1`)" in summary
    # cells are escaped: GitHub renders HTML in a step summary
    # names are inert Markdown: "[toxicity]" could start a link
    assert "| pass | block | toxicity-ceiling \\[toxicity\\] | 0.1 | [0.05, 0.15] | 0.1 | &lt;= 0.2 |" in summary
    row = next(line for line in summary.splitlines() if "| if-non-inferior vs base-b |" in line)
    assert row.startswith("| **FAIL** |" if verdict == "REJECT" else "| pass |")


def test_without_json_the_gate_prints_its_lines_and_the_verdict(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    config = _prepare(tmp_path, "REJECT")
    assert main(["gate", "--config", str(config)]) == VerdictExit.REJECT
    out = capsys.readouterr().out
    assert out.startswith("REJECT: ") and out.rstrip().endswith("verdict REJECT (exit status 10)")


def test_bad_input_exits_2_with_nothing_on_stdout_and_no_junit(tmp_path, capsys, step_summary):
    config = _prepare(tmp_path, "PROMOTE")
    junit = tmp_path / "junit.xml"
    code = main(["gate", "--config", str(config), "--policy", str(tmp_path / "missing.yaml"), "--json",
                 "--junit", str(junit)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "missing.yaml" in captured.err
    assert not junit.exists() and step_summary.read_text() == "earlier step\n"


def test_an_override_of_the_decision_holds_for_ci_and_shows_in_history(tmp_path, capsys, monkeypatch):
    config = _prepare(tmp_path, "PENDING_REVIEW")
    assert main(["gate", "--config", str(config), "--json"]) == VerdictExit.PENDING_REVIEW
    capsys.readouterr()
    monkeypatch.setenv("ADA_TOKEN", "ada-secret")
    monkeypatch.setenv("NIFT_TOKEN", "ada-secret")
    assert main(["override", "--config", str(config), "--decision-id", _latest_id(), "--decision", "PROMOTE",
                 "--by", "Ada", "--reason",
                 "reviewed in the release meeting", "--alias", "production"]) == 0
    capsys.readouterr()
    # the same evidence decides the same decision again: the override logged against it holds
    assert main(["gate", "--config", str(config), "--json"]) == VerdictExit.PROMOTE
    shown = json.loads(capsys.readouterr().out)
    assert (shown["verdict"], shown["decision"], shown["exit_code"]) == ("PROMOTE", "PENDING_REVIEW", 0)
    assert [(o["decision"], o["release_manager"], o["aliases"]) for o in shown["overrides"]] == [
        ("PROMOTE", "Ada", ["production"])]

    assert main(["history", "--config", str(config), "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert [(e["kind"], e["verdict"], e["by"]) for e in history["entries"]] == [
        ("decision", "PENDING_REVIEW", "gate"), ("override", "PROMOTE", "Ada")]
    assert history["aliases"]["production"]["seq"] == 2
    assert main(["history", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert "PENDING_REVIEW->PROMOTE" in table and "production: r1/cand (entry 2" in table


def _no_model_stages(monkeypatch):
    """`nift-gate run` with the records already stored: the model stages (data, train, bench, audit, review
    enqueue) are not run here; the gate and report stages run as they do in every run."""
    for stage in ("data", "train", "bench", "audit", "review"):
        monkeypatch.setitem(pipeline._RUNNERS, stage, lambda config, store, force: "records prepared by the test")


@pytest.mark.parametrize("verdict", VERDICTS)
def test_run_exits_per_verdict_and_ends_with_the_history(tmp_path, capsys, monkeypatch, step_summary, verdict):
    _no_model_stages(monkeypatch)
    config = _prepare(tmp_path, verdict)
    junit = tmp_path / "run-junit.xml"
    assert main(["run", str(config), "--json", "--junit", str(junit)]) == VerdictExit[verdict]
    captured = capsys.readouterr()
    assert json.loads(captured.out)["verdict"] == verdict
    err = captured.err
    assert err.index("report: ") < err.index("history (") < err.index("seq  when")
    assert f"decision  {verdict}" in err and ET.parse(junit).getroot().get("tests") == "5"
    assert step_summary.read_text().count("## nift-gate: ") == 1
    assert ("review pending: open the review app" in err) == (verdict == "PENDING_REVIEW")


def test_run_without_json_prints_the_history_after_the_report_path(tmp_path, capsys, monkeypatch):
    _no_model_stages(monkeypatch)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    config = _prepare(tmp_path, "PROMOTE")
    assert main(["run", str(config)]) == VerdictExit.PROMOTE
    out = capsys.readouterr().out
    tail = out[out.index("report: "):]
    assert "history (" in tail and "decision  PROMOTE" in tail and "staging: r1/cand (entry 1" in tail


# ---- the shipped CI examples ---------------------------------------------------------------------------------

def _commands(script: str, env: dict[str, str]) -> list[tuple[list[str], str | None]]:
    """The `nift-gate ...` command lines of a shell script: (argv after `nift-gate`, file stdout goes to)."""
    found = []
    for line in script.splitlines():
        line = line.strip()
        if not line.startswith("nift-gate "):
            continue
        words = shlex.split(re.sub(r"\$\{?(\w+)\}?", lambda m: env[m.group(1)], line))
        stdout = None
        if ">" in words:
            stdout = words[words.index(">") + 1]
            words = words[:words.index(">")]
        found.append((words[1:], stdout))
    return found


def _run_command(argv: list[str], stdout: str | None, capsys) -> int:
    code = main(argv)
    out = capsys.readouterr().out
    if stdout:
        Path(stdout).write_text(out)
    return code


def _workflow():
    return yaml.safe_load((ROOT / "examples" / "ci" / "github-actions.yml").read_text())


@pytest.mark.parametrize("verdict", VERDICTS)
def test_the_github_example_branches_on_the_exit_codes_it_gets(tmp_path, monkeypatch, capsys, step_summary,
                                                              verdict):
    workflow = _workflow()
    config = _prepare(tmp_path, verdict)
    monkeypatch.chdir(tmp_path)
    env = {**workflow["env"], "NIFT_HOME": str(tmp_path / "runs"), "NIFT_CONFIG": str(config), "NIFT_RUN": "r1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    steps = {step.get("id") or step.get("name"): step for step in workflow["jobs"]["gate"]["steps"]}
    gate_step = steps["gate"]
    (argv, stdout), = _commands(gate_step["run"], env)
    assert argv[0] == "gate" and "--json" in argv and "--junit" in argv
    arms = {int(code): name for code, name in re.findall(r"(\d+)\) echo \"verdict=(\w+)\"", gate_step["run"])}
    assert arms == {v.value: v.name for v in VerdictExit}  # the workflow branches on the documented codes

    code = _run_command(argv, stdout, capsys)
    assert arms[code] == verdict
    assert json.loads(Path(stdout).read_text())["verdict"] == verdict
    junit = argv[argv.index("--junit") + 1]
    assert ET.parse(junit).getroot().get("tests") == "5"
    assert f"## nift-gate: {verdict}" in step_summary.read_text()

    report_step = steps["Write the report"]
    (report_argv, _), = _commands(report_step["run"], env)
    assert _run_command(report_argv, None, capsys) == 0
    out_dir = report_argv[report_argv.index("--out") + 1]
    assert (Path(out_dir) / "report.html").exists()
    upload = steps["Publish the report, JUnit results and verdict"]
    assert upload["uses"].startswith("actions/upload-artifact@") and "always()" in upload["if"]
    assert set(upload["with"]["path"].split()) == {f"{out_dir}/", junit, stdout}

    # which step fails the job, which waits, and whether the release job runs, for the verdict the gate gave
    fails = steps["Fail on REJECT"]
    waits = steps["Waiting for human review (PENDING_REVIEW)"]
    assert fails["if"] == "${{ steps.gate.outputs.verdict == 'REJECT' }}" and "exit 1" in fails["run"]
    assert waits["if"] == "${{ steps.gate.outputs.verdict == 'PENDING_REVIEW' }}" and "exit" not in waits["run"]
    assert "::warning" in waits["run"]
    release = workflow["jobs"]["release"]
    assert release["if"] == "${{ needs.gate.outputs.verdict == 'PROMOTE' }}"
    if verdict == "PROMOTE":
        for argv, stdout in _commands(release["steps"][-1]["run"], env):
            assert _run_command(argv, stdout, capsys) == 0
        assert json.loads(Path("nift-gate-history.json").read_text())["aliases"]["staging"]["run_id"] == "r1"


def test_the_gitlab_example_runs_the_same_gate_and_allows_only_pending_review_to_fail():
    gitlab = yaml.safe_load((ROOT / "examples" / "ci" / "gitlab-ci.yml").read_text())
    github = _workflow()
    env = {"NIFT_CONFIG": "c.yaml", "NIFT_RUN": "r", "NIFT_HOME": "h", "PWD": "."}
    job = gitlab["nift-gate"]
    (argv, stdout), = _commands("\n".join(job["script"]), env)
    (expected, expected_stdout), = _commands(next(s for s in github["jobs"]["gate"]["steps"]
                                                  if s.get("id") == "gate")["run"], env)
    assert (argv, stdout) == (expected, expected_stdout)
    assert job["allow_failure"] == {"exit_codes": [VerdictExit.PENDING_REVIEW.value]}
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["reports"]["junit"] == argv[
        argv.index("--junit") + 1]
    release = gitlab["release"]
    assert release["allow_failure"] == {"exit_codes": [VerdictExit.PENDING_REVIEW.value]}
    assert "'PENDING_REVIEW':11" in release["script"][0] and "'PROMOTE':0" in release["script"][0]


def test_report_pdf_flag_prints_the_pdf_beside_the_html(tmp_path, capsys, monkeypatch):
    """The command line hands the HTML report to ``reports.pdf.write_pdf`` (whose own tests render it with
    Chromium); here a stand-in records the call, so this checks only the flag's wiring."""
    import sys
    import types

    calls = []

    def write_pdf(html_path, pdf_path=None):
        calls.append((Path(html_path), pdf_path))
        return Path(html_path).with_suffix(".pdf")

    monkeypatch.setitem(sys.modules, "reports.pdf", types.SimpleNamespace(write_pdf=write_pdf))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    config = _prepare(tmp_path, "PENDING_REVIEW")
    assert main(["gate", "--config", str(config)]) == VerdictExit.PENDING_REVIEW
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "rep")]) == 0
    assert calls == []
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "rep"), "--pdf"]) == 0
    assert calls == [(tmp_path / "rep" / "report.html", None)]
    assert capsys.readouterr().out.rstrip().endswith(str(tmp_path / "rep" / "report.pdf"))


def test_report_prints_its_headline_as_plain_text_not_markdown(tmp_path, capsys, monkeypatch):
    # report.md escapes the override's reason ("\\[docs\\]"); the terminal shows what the release manager wrote
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    config = _prepare(tmp_path, "PENDING_REVIEW")
    assert main(["gate", "--config", str(config)]) == VerdictExit.PENDING_REVIEW
    monkeypatch.setenv("ADA_TOKEN", "ada-secret")
    monkeypatch.setenv("NIFT_TOKEN", "ada-secret")
    assert main(["override", "--config", str(config), "--decision-id", _latest_id(), "--decision", "PROMOTE",
                 "--by", "Ada", "--reason",
                 "signed off in [docs] by *two* people"]) == 0
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "rep")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("PROMOTE by override of the gate's PENDING_REVIEW: Ada decided so because signed off "
                            "in [docs] by *two* people. The gate said: PENDING_REVIEW")
    assert "\\[docs\\]" in (tmp_path / "rep" / "report.md").read_text(encoding="utf-8").splitlines()[0]


def test_report_pdf_without_chromium_is_a_one_line_error_and_exit_2(tmp_path, capsys, monkeypatch):
    # PdfError is a NiftError: the command line prints its message, not a traceback, and CI reads exit 2
    from reports import pdf

    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    config = _prepare(tmp_path, "PENDING_REVIEW")
    assert main(["gate", "--config", str(config)]) == VerdictExit.PENDING_REVIEW
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "rep"), "--pdf"]) == 2
    err = capsys.readouterr().err
    assert "nift-gate: error: chromium is not installed" in err and "Traceback" not in err
    assert (tmp_path / "rep" / "report.html").exists() and not (tmp_path / "rep" / "report.pdf").exists()
