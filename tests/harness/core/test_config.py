"""The one YAML reader and --set parser, shared by the pipeline config and the review app's section."""

from pathlib import Path

import pytest

from harness.app.config import load_pipeline_config
from harness.core.config import parse_assignment, read_config_yaml
from harness.core.errors import ConfigError
from harness.review.config import load_review_section

LOADERS = [read_config_yaml, load_pipeline_config, load_review_section]


@pytest.mark.parametrize("load", LOADERS, ids=lambda f: f.__name__)
def test_a_config_that_is_not_utf8_names_the_line_and_column(tmp_path, load):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"run: r\nreview:\n  seed: 3\n  title: \xff\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:4: not UTF-8 \(byte 0xff at column 10\)"):
        load(path)


@pytest.mark.parametrize("load", LOADERS, ids=lambda f: f.__name__)
def test_a_config_that_is_a_folder_is_refused(tmp_path, load):
    with pytest.raises(ConfigError, match=r": is a folder, not a config file"):
        load(tmp_path)


def test_a_missing_config_is_named():
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found"):
        read_config_yaml(Path("nope.yaml"))


def test_a_yaml_reader_error_stays_on_one_line(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("run: a\x01b\n")  # a control character: PyYAML's reader error spans two lines
    with pytest.raises(ConfigError) as raised:
        read_config_yaml(path)
    assert "not valid YAML" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("text", ["data.cut.ratio=[1", "data.seed={a: 1", "run='x"])
def test_a_set_value_that_is_not_yaml_names_the_assignment(text):
    with pytest.raises(ConfigError) as raised:
        parse_assignment(text)
    assert str(raised.value).startswith(f"--set {text!r}: the value is not valid YAML (")
    with pytest.raises(ConfigError, match="--set"):
        load_review_section(None, [text])


def test_a_set_value_in_quotes_is_a_string():
    assert parse_assignment('bench.candidate="[1"') == (["bench", "candidate"], "[1")
