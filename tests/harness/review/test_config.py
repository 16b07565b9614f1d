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


@pytest.mark.parametrize(("name", "problem"), [
    ("", "a reviewer name must not be empty or blank"),
    ("Ada ", "reviewer name 'Ada ' has spaces around it"),
    ("Ada\nverdict PROMOTE", "reviewer name 'Ada\\nverdict PROMOTE' holds a control character (U+000A)"),
    ("A\u200bda", "reviewer name 'A\\u200bda' holds a control character (U+200B)"),  # "Ada" twice: two quorum votes
    ("Rene\u0301", "reviewer name 'Rene\\u0301' is not in Unicode NFC form (a letter and a combining mark where "
                   "one character is meant); write it as 'Ren\\xe9'"),
])
def test_a_reviewer_name_that_prints_like_another_or_forges_a_line_is_refused(tmp_path, name, problem):
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"reviewers": [{"name": "Ada"}, {"name": name}]}}))
    with pytest.raises(ConfigError) as raised:
        load_review_section(path)
    assert f"pipeline.yaml: invalid config: review.reviewers.1.name: Value error, {problem}" in str(raised.value)


# ---- sign-in throttling ------------------------------------------------------------------------------------------

class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _guard():
    from harness.review.config import ReviewConfig, SignInGuard

    clock = _Clock()
    config = ReviewConfig(reviewers=[{"name": "ann", "token": "ann-token"}, {"name": "bob", "token": "bob-token"}])
    return SignInGuard(clock=clock), config, clock


def test_300_wrong_tokens_in_10_s_lock_the_name_and_the_right_one_is_refused():
    guard, config, clock = _guard()
    for _ in range(300):
        assert guard.sign_in(config, "ann", "guess").reviewer is None
        clock.now += 10 / 300
    locked = guard.sign_in(config, "ann", "ann-token")
    assert locked.reviewer is None and locked.locked_for == pytest.approx(30 - (10 - 4 * 10 / 300))  # locked at the 5th
    assert guard.sign_in(config, "bob", "bob-token").reviewer.name == "bob"  # per name
    clock.now += 30
    assert guard.sign_in(config, "ann", "ann-token").reviewer.name == "ann"  # the lockout ran out


def test_each_lockout_doubles_until_a_success_clears_the_name():
    guard, config, clock = _guard()
    waits = []
    for _ in range(4):
        attempts = [guard.sign_in(config, "ann", "guess") for _ in range(5)]
        assert [a.locked_for > 0 for a in attempts] == [False] * 4 + [True]
        waits.append(attempts[-1].locked_for)
        clock.now += waits[-1]
    assert waits == [30, 60, 120, 240]
    assert guard.sign_in(config, "ann", "ann-token").reviewer.name == "ann"
    assert [guard.sign_in(config, "ann", "guess").locked_for for _ in range(5)][-1] == 30  # back to the first


def test_unknown_names_are_counted_too_and_memory_is_bounded():
    from harness.review.config import SignInGuard

    _, config, clock = _guard()
    guard = SignInGuard(max_names=3, clock=clock)
    assert [guard.sign_in(config, "mallory", "x").locked_for for _ in range(5)][-1] == 30  # same answer as a real name
    for name in ("a", "b", "c", "d"):
        guard.sign_in(config, name, "x")
    assert len(guard._names) == 3 and "mallory" in guard._names  # a locked name is the last to be forgotten


# ---- a malformed tokens file is refused at load --------------------------------------------------------------------

BAD_TOKENS = [("- ann-token\n", "expected a mapping of reviewer name -> token, got list"),
              ("ann: yes\n", r"the tokens of \['ann'\] are read by YAML as numbers, booleans or dates, not strings"),
              ("ann:\n", r"the tokens of \['ann'\] are not non-empty strings"),
              ("ann: ''\n", r"the tokens of \['ann'\] are not non-empty strings"),
              ("ann: [1, 2]\n", r"the tokens of \['ann'\] are not non-empty strings"),
              ("ann: 'x\n", "not valid YAML/JSON")]


@pytest.mark.parametrize(("text", "message"), BAD_TOKENS)
def test_the_review_app_loader_refuses_a_malformed_tokens_file(tmp_path, text, message):
    (tmp_path / "tokens.yaml").write_text(text)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"reviewers": [{"name": "ann"}], "tokens_file": "tokens.yaml"}}))
    with pytest.raises(ConfigError, match=rf"review.tokens_file: .*tokens.yaml(:\d+)?: {message}"):
        load_review_section(path)


# A token on a line PyYAML cannot read must not come back in the error: PyYAML's own message quotes that line.
SECRET = "s3cr3t-ann-token"
UNREADABLE_TOKENS = [(f"ann: [{SECRET}\n", "2: not valid YAML/JSON (expected ',' or ']', but got '<stream end>')"),
                     (f"ann: {SECRET}\x00\n", "1: not valid YAML/JSON (unacceptable character #x0000: special "
                                               "characters are not allowed)"),
                     (f"ann: !!python/object/apply:os.system [{SECRET}]\n",
                      "1: not valid YAML/JSON (could not determine a constructor for the tag "
                      "'tag:yaml.org,2002:python/object/apply:os.system')"),
                     (f"bob: x\nann: {SECRET}\nann: other\n", "3: key 'ann' appears twice (first on line 2)")]


@pytest.mark.parametrize(("text", "message"), UNREADABLE_TOKENS)
def test_a_tokens_file_error_is_one_line_with_its_line_and_never_the_token(tmp_path, text, message):
    (tmp_path / "tokens.yaml").write_text(text)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"review": {"reviewers": [{"name": "ann"}, {"name": "bob"}],
                                               "tokens_file": "tokens.yaml"}}))
    with pytest.raises(ConfigError) as raised:
        load_review_section(path)
    assert str(raised.value) == f"review.tokens_file: {tmp_path / 'tokens.yaml'}:{message}"
    assert SECRET not in str(raised.value)


# Strings to whoever typed them, not to YAML: 0123 is the octal 83, 1.50 the float 1.5, yes is true.
UNQUOTED_TOKENS = ["0123", "12345", "1.50", "yes", "2024-01-31"]


@pytest.mark.parametrize("token", UNQUOTED_TOKENS)
def test_a_token_yaml_reads_as_no_string_is_refused_by_name_and_quoted_it_is_the_token(tmp_path, token):
    from harness.review.config import ReviewConfig

    path = tmp_path / "tokens.yaml"
    path.write_text(f"bob: bob-token\nann: {token}\n")
    config = ReviewConfig(reviewers=[{"name": "ann"}, {"name": "bob"}], tokens_file=str(path))
    with pytest.raises(ConfigError) as raised:
        config.tokens()
    assert str(raised.value) == (f"review.tokens_file: {path}: the tokens of ['ann'] are read by YAML as numbers, "
                                 f"booleans or dates, not strings; put each token in quotes")
    path.write_text(f"bob: bob-token\nann: '{token}'\n")
    assert config.tokens() == {"ann": token, "bob": "bob-token"}


def test_a_numeric_token_stops_the_command_in_one_line_without_the_token(tmp_path, monkeypatch, capsys):
    from harness.app.cli import main

    (tmp_path / "tokens.yaml").write_text("ann: 0123\n")
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann"}],
                                                           "tokens_file": "tokens.yaml"}}))
    assert main(["review", "summary", "--config", str(cfg), "--home", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err == (f"nift-gate: error: review.tokens_file: {tmp_path / 'tokens.yaml'}: the tokens of ['ann'] are "
                   f"read by YAML as numbers, booleans or dates, not strings; put each token in quotes\n")
    assert "0123" not in err.replace(str(tmp_path), "") and "83" not in err.replace(str(tmp_path), "")


def test_a_missing_tokens_file_stops_only_the_command_people_sign_in_through(tmp_path, monkeypatch, capsys):
    import subprocess

    from harness.app.cli import main
    from harness.review.store import ReviewStore

    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("serve started the app"))
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann"}],
                                                           "tokens_file": str(tmp_path / "absent.yaml")}}))
    home = ["--config", str(cfg), "--home", str(tmp_path / "runs")]
    assert main(["review", "serve", *home]) == 2
    assert "absent.yaml not found" in capsys.readouterr().err
    (tmp_path / "runs" / "r1" / "review").mkdir(parents=True)
    ReviewStore(f"sqlite:///{tmp_path / 'runs' / 'r1' / 'review' / 'review.db'}").close()  # export reads a store
    assert main(["review", "export", "--out", str(tmp_path / "labels.csv"), *home]) == 0  # signs nobody in


# Not `run`, `gate` or `report`: they load the same config but sign nobody in, and a CI machine running them
# need not hold the reviewers' tokens file at all.
@pytest.mark.parametrize("command", [["review", "enqueue"], ["review", "summary"],
                                     ["review", "export", "--out", "labels.csv"], ["review", "serve"]])
def test_every_review_command_refuses_a_malformed_tokens_file(tmp_path, monkeypatch, capsys, command):
    import subprocess

    from harness.app.cli import main

    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("serve started the app"))
    (tmp_path / "tokens.yaml").write_text("- ann-token\n")
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "r1", "review": {"reviewers": [{"name": "ann"}],
                                                           "tokens_file": "tokens.yaml"}}))
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--config", str(cfg), "--home", str(tmp_path / "runs")]) == 2
    assert "tokens.yaml: expected a mapping of reviewer name -> token" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "labels.csv").exists()  # nothing written
