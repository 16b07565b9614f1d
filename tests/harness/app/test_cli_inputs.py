"""Bad input through the command line: exit 2, one line naming the file, line or field, nothing written."""

import json

import pytest
import yaml
from pinning import pin_outputs
from review_support import make_run

from harness.app.cli import main


def _error(capsys) -> str:
    """The one error line (progress bars share stderr)."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith("teacher [")]
    assert len(lines) == 1 and lines[0].startswith("nift-gate: error: "), err
    return lines[0]


COMMANDS = [["config", "show", "--config"], ["data", "build", "--config"], ["review", "enqueue", "--config"],
            ["gate", "--config"], ["run"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_config_that_is_not_utf8_is_named_with_its_line(tmp_path, capsys, command):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(b"run: r\ndata:\n  seed: 1  # caf\xe9\n")
    assert main([*command, str(cfg)]) == 2
    assert f"{cfg}:3: not UTF-8 (byte 0xe9 at column 17)" in _error(capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_config_that_is_a_folder_is_refused(tmp_path, capsys, command):
    folder = tmp_path / "configs"
    folder.mkdir()
    assert main([*command, str(folder)]) == 2
    assert f"{folder}: is a folder, not a config file" in _error(capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", [["config", "show"], ["data", "build"], ["review", "enqueue"]], ids=lambda c: c[0])
def test_a_set_value_that_is_not_yaml_names_the_assignment(tmp_path, capsys, command):
    assert main([*command, "--set", "data.cut.ratio=[1"]) == 2
    assert "--set 'data.cut.ratio=[1': the value is not valid YAML" in _error(capsys)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("file", ["samples.jsonl", "record.json"])
def test_review_enqueue_names_the_line_of_a_non_utf8_byte_and_opens_no_store(tmp_path, capsys, file):
    store = make_run(tmp_path / "runs", "r1")
    path = store.stage_dir("audit", "toxicity") / file
    data = path.read_bytes()
    at = data.index(b"continuation 2" if file == "samples.jsonl" else b"toxicity-test")
    path.write_bytes(data[:at] + b"\xe9" + data[at + 1:])
    if file == "samples.jsonl":
        pin_outputs(path.parent)  # as the audit would have written it (an edit since is refused before parsing)
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann", "token": "t"}]}}))
    assert main(["review", "enqueue", "--config", str(cfg), "--home", str(store.home)]) == 2
    line = data[:at].count(b"\n") + 1
    assert f"{path}:{line}: not UTF-8 (byte 0xe9" in _error(capsys)
    assert not (store.root / "review").exists()


def test_data_build_with_no_pair_left_is_an_error_and_writes_no_dataset(corpus_file, capsys):
    assert main(["data", "build", "--corpus", str(corpus_file), "--set", "data.variants=[{name: raw, distill: false}]",
                 "--set", "data.corpus.max_words=10", "--set", "data.corpus.min_words=2"]) == 2
    message = _error(capsys)
    assert "data [raw]: 0 pairs from 12 documents (dropped_too_long 12)" in message
    assert "corpus.min_words/max_words" in message
    assert not (corpus_file.parent / "runs" / "default" / "data" / "raw").exists()


def test_data_build_with_an_unreachable_teacher_exits_3_and_keeps_no_failed_shard(corpus_file, capsys):
    teacher = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "served", "max_retries": 0,
               "backoff_s": 0.0}
    assert main(["data", "build", "--corpus", str(corpus_file), "--set", f"data.teacher={json.dumps(teacher)}",
                 "--set", "data.limit=3"]) == 3
    message = _error(capsys)
    assert "data [nift]: the teacher failed on all 3 rows (first: corpus:1:" in message
    data = corpus_file.parent / "runs" / "default" / "data"
    assert not (data / "nift").exists()
    assert list(data.rglob("shard-*.json")) == []  # a rerun asks the teacher again


def test_an_embedded_path_leading_out_of_the_assets_is_refused(capsys, tmp_path):
    assert main(["data", "build", "--corpus", "embedded:../core/errors.py",
                 "--set", "data.variants=[{name: raw, distill: false}]"]) == 2
    assert "embedded:../core/errors.py: not a file shipped with nift-gate" in _error(capsys)
    assert not (tmp_path / "runs").exists()


def test_data_build_help_states_the_exit_statuses():
    from harness.app.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    data = commands.choices["data"]
    build = next(a for a in data._actions if a.dest == "data_command").choices["build"]
    text = " ".join(build.format_help().split())
    assert "2 on bad input or when a variant ends with 0 pairs" in text
    assert "3 when the teacher fails (teacher.on_failure=stop, or every row failed" in text
