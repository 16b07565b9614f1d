"""An override names the decision it overrides, and lands on no other: a gate that decided again while the
release manager read the earlier decision (a rerun bench, a regression) makes the override refused, not applied
to the new decision."""

import pytest
from gate_records import (
    CANDIDATE,
    bench_record,
    config_for,
    decide_run,
    override_as,
    save,
    standard_run,
    write_policy,
)

from harness.app.cli import main
from harness.core.errors import InputError
from harness.gate.gate import open_registry

#: A bench rerun that regressed: every baseline's paired CI far below the non-inferiority margin.
REGRESSED = {"base-a": (-0.4, -0.5, -0.3), "base-b": (-0.4, -0.5, -0.3)}


@pytest.fixture
def read_then_regressed(tmp_path):
    """D1 (PENDING_REVIEW: no review yet), which the release manager read; then the bench rerun regressed and the
    gate logged D2 (REJECT). Returns the setup, the store and the two decisions."""
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    setup = config_for(home, write_policy(tmp_path))
    read = decide_run(setup, store)
    save(store, bench_record("r1", deltas=REGRESSED), f"bench/{CANDIDATE}")
    latest = decide_run(setup, store)
    assert (read.decision, latest.decision) == ("PENDING_REVIEW", "REJECT")
    return setup, store, read, latest


def _events(setup, store) -> list[tuple[str, str]]:
    return [(e["event"], e["decision"]) for e in open_registry(setup.gate, store).verify()]


def test_an_override_of_a_decision_no_longer_the_latest_is_refused(read_then_regressed):
    setup, store, read, latest = read_then_regressed
    with pytest.raises(InputError) as refused:
        override_as(setup, store, "PROMOTE", "Ada Lovelace", "D1 only waits for a second reviewer",
                    decision_id=read.record_id)
    message = str(refused.value)
    assert "\n" not in message
    assert f"decision {read.record_id} (PENDING_REVIEW, registry entry 1) is no longer the latest" in message
    assert f"{latest.record_id} (REJECT, registry entry 2)" in message and "nothing was logged" in message
    # nothing moved: the regressed candidate holds no alias, and no override was written
    assert _events(setup, store) == [("decision", "PENDING_REVIEW"), ("decision", "REJECT")]
    assert open_registry(setup.gate, store).aliases() == {}
    assert not (store.root / "gate" / CANDIDATE / "overrides").exists()


def test_an_override_of_the_latest_decision_it_names_is_logged(read_then_regressed):
    setup, store, _, latest = read_then_regressed
    record = override_as(setup, store, "PROMOTE", "Ada Lovelace", "the regression is a known flaky task",
                         decision_id=latest.record_id)
    assert (record.decision_record_id, record.original_decision) == (latest.record_id, "REJECT")
    assert _events(setup, store)[-1] == ("override", "PROMOTE")


def test_a_decision_reached_again_is_the_latest_again(read_then_regressed):
    setup, store, read, latest = read_then_regressed
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")  # the regression was a bad rerun: the evidence is back
    assert decide_run(setup, store).record_id == read.record_id  # logged again as a redecision
    with pytest.raises(InputError, match=f"decision {latest.record_id} \\(REJECT, registry entry 2\\) is no longer"):
        override_as(setup, store, "REJECT", "Ada Lovelace", "no", decision_id=latest.record_id)
    assert override_as(setup, store, "PROMOTE", "Ada Lovelace", "reviewed offline",
                       decision_id=read.record_id).decision_record_id == read.record_id


def test_an_unknown_decision_id_is_refused_naming_the_latest(read_then_regressed):
    setup, store, _, latest = read_then_regressed
    with pytest.raises(InputError, match=f"--decision-id 'gate_decision-typo' is no logged decision of r1/cand; "
                                         f"the latest decision of r1/cand is {latest.record_id} \\(REJECT"):
        override_as(setup, store, "PROMOTE", "Ada Lovelace", "ship it", decision_id="gate_decision-typo")
    assert _events(setup, store) == [("decision", "PENDING_REVIEW"), ("decision", "REJECT")]


def _cli(store, setup, *flags):
    return ["override", "--decision", "PROMOTE", "--by", "Ada Lovelace", "--reason", "metrics fine", *flags,
            "--home", str(store.home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
            "--set", f"gate.policy={setup.gate.policy}", "--set", f"gate.registry={setup.gate.registry}",
            "--set", "review.reviewers=[{name: Ada Lovelace, role: release_manager, token_env: ADA_TOKEN}]"]


def test_the_command_needs_the_decision_id_and_refuses_a_stale_one_in_one_line(read_then_regressed, capsys,
                                                                                monkeypatch):
    setup, store, read, latest = read_then_regressed
    monkeypatch.setenv("ADA_TOKEN", "ada-secret")
    monkeypatch.setenv("NIFT_TOKEN", "ada-secret")
    with pytest.raises(SystemExit) as missing:
        main(_cli(store, setup))
    assert missing.value.code == 2 and "required: --decision-id" in capsys.readouterr().err
    assert main(_cli(store, setup, "--decision-id", read.record_id)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nift-gate: error: override refused: ")
    assert read.record_id in err and f"{latest.record_id} (REJECT" in err
    assert _events(setup, store) == [("decision", "PENDING_REVIEW"), ("decision", "REJECT")]
    assert main(_cli(store, setup, "--decision-id", latest.record_id)) == 0
    assert "REJECT -> PROMOTE by Ada Lovelace" in capsys.readouterr().out


def test_override_help_names_the_decision_id():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["override", "--help"])
    assert "--decision-id ID" in out.getvalue() and "latest decision" in out.getvalue()
