"""End to end on the real embedded model (slow: model conversion on first use, then real generation)."""

import json

import pytest

from harness.app.cli import main


@pytest.mark.slow
def test_demo_config_builds_pairs_with_the_embedded_teacher(tmp_path, capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
    code = main(["data", "build", "--config", str(config), "--run", "e2e", "--limit", "6",
                 "--set", "data.filters.judge.sample_size=3", "--set", "data.teacher.max_new_tokens=24"])
    assert code == 0, capsys.readouterr().err
    folder = tmp_path / "runs" / "e2e" / "data"
    pairs = [json.loads(line) for line in (folder / "nift" / "pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 6
    assert all(p["messages"][1]["content"].strip() for p in pairs)
    assert all(p["teacher"]["model"] == "smollm2-135m-instruct" for p in pairs)
    record = json.loads((folder / "nift" / "record.json").read_text())
    assert record["judge"]["labelled"] == 3
    assert "weak judge" in (folder / "nift" / "card.md").read_text()
    assert record["generation"]["completion_tokens_per_s"] > 0
    raw = [json.loads(line) for line in (folder / "nift-raw" / "pairs.jsonl").read_text().splitlines()]
    assert [p["messages"][0] for p in raw] == [p["messages"][0] for p in pairs]
