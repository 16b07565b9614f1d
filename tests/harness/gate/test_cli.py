"""`nift-gate gate`, `override`, `registry verify|show` through the command line."""

import subprocess
import sys

from gate_records import CANDIDATE, latest_decision_id, standard_run, write_policy

from harness.app.cli import VerdictExit, main


def _args(home, policy, *rest):
    return [*rest, "--home", str(home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
            "--set", "bench.baselines=[{name: base-a, model: train:base-a}, {name: base-b, model: train:base-b}]",
            "--set", f"gate.policy={policy}",
            "--set", ("review.reviewers=[{name: Ada, role: release_manager, token_env: ADA_TOKEN}, "
                      "{name: Bob, token_env: BOB_TOKEN}]")]


def test_help_explains_the_gate():
    out = subprocess.run([sys.executable, "-m", "harness.app.cli", "gate", "--help"], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0
    assert "PENDING_REVIEW" in out.stdout and "non-inferiority" in out.stdout and "--policy" in out.stdout


def test_gate_override_and_registry_from_the_command_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADA_TOKEN", "ada-secret")
    monkeypatch.setenv("NIFT_TOKEN", "ada-secret")  # what Ada types into her shell: her review-app token
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    policy = write_policy(tmp_path)
    assert main(_args(home, policy, "gate")) == VerdictExit.PENDING_REVIEW  # CI keeps waiting, not passing
    out = capsys.readouterr().out
    decision = ("--decision-id", latest_decision_id(store))
    assert f"decision {decision[1]} -> " in out  # the id an override names
    assert out.startswith("PENDING_REVIEW: ") and "[pending] block reviewed" in out
    assert main(_args(home, policy, "override", "--decision", "PROMOTE", *decision, "--by", "Ada",
                      "--reason", "  ")) == 2
    assert "an override needs a reason" in capsys.readouterr().err
    assert main(_args(home, policy, "override", "--decision", "PROMOTE", *decision, "--by", "Ada", "--reason",
                      "release meeting", "--alias", "production")) == 0
    assert "PENDING_REVIEW -> PROMOTE by Ada; aliases production" in capsys.readouterr().out
    assert main(_args(home, policy, "registry", "verify")) == 0
    assert "2 entries, chain and head verified" in capsys.readouterr().out
    assert main(_args(home, policy, "registry", "show")) == 0
    shown = capsys.readouterr().out
    assert "override   r1/cand PROMOTE by Ada [production->cand]" in shown  # events padded to "redecision"
    assert "alias production: r1/cand (entry 2)" in shown
    log = home / "registry" / "log.jsonl"
    log.write_text(log.read_text().replace("release meeting", "release meating"))
    assert main(_args(home, policy, "registry", "verify")) == 2
    assert "log.jsonl:2: entry seq 2 was edited" in capsys.readouterr().err
