"""The one YAML reader and --set parser, shared by the pipeline config and the review app's section."""

from pathlib import Path

import pytest
import yaml

from harness.app.config import load_pipeline_config
from harness.core.config import load_yaml, parse_assignment, read_config_yaml, yaml_error_line
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


# ---- a key given twice is refused, naming both lines ------------------------------------------------------------


def test_a_section_given_twice_is_refused_not_last_wins(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("run: x\nbench:\n  limit: 3\nbench:\n  limit: 5\n")
    for load in LOADERS:
        with pytest.raises(ConfigError) as raised:
            load(path)
        assert str(raised.value) == f"{path}:4: key 'bench' appears twice (first on line 2)"


def test_a_field_given_twice_inside_a_section_or_a_list_entry_is_refused(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("run: x\ntrain:\n  - name: a\n    recipe: nift\n    name: b\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:5: key 'name' appears twice \(first on line 3\)$"):
        read_config_yaml(path)


def test_a_merge_key_may_be_overridden_and_set_still_overrides_the_file(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("run: x\nbench: &b\n  limit: 3\n  seed: 1\nreview:\n  <<: {seed: 7, worst_k: 2}\n  seed: 9\n")
    assert read_config_yaml(path)["review"] == {"seed": 9, "worst_k": 2}
    config = load_pipeline_config(path, ["bench.limit=5", "review.seed=4"])
    assert (config.bench.limit, config.bench.seed, config.review.seed) == (5, 1, 4)


def test_a_set_value_with_a_key_twice_is_refused():
    with pytest.raises(ConfigError, match=r"^--set 'data.cut={ratio: 1, ratio: 2}': the value is not valid YAML "
                                          r"\(key 'ratio' appears twice \(first on line 1\)\)"):
        parse_assignment("data.cut={ratio: 1, ratio: 2}")


# ---- yaml_error_line: one line, the line number, never the quoted source ------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("run: x\nseed: \x00\n", "cfg.yaml:2: not valid YAML (unacceptable character #x0000: special characters "
                             "are not allowed)"),
    ("run: x\nsecret: [hunter2\n", "cfg.yaml:3: not valid YAML (expected ',' or ']', but got '<stream end>')"),
    ("run: x\nsecret: 'hunter2\n", "cfg.yaml:3: not valid YAML (found unexpected end of stream)"),
    ("run: !!python/object/apply:os.system [hunter2]\n",
     "cfg.yaml:1: not valid YAML (could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/object/apply:os.system')"),
])
def test_a_yaml_error_is_one_line_with_its_line_and_no_quoted_source(tmp_path, text, expected):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        read_config_yaml(path)
    assert str(raised.value) == f"{tmp_path}/{expected}"
    assert "hunter2" not in str(raised.value)


def test_yaml_error_line_without_the_text_names_the_file_only():
    with pytest.raises(yaml.YAMLError) as raised:
        load_yaml("a: \x00")
    assert yaml_error_line(raised.value, "f.yaml") == ("f.yaml: not valid YAML (unacceptable character #x0000: "
                                                       "special characters are not allowed)")


@pytest.mark.parametrize(("assignment", "problem"), [
    ("data.cut.ratio=true", "data.cut.ratio: Input should be a valid number, not true"),
    ("bench.limit=false", "bench.limit: Input should be a valid integer, not false"),  # int | None
    ("data.teacher.max_new_tokens=true", "data.teacher.max_new_tokens: Input should be a valid integer, not true"),
])
def test_a_boolean_where_a_number_is_meant_is_refused_not_read_as_one(assignment, problem):
    """pydantic reads true as 1: max_new_tokens: true would generate one token instead of failing."""
    with pytest.raises(ConfigError) as raised:
        load_pipeline_config(None, [assignment])
    assert str(raised.value) == f"--set and flags over the defaults: invalid config: {problem}"


def test_numbers_and_booleans_are_still_read_where_they_are_meant():
    config = load_pipeline_config(None, ["data.filters.near_dup_threshold=1", "bench.limit=3",
                                         "bench.pairwise.enabled=true"])
    threshold = config.data.filters.near_dup_threshold
    assert (threshold, type(threshold), config.bench.limit, config.bench.pairwise.enabled) == (1.0, float, 3, True)
