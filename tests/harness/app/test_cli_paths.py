"""Paths given to the command line: output files checked before the gate decides, relative paths in a config
resolved against its folder, registry folders that are not there, path mistakes and a closed pipe as one line
(or none) instead of a traceback, and passwords kept out of `config show`."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from gate_records import CANDIDATE, standard_run, write_policy

from harness.app import pipeline
from harness.app.cli import VerdictExit, main
from harness.app.config import load_pipeline_config
from harness.core.errors import ConfigError
from harness.core.store import RunStore


def _gate_args(home, policy, *rest):
    return [*rest, "--home", str(home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
            "--set", "bench.baselines=[{name: base-a, model: train:base-a}, {name: base-b, model: train:base-b}]",
            "--set", f"gate.policy={policy}"]


def _last_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("nift-gate: error: "), err
    return err[-1]


@pytest.fixture
def run(tmp_path):
    """A gate-ready run (the standard policy leaves it PENDING_REVIEW) and its policy."""
    home = tmp_path / "runs"
    standard_run(home, review=False)
    return home, write_policy(tmp_path)


def _logged(home) -> list[dict]:
    log = home / "registry" / "log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# ---- --junit and GITHUB_STEP_SUMMARY ------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["a folder", "under a file"])
def test_a_junit_file_that_cannot_be_written_is_refused_before_deciding(run, tmp_path, capsys, where):
    home, policy = run
    (tmp_path / "plain").write_text("")
    junit = tmp_path if where == "a folder" else tmp_path / "plain" / "junit.xml"
    assert main(_gate_args(home, policy, "gate", "--junit", str(junit))) == 2
    error = _last_error(capsys)
    assert error.startswith(f"nift-gate: error: --junit {junit}: cannot be written (") and \
        error.endswith("); nothing was decided")
    assert _logged(home) == []


def test_a_step_summary_that_is_a_folder_is_refused_before_deciding(run, tmp_path, capsys, monkeypatch):
    home, policy = run
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    assert main(_gate_args(home, policy, "gate", "--json")) == 2
    assert _last_error(capsys) == (f"nift-gate: error: GITHUB_STEP_SUMMARY {tmp_path}: cannot be written (a folder, "
                                   f"not a file); nothing was decided")
    assert _logged(home) == []


def test_an_output_that_fails_after_deciding_says_the_decision_is_logged(run, tmp_path, capsys, monkeypatch):
    home, policy = run
    junit = tmp_path / "junit.xml"

    def read_only(path, result):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("harness.gate.ci.write_junit", read_only)
    assert main(_gate_args(home, policy, "gate", "--junit", str(junit))) == 2
    [entry] = _logged(home)
    assert _last_error(capsys) == (f"nift-gate: error: {junit}: cannot be written (Permission denied); the decision "
                                   f"{entry['record_id']} (PENDING_REVIEW) is logged: rerun to write the outputs "
                                   f"(nothing is logged twice)")


# ---- relative paths in a config -----------------------------------------------------------------------------------

def test_output_paths_in_a_config_are_resolved_against_its_folder_before_they_exist(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "pipeline.yaml").write_text(yaml.safe_dump({
        "gate": {"registry": "registry", "policy": "policy.yaml"},
        "review": {"tokens_file": "secrets/tokens.yaml"}, "data": {"teacher": {"model": "some-org/teacher"}}}))
    elsewhere = tmp_path / "ci"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where CI runs: not the config's folder
    config = load_pipeline_config(conf / "pipeline.yaml")
    assert config.gate.registry == str(conf / "registry")  # not there yet: the first gate creates it
    assert config.gate.policy == str(conf / "policy.yaml")
    assert config.review.tokens_file == str(conf / "secrets" / "tokens.yaml")
    assert config.data.teacher.model == "some-org/teacher"  # a model name (hub id) that no folder there holds


# ---- registry folders that are not there --------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["history"], ["history", "--json"], ["registry", "show"]])
def test_a_mistyped_registry_folder_is_refused_not_read_as_empty(run, tmp_path, capsys, command):
    home, policy = run
    assert main(_gate_args(home, policy, "gate")) == VerdictExit.PENDING_REVIEW
    capsys.readouterr()
    typo = home / "registy"
    assert main(_gate_args(home, policy, *command, "--registry", str(typo))) == 2
    assert _last_error(capsys) == (f"nift-gate: error: {typo}: no such registry folder (gate.registry or "
                                   f"--registry): mistyped? No decision was ever logged there")


def test_the_default_registry_may_be_missing_only_while_nothing_was_decided(run, capsys):
    home, policy = run
    assert main(_gate_args(home, policy, "registry", "show")) == 0
    assert capsys.readouterr().out == f"no decisions logged yet: no registry at {home / 'registry'}\n"
    assert main(_gate_args(home, policy, "history")) == 0
    assert "no decisions logged yet" in capsys.readouterr().out
    assert main(_gate_args(home, policy, "gate")) == VerdictExit.PENDING_REVIEW
    (home / "registry").rename(home / "moved")
    capsys.readouterr()
    assert main(_gate_args(home, policy, "history")) == 2
    assert "the runs home's registry is missing, yet" in _last_error(capsys)


# ---- the policy before the first stage of `run` -------------------------------------------------------------------

def test_run_checks_the_policy_before_the_first_stage(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(pipeline, "_RUNNERS", {stage: lambda c, s, f, stage=stage: ran.append(stage)
                                               for stage in pipeline.STAGES})
    config = load_pipeline_config(None, [f"gate.policy={tmp_path / 'missing.yaml'}"])
    with pytest.raises(ConfigError, match=r"missing.yaml: policy file not found"):
        pipeline.run_pipeline(config, RunStore("r1", tmp_path / "runs"), echo=lambda line: None)
    assert ran == []


# ---- path mistakes: one line, exit 2 ------------------------------------------------------------------------------

def test_a_registry_that_is_a_file_is_refused(run, tmp_path, capsys):
    home, policy = run
    (tmp_path / "reg").write_text("")
    assert main(_gate_args(home, policy, "gate", "--set", f"gate.registry={tmp_path / 'reg'}")) == 2
    assert f"{tmp_path / 'reg'}: a file, not a registry folder" in _last_error(capsys)


def test_a_review_database_given_as_a_path_is_refused(run, tmp_path, capsys):
    home, policy = run
    assert main(_gate_args(home, policy, "gate", "--set", f"review.database={tmp_path / 'review.db'}")) == 2
    assert "review.database: not a database URL: give an SQLAlchemy URL" in _last_error(capsys)


def test_a_report_out_that_is_a_file_is_refused(run, tmp_path, capsys):
    home, policy = run
    (tmp_path / "report.html").write_text("")
    assert main(_gate_args(home, policy, "report", "--out", str(tmp_path / "report.html"))) == 2
    assert f"--out {tmp_path / 'report.html'}: a file; name the folder" in _last_error(capsys)


def test_history_into_a_closed_pipe_exits_quietly(tmp_path):
    read, write = os.pipe()
    os.close(read)  # what `| head` leaves once it has read its lines
    try:
        done = subprocess.run([sys.executable, "-m", "harness.app.cli", "history", "--json", "--home",
                               str(tmp_path / "runs")], stdout=write, stderr=subprocess.PIPE, check=False)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, b"")


# ---- config show --------------------------------------------------------------------------------------------------

def test_config_show_masks_the_database_and_mlflow_passwords(capsys):
    assert main(["config", "show", "--set", "review.database=postgresql://u:s3cret@db/labels",
                 "--set", "gate.mlflow.tracking_uri=https://ci:s3cret@mlflow.example/x"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["review"]["database"] == "postgresql://u:**********@db/labels"
    assert shown["gate"]["mlflow"]["tracking_uri"] == "https://ci:**********@mlflow.example/x"


# ---- help ---------------------------------------------------------------------------------------------------------

def test_help_offers_only_options_that_act_and_every_exit_status(capsys):
    for command in (["review", "summary"], ["review", "enqueue"], ["review", "serve"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "--force" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["gate", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "4 the decision is logged but publishing it (model card, MLflow) failed" in shown
    assert "default: gate.candidate, else bench.candidate's name" in shown
