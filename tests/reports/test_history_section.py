"""The report's history section: every decision and override in the registry, this candidate against the
earlier ones, trend charts of the gated metrics with their bounds, and who holds staging and production."""

import re

import pytest
from gate_records import (
    CANDIDATE,
    bench_record,
    config_for,
    decide_run,
    override_as,
    review_record,
    save,
    toxicity_record,
    write_policy,
)

from harness.core.store import RunStore
from reports.build import write_report

RECIPES = (("r1", 0.36, 0.15), ("r2", 0.40, 0.12), ("r3", 0.45, 0.10))  # run, instruction following, toxicity


@pytest.fixture
def three_recipes(tmp_path):
    """Three runs (three NIFT recipes) decided into one registry; r2 promoted to production by override."""
    home = tmp_path / "runs"
    config = config_for(home, write_policy(tmp_path))
    stores = {}
    for run, strict, toxicity in RECIPES:
        store = stores[run] = RunStore(run, home)
        save(store, bench_record(run, means={"cand": strict, "base-a": 0.38, "base-b": 0.41}), f"bench/{CANDIDATE}")
        save(store, toxicity_record(run, emt={"cand": toxicity, "base-a": 0.12, "base-b": 0.15}), "audit/toxicity")
        save(store, review_record(run), "review")
        decide_run(config, store)
        if run == "r2":
            override_as(config, store, "PROMOTE", "Ada Lovelace", "the board chose r2", aliases=["production"])
    return config, stores


def _section(md: str) -> str:
    return md.split("## History: this candidate and the earlier ones\n", 1)[1].split("\n## ", 1)[0]


def test_history_lists_every_entry_newest_first_with_aliases_and_this_candidate(three_recipes):
    config, stores = three_recipes
    md = write_report(config.report, stores["r3"], CANDIDATE, registry=config.gate.registry).with_suffix(
        ".md").read_text()
    assert md.index("## Scorecard") < md.index("## History") < md.index("## Policy rules")
    section = _section(md)
    assert "4 registry entries for 3 candidates." in section
    assert "| **staging** | r3/cand **(this candidate)** | \\#4 |" in section
    assert "| **production** | r2/cand | \\#3 |" in section
    rows = [line for line in section.splitlines() if re.match(r"\| \d ", line)]
    assert [row.split(" | ")[0] for row in rows] == ["| 4", "| 3", "| 2", "| 1"]
    assert rows[0].startswith("| 4 |") and "| decision | PROMOTE | r3/cand **(this report)** | gate | +staging | 45% |" \
        in rows[0]
    assert "| override | PROMOTE → PROMOTE | r2/cand | Ada Lovelace | +production | 40% | 0.12 |" in rows[1]
    assert rows[3].endswith("| r1/cand | gate | +staging | 36% | 0.15 | 80% | 0.60 |")
    assert ("**Against r2/cand (entry \\#2, PROMOTE)**, the previous candidate: prompts whose formatting "
            "instructions are all followed (strict check): 45% vs 40% (higher, better); toxicity of the worst reply "
            "to a prompt (0-1 score): 0.10 vs 0.12 (lower, better)") in section


def test_history_trend_chart_is_inline_svg_with_one_panel_per_gated_metric(three_recipes):
    config, stores = three_recipes
    html = write_report(config.report, stores["r3"], CANDIDATE, registry=config.gate.registry).read_text()
    chart = re.search(r'<div class="chart" id="chart-history">(<svg .*?</svg>)\s*</div>', html, re.DOTALL)
    assert chart, "the trend chart, inline"
    # matplotlib names each subplot axes_1, axes_2, ...: one per gated metric with two or more decisions
    assert len(re.findall(r'<g id="axes_\d+">', chart.group(1))) == 4
    assert '<tr class="current"><td class="num">4</td>' in html


def test_an_earlier_candidate_report_marks_itself_and_compares_with_the_one_before(three_recipes):
    config, stores = three_recipes
    md = write_report(config.report, stores["r2"], CANDIDATE, registry=config.gate.registry).with_suffix(
        ".md").read_text()
    section = _section(md)
    assert "| **production** | r2/cand **(this candidate)** | \\#3 |" in section
    assert "| **staging** | r3/cand | \\#4 |" in section
    assert "r2/cand **(this report)**" in section and "r3/cand **(this report)**" not in section
    assert "**Against r1/cand (entry \\#1, PROMOTE)**, the previous candidate: " in section


def test_a_first_decision_has_a_history_of_one_and_no_trend(tmp_path):
    home = tmp_path / "runs"
    config = config_for(home, write_policy(tmp_path))
    store = RunStore("r1", home)
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")
    save(store, toxicity_record("r1"), "audit/toxicity")
    save(store, review_record("r1"), "review")
    decide_run(config, store)
    html_path = write_report(config.report, store, CANDIDATE, registry=config.gate.registry)
    section = _section(html_path.with_suffix(".md").read_text())
    assert "1 registry entry for 1 candidate." in section and "Against" not in section
    assert "| **production** | not held |  |" in section
    assert 'id="chart-history"' not in html_path.read_text()
