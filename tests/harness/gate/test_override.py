"""`nift-gate override` only by a configured release manager who authenticates with their review-app token."""

import pytest
from gate_records import (
    CANDIDATE,
    TOKENS,
    config_for,
    decide_run,
    latest_decision_id,
    override_as,
    standard_run,
    write_policy,
)

from harness.app.cli import main
from harness.core.store import RunStore
from harness.gate.gate import OverrideNotAuthorised, open_registry
from harness.review.config import ReviewConfig


def _pending(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    setup = config_for(home, write_policy(tmp_path))
    decide_run(setup, store)
    return setup, store


def _nothing_moved(setup, store):
    assert not (store.root / "gate" / CANDIDATE / "overrides").exists()
    entries = open_registry(setup.gate, store).verify()
    assert [e["event"] for e in entries] == ["decision"] and open_registry(setup.gate, store).aliases() == {}


@pytest.mark.parametrize("by, token, message", [
    ("Mallory", "anything", "unknown name or wrong token for 'Mallory'"),
    ("Ada Lovelace", "grace-token-2", "unknown name or wrong token for 'Ada Lovelace'"),  # another one's token
    ("Ada Lovelace", "", "no token"),
    ("Bob", TOKENS["Bob"], "'Bob' is a reviewer, not a release manager"),
])
def test_only_an_authenticated_release_manager_may_override(tmp_path, by, token, message):
    setup, store = _pending(tmp_path)
    with pytest.raises(OverrideNotAuthorised, match=message):
        override_as(setup, store, "PROMOTE", by, "ship it", ["production"], token=token)
    _nothing_moved(setup, store)


def test_a_release_manager_with_the_right_token_overrides(tmp_path):
    setup, store = _pending(tmp_path)
    done = override_as(setup, store, "PROMOTE", "Ada Lovelace", "reviewed in the release meeting", ["production"])
    assert (done.release_manager, done.decision, done.aliases) == ("Ada Lovelace", "PROMOTE", ["production"])
    assert open_registry(setup.gate, store).aliases()["production"]["record_id"] == done.record_id


def test_with_oidc_the_command_line_says_what_to_configure(tmp_path):
    setup, store = _pending(tmp_path)
    setup.reviewers = ReviewConfig.model_validate({"oidc": True, "reviewers": [
        {"name": "Ada Lovelace", "role": "release_manager", "email": "ada@example.org"}]})
    with pytest.raises(OverrideNotAuthorised, match=r"review.oidc .* give 'Ada Lovelace' a token for the CLI "
                                                    r"\(review.reviewers\[\].token_env"):
        override_as(setup, store, "PROMOTE", "Ada Lovelace", "ship it", token="whatever")
    _nothing_moved(setup, store)


# ---- the command line: the token comes from the environment, never from an argument -------------------------------

def _args(home, policy, by, *rest):
    decision = latest_decision_id(RunStore("r1", home))
    return ["override", "--decision", "PROMOTE", "--decision-id", decision, "--by", by, "--reason", "release meeting",
            "--alias", "production", *rest, "--home", str(home), "--run", "r1",
            "--set", f"bench.candidate=train:{CANDIDATE}",
            "--set", f"gate.policy={policy}", "--set", f"gate.registry={home / 'registry'}",
            "--set", ("review.reviewers=[{name: meg, role: release_manager, token_env: MEG_TOKEN}, "
                      "{name: ann, token_env: ANN_TOKEN}]")]


@pytest.mark.parametrize("by, shell_token, message", [
    ("mallory", "meg-secret", "unknown name or wrong token for 'mallory'"),
    ("meg", "not-megs", "unknown name or wrong token for 'meg'"),
    ("ann", "ann-secret", "'ann' is a reviewer, not a release manager"),
    ("meg", None, "no token"),
])
def test_override_cli_refuses_with_one_line_and_exit_2(tmp_path, capsys, monkeypatch, by, shell_token, message):
    monkeypatch.setenv("MEG_TOKEN", "meg-secret")
    monkeypatch.setenv("ANN_TOKEN", "ann-secret")
    monkeypatch.delenv("NIFT_TOKEN", raising=False)
    if shell_token is not None:
        monkeypatch.setenv("NIFT_TOKEN", shell_token)
    setup, store = _pending(tmp_path)
    assert main(_args(store.home, setup.gate.policy, by)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nift-gate: error: ") and message in err
    _nothing_moved(setup, store)


def test_override_cli_reads_the_token_from_the_named_variable(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEG_TOKEN", "meg-secret")
    monkeypatch.setenv("NIFT_TOKEN", "wrong")
    monkeypatch.setenv("RELEASE_TOKEN", "meg-secret")
    setup, store = _pending(tmp_path)
    assert main(_args(store.home, setup.gate.policy, "meg", "--token-env", "RELEASE_TOKEN")) == 0
    assert "PENDING_REVIEW -> PROMOTE by meg; aliases production" in capsys.readouterr().out
    assert open_registry(setup.gate, store).aliases()["production"]["candidate"] == CANDIDATE


def test_override_cli_has_no_token_argument(capsys):
    with pytest.raises(SystemExit):
        main(["override", "--decision", "PROMOTE", "--decision-id", "x", "--by", "meg", "--reason", "x",
              "--token", "meg-secret"])
    assert "unrecognized arguments: --token" in capsys.readouterr().err
