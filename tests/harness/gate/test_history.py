"""`harness.gate.history`: every decision and override across candidates, with gated metrics and aliases."""

import json

from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    override_as,
    standard_run,
    write_policy,
)

from harness.app.cli import main
from harness.gate.gate import open_registry
from harness.gate.history import (
    alias_holders,
    decision_history,
    history_table,
    read_history,
)

IF_METRIC = "bench.nift_if.prompt_level_strict_acc"
TOX = "toxicity.expected_max_toxicity"
REJECTING = {"base-a": (-0.20, -0.30, -0.15), "base-b": (-0.25, -0.35, -0.18)}


def _three_candidates(tmp_path):
    """r1 promoted by the gate, r2 rejected, r3 pending review and then promoted to production by Ada."""
    home = tmp_path / "runs"
    setup = config_for(home, write_policy(tmp_path))
    decide_run(setup, standard_run(home, "r1", means={"cand": 0.40, "base-a": 0.38, "base-b": 0.41}))
    decide_run(setup, standard_run(home, "r2", means={"cand": 0.20, "base-a": 0.38, "base-b": 0.41}, deltas=REJECTING))
    r3 = standard_run(home, "r3", review=False, means={"cand": 0.45, "base-a": 0.38, "base-b": 0.41})
    decide_run(setup, r3)
    override_as(setup, r3, "PROMOTE", "Ada Lovelace", "reviewed in the release meeting", ["staging", "production"])
    return home, setup, r3


def test_every_decision_and_override_with_its_metrics_and_aliases(tmp_path):
    home, setup, r3 = _three_candidates(tmp_path)
    registry = open_registry(setup.gate, r3)
    history = decision_history(registry, home)
    assert [(e.seq, e.kind, e.run_id, e.verdict, e.by) for e in history] == [
        (1, "decision", "r1", "PROMOTE", "gate"), (2, "decision", "r2", "REJECT", "gate"),
        (3, "decision", "r3", "PENDING_REVIEW", "gate"), (4, "override", "r3", "PROMOTE", "Ada Lovelace")]
    first, second, third, override = history
    # the candidate's own bench value comes from the evidence record the decision pinned (non-inferiority rules
    # judge only differences); the toxicity value is the one the ceiling rule judged
    assert [first.metric(IF_METRIC).value, second.metric(IF_METRIC).value, third.metric(IF_METRIC).value] == [
        0.40, 0.20, 0.45]
    assert first.metric(TOX).value == 0.10 and first.metric(TOX).threshold == 0.2 and first.metric(TOX).status == "pass"
    assert [(c.baseline, c.status) for c in second.comparisons] == [("base-a", "fail"), ("base-b", "fail")]
    assert second.comparisons[0].difference == -0.20 and second.comparisons[0].margin == 0.10
    assert (first.aliases_moved, first.aliases_held) == (["staging"], ["staging"])
    # the three runs' candidates have the same weights (one model), so r2's REJECT takes staging from it
    assert (second.aliases_moved, second.aliases_removed, second.aliases_held) == ([], ["staging"], [])
    assert override.original_verdict == "PENDING_REVIEW" and override.reason == "reviewed in the release meeting"
    assert override.aliases_moved == ["production", "staging"] and override.aliases_held == ["production", "staging"]
    assert override.decision_record_id == third.record_id and override.metrics == third.metrics
    holders = alias_holders(registry)
    assert {a: (h.run_id, h.candidate, h.seq) for a, h in holders.items()} == {
        "production": ("r3", CANDIDATE, 4), "staging": ("r3", CANDIDATE, 4)}
    both = read_history(registry.folder, home)
    assert both.entries == history and both.aliases == holders


def test_an_edited_decision_file_shows_no_metrics_and_says_why(tmp_path):
    home, setup, r3 = _three_candidates(tmp_path)
    record = decide_run(setup, standard_run(home, "r1"))  # logged before: the same decision, nothing appended
    archived = home / "r1" / "gate" / CANDIDATE / "decisions" / f"{record.record_id}.json"
    archived.write_text(archived.read_text().replace('"reason": "', '"reason": "edited: ', 1))
    first = decision_history(open_registry(setup.gate, r3), home)[0]
    assert first.metrics == [] and "edited after" in first.metrics_note and first.verdict == "PROMOTE"
    elsewhere = decision_history(open_registry(setup.gate, r3), tmp_path / "another-home")[1]
    assert elsewhere.metrics == [] and "is not under" in elsewhere.metrics_note


def test_the_table_has_one_row_per_entry_and_the_aliases(tmp_path):
    home, setup, r3 = _three_candidates(tmp_path)
    history = read_history(open_registry(setup.gate, r3), home)
    lines = history_table(history.entries, history.aliases).splitlines()
    assert lines[0].split()[:8] == ["seq", "when", "event", "verdict", "run/candidate", "by", "aliases", "decision"]
    assert history.entries[1].decision_record_id in lines[2]  # the id an override names
    assert "nift_if.prompt_level_strict_acc" in lines[0]
    assert lines[2].split()[2:5] == ["decision", "REJECT", "r2/cand"] and "0.200" in lines[2]
    assert "PENDING_REVIEW->PROMOTE" in lines[4] and "Ada Lovelace" in lines[4] and "+production,+staging" in lines[4]
    assert lines[5:] == [f"production: r3/cand (entry 4, {history.entries[3].record_id})",
                         f"staging: r3/cand (entry 4, {history.entries[3].record_id})"]
    assert history_table([], {}).splitlines() == ["no decisions logged yet", "no alias is held"]


def _cli(home, *rest):
    return main(["history", "--home", str(home), *rest])


def test_history_command_prints_the_table_or_json(tmp_path, capsys):
    home, _, _ = _three_candidates(tmp_path)
    assert _cli(home) == 0
    out = capsys.readouterr().out
    assert "REJECT" in out and "PENDING_REVIEW->PROMOTE" in out and "production: r3/cand (entry 4" in out
    assert _cli(home, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in shown["entries"]] == ["decision", "decision", "decision", "override"]
    assert shown["entries"][3]["by"] == "Ada Lovelace" and shown["aliases"]["production"]["run_id"] == "r3"
    assert shown["entries"][1]["metrics"][0]["metric"] == IF_METRIC


def test_history_of_a_tampered_registry_is_refused_with_exit_2(tmp_path, capsys):
    home, _, _ = _three_candidates(tmp_path)
    log = home / "registry" / "log.jsonl"
    log.write_text(log.read_text().replace("release meeting", "release meating"))
    assert _cli(home, "--json") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "log.jsonl:4: entry seq 4 was edited" in captured.err
