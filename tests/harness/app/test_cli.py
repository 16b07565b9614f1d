import json
import subprocess
import sys

import pytest

from harness.app.cli import main
from harness.app.config import load_pipeline_config
from harness.core.errors import ConfigError


def test_help_explains_the_stage():
    out = subprocess.run([sys.executable, "-m", "harness.app.cli", "data", "build", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "NIFT pairs" in out.stdout and "--limit" in out.stdout and "Resumable" in out.stdout


def test_config_precedence_cli_over_set_over_yaml(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("run: from-yaml\ndata:\n  seed: 3\n  cut: {ratio: 0.4}\n  corpus: {path: docs.jsonl}\n")
    (tmp_path / "docs.jsonl").write_text("")
    config = load_pipeline_config(path, ["data.seed=5", "data.cut.jitter=0.0"], {"data.seed": 9, "run": None})
    assert config.run == "from-yaml" and config.data.seed == 9
    assert config.data.cut.ratio == 0.4 and config.data.cut.jitter == 0.0
    assert config.data.corpus.path == str(tmp_path / "docs.jsonl")  # relative to the config file


def test_config_errors_name_file_line_and_field(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data:\n  seed: 1\n   cut: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3: not valid YAML"):
        load_pipeline_config(bad_yaml)
    bad_field = tmp_path / "field.yaml"
    bad_field.write_text("data:\n  cut:\n    ratio: 1.5\n")
    with pytest.raises(ConfigError, match=r"field.yaml: invalid config: data.cut.ratio"):
        load_pipeline_config(bad_field)
    with pytest.raises(ConfigError, match="data.teacher.bogus"):
        load_pipeline_config(None, ["data.teacher.bogus=1"])


def test_user_errors_exit_non_zero_with_a_message_not_a_traceback(tmp_path, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"body": "x"}) + "\n")
    assert main(["data", "build", "--corpus", str(corpus)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("nift-gate: error:") and "no field 'text'" in err and "Traceback" not in err


def test_readme_config_reference_is_current():
    from pathlib import Path

    from harness.app.config import reference_markdown

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("<!-- config-reference:start -->\n", 1)[1].split("<!-- config-reference:end -->", 1)[0]
    assert block == reference_markdown(), "run `make readme` to regenerate the block"


def test_set_reaches_list_entries_by_name_or_index(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("train:\n  - {name: a, recipe: sft, data: x.jsonl}\n  - {name: b, recipe: nift, data: data:nift}\n")
    config = load_pipeline_config(path, ["train.b.max_steps=3", "train.0.epochs=2"])
    assert config.train[1].max_steps == 3 and config.train[0].epochs == 2
    with pytest.raises(ConfigError, match="no entry 'c'"):
        load_pipeline_config(path, ["train.c.max_steps=3"])


def test_audit_targets_default_to_the_bench_models(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("bench:\n  candidate: train:cand\n  baselines: [{name: b, model: smollm2-135m-instruct}]\n")
    candidate, baselines = load_pipeline_config(path).audit_targets()
    assert candidate == "train:cand" and [b.name for b in baselines] == ["b"]
    own = load_pipeline_config(path, ["audit.candidate=train:other", "audit.baselines=[]"]).audit_targets()
    assert own == ("train:other", [])


def test_config_show_masks_review_tokens_and_demo_config_resolves(capsys):
    assert main(["config", "show", "--config", "configs/demo.yaml"]) == 0
    shown = capsys.readouterr().out
    assert "demo-ana" not in shown and "token: '**********'" in shown
    config = load_pipeline_config("configs/demo.yaml")
    assert config.gate.policy.endswith("configs/policy-demo.yaml")  # relative to the config file
    assert config.review.required_reviewers == 2


def test_run_help_names_every_stage():
    out = subprocess.run([sys.executable, "-m", "harness.app.cli", "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for stage in ("data build", "train", "bench", "audit", "review", "gate", "report"):
        assert stage in out.stdout
