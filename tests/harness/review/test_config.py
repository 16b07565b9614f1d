"""The review section of a pipeline YAML as the review app reads it: nothing but the run name and review:."""

from __future__ import annotations

import pytest
import yaml

from harness.core.errors import ConfigError
from harness.review.config import load_review_section


def test_reads_run_and_review_only_with_tokens_file_beside_the_yaml(tmp_path, monkeypatch):
    (tmp_path / "tokens.yaml").write_text(yaml.safe_dump({"ann": "t1"}))
    path = tmp_path / "pipeline.yaml"
    # Another section the review app has no business validating (here: not even a known field).
    path.write_text(yaml.safe_dump({"run": "r1", "data": {"no_such_field": 1},
                                    "review": {"reviewers": [{"name": "ann"}], "tokens_file": "tokens.yaml"}}))
    monkeypatch.chdir(tmp_path.parent)  # relative to the YAML's folder, not the working directory
    run, config = load_review_section(path)
    assert run == "r1"
    assert config.tokens_file == str((tmp_path / "tokens.yaml").resolve())
    assert config.tokens() == {"ann": "t1"}


def test_assignments_set_run_and_review_fields(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"reviewers": [{"name": "ann"}, {"name": "bob"}]}}))
    assignments = ["run=r2", "review.required_reviewers=3", "review.reviewers.bob.role=release_manager",
                   "data.cut.ratio=0.4"]  # another section's assignment is not the app's
    run, config = load_review_section(path, assignments)
    assert (run, config.required_reviewers, config.reviewer("bob").role) == ("r2", 3, "release_manager")
    run, config = load_review_section(None)
    assert (run, config.reviewers) == ("default", [])


def test_errors_name_the_file_and_the_field(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"required_reviewers": 0}}))
    with pytest.raises(ConfigError, match=r"pipeline.yaml: invalid config: review.required_reviewers: "):
        load_review_section(path)
    path.write_text("review: [unclosed\n")
    with pytest.raises(ConfigError, match=r"pipeline.yaml:\d+: not valid YAML"):
        load_review_section(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_review_section(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_review_section(None, ["review.seed"])
