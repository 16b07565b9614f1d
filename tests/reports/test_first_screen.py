"""The report's first screen, as headless Chromium lays it out at 1280x800: the verdict, every line of the
plain-language summary and the top of the scorecard are inside the viewport. Checked from the DOM at screenshot
time (getBoundingClientRect over the DevTools protocol), not from the template. Set NIFT_SCREENSHOT_DIR to keep
the screenshots."""

import os
from pathlib import Path

import pytest
from devtools import HeadlessChromium, chromium_binary
from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    hallucination_record,
    override_as,
    save,
    standard_run,
    write_policy,
)

from harness.data.record import NiftDatasetRecord
from reports.build import write_report

WIDTH, HEIGHT = 1280, 800


def _first_screen(shot: Path):
    async def inspect(tools):
        await tools.wait_for("document.querySelector('#scorecard') !== null")
        state = {
            "viewport": await tools.js("[window.innerWidth, window.innerHeight, window.scrollY]"),
            "verdict": await tools.rect("#verdict"),
            "verdict_text": await tools.js("document.querySelector('#verdict').innerText"),
            "summary": await tools.rects("#summary > li"),
            "scorecard": await tools.rect("#scorecard"),
            "score_rows": await tools.rects("#scorecard tr"),
            "scripts": await tools.js("document.scripts.length"),
        }
        await tools.screenshot(shot)
        return state
    return inspect


def _run(tmp_path, review=True):
    """A run as the demo makes one: bench, toxicity and hallucination audits, review, and the NIFT data."""
    home = tmp_path / "runs"
    store = standard_run(home, review=review)
    save(store, hallucination_record("r1"), "audit/hallucination")
    save(store, NiftDatasetRecord(record_id="nift_dataset-x", run_id="r1", fingerprint="d" * 64, variant="nift",
                                  distill=True, rows=165, failed_rows=0, counts={}, instruction_rules={},
                                  contamination={}, teacher={"model": "t"},
                                  generation={"estimated_cost_usd": 0.04, "seconds": 0}, lengths={}, files={}),
         "data/nift")
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    return config, store


def _assert_first_screen(state, verdict: str):
    assert state["viewport"] == [WIDTH, HEIGHT, 0]
    assert state["scripts"] == 0
    assert state["verdict_text"].startswith(verdict)
    boxes = [state["verdict"], *state["summary"], state["scorecard"], *state["score_rows"][:2]]
    assert all(box["width"] > 0 and box["height"] > 0 for box in boxes), "each is laid out, not hidden"
    assert 0 <= state["verdict"]["top"] and state["verdict"]["bottom"] <= HEIGHT
    assert len(state["summary"]) >= 4  # per baseline, safety, human review, data cost
    assert all(line["bottom"] <= HEIGHT for line in state["summary"]), [line["text"][:40] for line in state["summary"]
                                                                        if line["bottom"] > HEIGHT]
    assert state["verdict"]["bottom"] <= state["summary"][0]["top"]
    assert state["summary"][-1]["bottom"] <= state["scorecard"]["top"]
    # the scorecard's top: its heading row and its first rule are on the first screen
    first_rule = state["score_rows"][1]  # [0] is the heading row
    assert first_rule["bottom"] <= HEIGHT, f"first scorecard row ends at {first_rule['bottom']}px"
    assert "PASS" in first_rule["text"] or "FAIL" in first_rule["text"] or "PENDING" in first_rule["text"]


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (make system-deps installs it)")
def test_verdict_summary_and_scorecard_are_on_the_first_screen(tmp_path):
    config, store = _run(tmp_path, review=False)
    pending = write_report(config.report, store, CANDIDATE, out=tmp_path / "pending")
    # the longest headline there is: an override, with the release manager's reason and the gate's own
    override_as(config, store, "PROMOTE", "Ada Lovelace", "the release board accepted the risk of shipping before "
                                                         "the second reviewer finished the queue")
    overridden = write_report(config.report, store, CANDIDATE, out=tmp_path / "overridden")
    shots = Path(os.environ.get("NIFT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with HeadlessChromium(tmp_path / "browser") as browser:
        first = browser.run(pending.as_uri(), _first_screen(shots / "report-first-screen.png"), WIDTH, HEIGHT)
        second = browser.run(overridden.as_uri(), _first_screen(shots / "report-first-screen-override.png"), WIDTH,
                             HEIGHT)
    _assert_first_screen(first, "PENDING_REVIEW")
    _assert_first_screen(second, "PROMOTE by override")
    assert (shots / "report-first-screen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
