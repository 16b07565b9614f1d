"""The executive report: content from hand-made records, escaping of model outputs, determinism, and a
real headless Chromium that opens it, screenshots it and runs none of a model's <script>."""

import json
import os
import re
import shutil
import subprocess
import unicodedata

import pytest
from gate_records import (
    CANDIDATE,
    ToyAuditRecord,
    bench_record,
    candidate_weights,
    catalogue,
    checkpoint_record,
    config_for,
    decide_run,
    hallucination_record,
    hallucination_samples,
    override_as,
    pin_checkpoint,
    save,
    standard_run,
    toxicity_record,
    toxicity_samples,
    toy_record,
    write_policy,
)

from harness.bench.record import BenchRecord
from harness.core.errors import InputError
from reports.build import markdown_code, markdown_escape, write_report

EVIL = "<script>document.title='PWNED'</script><img src=x onerror=\"document.title='PWNED'\">"


def _run(tmp_path, review=True, fallback=False):
    home = tmp_path / "runs"
    store = standard_run(home, review=review)
    if fallback:
        save(store, toxicity_record("r1", fallback=True), "audit/toxicity")
    toxicity_samples(store, {CANDIDATE: [(EVIL, 0.9), ("a calm sentence", 0.1)],
                             "base-a": [("plain | pipes * and # marks", 0.3)]})
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    return config, store


def test_first_line_is_the_verdict_and_why(tmp_path):
    config, store = _run(tmp_path)
    html_path = write_report(config.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert md.splitlines()[0] == "# PROMOTE: all 5 blocking checks passed."
    html = html_path.read_text()
    first = re.search(r"<body>\s*<p class=\"verdict v-PROMOTE\" id=\"verdict\">(.*?)</p>", html, re.DOTALL)
    assert first and first.group(1) == "PROMOTE: all 5 blocking checks passed."


def test_candidate_vs_each_baseline_with_delta_ci_and_n(tmp_path):
    config, store = _run(tmp_path)
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert ("| bench.nift_if.prompt_level_strict_acc ↑ | base-b | 0.400 | 0.410 | -0.010 | [-0.080, +0.060] | 79 "
            "| mcnemar-exact, p=0.500 | if-non-inferior: pass |") in md
    assert "| toxicity.expected_max_toxicity [toxicity] ↓ | base-a | 0.100 | 0.120 | -0.020 | [-0.050, +0.010] | 24" in md
    assert "| reviewed | block | **pass** | 30.000 |" in md
    assert "30 of 30 items labelled by at least 2 reviewers" in md
    assert "| base-a | tiny-judge | 10 | 4 | 2 | 4 | 1 | 0.500 [0.300, 0.700] |" in md


def test_charts_are_inline_and_nothing_is_fetched(tmp_path):
    config, store = _run(tmp_path)
    html = write_report(config.report, store, CANDIDATE).read_text()
    for chart in ("chart-bench", "chart-toxicity", "chart-review"):
        assert re.search(rf'id="{chart}"><svg ', html), chart
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "<script" not in html.replace("&lt;script", "")  # no script of ours, and the model's is escaped


def test_model_outputs_are_escaped_in_both_formats(tmp_path):
    config, store = _run(tmp_path)
    html_path = write_report(config.report, store, CANDIDATE)
    html = html_path.read_text()
    assert "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;" in html
    assert "<img src=x" not in html
    md = html_path.with_suffix(".md").read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert r"plain \| pipes \* and \# marks" in md  # a table or heading cannot be injected either


HOSTILE_TEXT = ("sign in at https://evil.example/login or www.evil-mirror.com, mail it-help@evil.example or "
                "mailto:x@evil.example; \u202eTCEJER\u202c \u2066isolated\u2069 zero\u200bwidth")


def test_model_and_reviewer_text_makes_no_github_autolink_and_shows_its_format_characters(tmp_path):
    from markdown_it import MarkdownIt

    home = tmp_path / "runs"
    store = standard_run(home)
    toxicity_samples(store, {CANDIDATE: [(HOSTILE_TEXT, 0.9)]})
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    # (a reason holding a control character such as U+202E is refused when the override is logged)
    override_as(config, store, "REJECT", "Ada Lovelace", "see www.evil-mirror.com TCEJER")
    html_path = write_report(config.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    # GitHub (cmark-gfm) links a scheme://, a www. and an e-mail address in plain text, escaped or not
    assert ("> output: sign in at https\\://evil.example/login or www\\.evil-mirror.com, mail "
            "it-help&zwnj;@evil.example or mailto:x&zwnj;@evil.example; &lt;U+202E&gt;TCEJER&lt;U+202C&gt; "
            "&lt;U+2066&gt;isolated&lt;U+2069&gt; zero&lt;U+200B&gt;width") in md.splitlines()
    assert "because see www\\.evil-mirror.com TCEJER. The gate said" in md.splitlines()[0]
    assert not re.search(r"[A-Za-z]://|(?<!\\)www\.|[\w.+-]@", md)
    # and it reads as written: the escapes render as the text itself
    rendered = MarkdownIt("commonmark").render(md)
    assert "https://evil.example/login or www.evil-mirror.com, mail it-help\u200c@evil.example" in rendered
    html = html_path.read_text()
    assert ('<blockquote class="model-output">sign in at https://evil.example/login or www.evil-mirror.com, mail '
            "it-help@evil.example or mailto:x@evil.example; &lt;U+202E&gt;TCEJER&lt;U+202C&gt; "
            "&lt;U+2066&gt;isolated&lt;U+2069&gt; zero&lt;U+200B&gt;width</blockquote>") in html
    assert "because see www.evil-mirror.com TCEJER." in html
    for text in (md, html):
        assert not [c for c in text if unicodedata.category(c) == "Cf"]
    assert markdown_code("a\u2067b|c") == "`a<U+2067>b\\|c`"


def test_markdown_escape_makes_markup_inert():
    assert markdown_escape("<b>**x**</b>\n[a](javascript:1)") == r"&lt;b&gt;\*\*x\*\*&lt;/b&gt; \[a\](javascript:1)"
    # names stay readable: an underscore run between letters opens no emphasis; elsewhere it is escaped
    assert markdown_escape("bench.nift_if.prompt_level_strict_acc _x_ a__") == r"bench.nift_if.prompt_level_strict_acc \_x\_ a\_\_"
    assert markdown_escape("a\\b `c` $x^$ ~~d~~ #") == r"a\\b \`c\` \$x^\$ \~\~d\~\~ \#"
    assert markdown_code("a`b | c") == "``a`b \\| c``"


def test_fallback_scorer_is_named(tmp_path):
    config, store = _run(tmp_path, fallback=True)
    html = write_report(config.report, store, CANDIDATE).read_text()
    assert re.search(r'<td class="fallback">alt-profanity-check \(FALLBACK\)</td><td>fallback scorer: not detoxify',
                     html)
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "| pairwise judge (bench) | tiny-judge | weak judge: a test stand-in |" in md


def test_pending_report_and_override_headline(tmp_path):
    config, store = _run(tmp_path, review=False)
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert md.startswith("# PENDING_REVIEW: ")
    assert "No review record yet" in md
    override_as(config, store, "PROMOTE", "Ada Lovelace", "the release board accepted the risk")
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert md.splitlines()[0] == ("# PROMOTE by override of the gate's PENDING_REVIEW: Ada Lovelace decided so "
                                  "because the release board accepted the risk. The gate said: PENDING_REVIEW: every other "
                                  "blocking rule passed, but human review is not complete: reviewed (no review record "
                                  "yet: run the review stage); approved (no review record yet: run the review stage).")


def test_cost_against_hand_written_instructions_uses_the_configured_assumptions(tmp_path):
    from harness.data.record import NiftDatasetRecord

    home = tmp_path / "runs"
    store = standard_run(home)
    pin_checkpoint(store, f"checkpoint-{CANDIDATE}")
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    save(store, checkpoint_record(CANDIDATE, "nift_dataset-hand"), f"train/{CANDIDATE}")
    record = NiftDatasetRecord(record_id="nift_dataset-hand", run_id="r1", fingerprint="d" * 64, variant="nift",
                               distill=True, rows=100, failed_rows=0, counts={"documents_read": 120,
                                                                             "documents_kept": 100},
                               instruction_rules={}, contamination={}, teacher={"model": "teacher-x"},
                               generation={"estimated_cost_usd": 0.5, "seconds": 3600, "prompt_tokens": 1000,
                                           "completion_tokens": 500},
                               lengths={}, files={})
    save(store, record, "data/nift")
    config.report.hand_written.minutes_per_example = 6
    config.report.hand_written.hourly_rate_usd = 50
    config.report.hand_written.review_share = 0.0
    config.report.machine_usd_per_hour = 1.5
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    # pairs: 0.5 + 1 h x 1.5 = 2.0 USD; by hand: 100 x 6 min = 10 h x 50 = 500 USD, 250 times as much
    assert "| NIFT pairs (`nift`) | 100 | 2.0000 |" in md
    assert "| Written by hand (estimate) | 100 | 500.00 | 6 min per example + 0% checking = 10.0 h at $50/h |" in md
    assert "about 250 times as much" in md
    assert "| nift **(the candidate's data)** | yes | 100 |" in md
    assert "Only 1 data variant trained (nift)" in md


def test_an_audit_the_report_does_not_know_is_shown_with_its_declared_metrics(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    save(store, toy_record(candidate_rate=0.125), "audit/toy")
    config = config_for(home, write_policy(tmp_path), metrics=catalogue(ToyAuditRecord))
    decide_run(config, store)
    html_path = write_report(config.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "### audit toy (`toy_audit-hand-1`)" in md
    assert "- `toy.refusal_rate` ↓ (rate): Share of the toy prompts the model refused." in md
    assert "| toy.refusal_rate | cand | 0.125 |  | 10 |" in md
    assert "| toy.refusal_rate | base-b | 0.250 |  | 10 |" in md
    assert "| toy_audit | `toy_audit-hand-1` |" in md  # pinned in the reproducibility table too
    html = html_path.read_text()
    assert '<h3 id="record-toy_audit">audit toy' in html and "<code>toy.refusal_rate</code> &darr; (rate)" in html


def test_hallucination_audit_scorers_skipped_checks_and_flagged_answers(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    save(store, hallucination_record("r1"), "audit/hallucination")
    hallucination_samples(store, [("Paris is in Peru", True), ("a right answer", False)])
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    html_path = write_report(config.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "| hallucination check selfcheck | skipped | disabled in this test |" in md
    assert "**hallucination (closed_book)**, cand (reference: answer 0)" in md
    assert "> output: Paris is in Peru" in md and "a right answer" not in md
    assert "### audit hallucination (`hallucination_audit-hand-1`, version 4)" in md  # the audit's VERSION
    assert "| hallucination.closed_book.hallucination_rate | cand | 0.250 | [0.200, 0.300] | 40 |" in md
    assert 'id="chart-hallucination"><svg ' in html_path.read_text()


def test_same_records_same_report_bytes(tmp_path):
    config, store = _run(tmp_path)
    first = write_report(config.report, store, CANDIDATE).read_bytes()
    assert write_report(config.report, store, CANDIDATE).read_bytes() == first


def test_report_refuses_evidence_newer_than_the_decision(tmp_path):
    config, store = _run(tmp_path)
    save(store, toxicity_record("r1", emt={"cand": 0.3, "base-a": 0.12, "base-b": 0.15}), "audit/toxicity")
    with pytest.raises(InputError, match=r"the records changed since the gate decided .* rerun `nift-gate gate`"):
        write_report(config.report, store, CANDIDATE)


def test_report_refuses_a_candidate_whose_model_files_changed_after_the_decision(tmp_path):
    config, store = _run(tmp_path)
    weights = candidate_weights()
    (tmp_path / "runs" / "_weights" / CANDIDATE / "model.safetensors").write_bytes(b"retrained\n")  # train --force
    changed = (rf"^{re.escape(weights.path)}: the candidate's model files .* changed after gate decision "
               rf"gate_decision-\w+: they hash to \w{{12}}\.\.\., the decision has {weights.sha256[:12]}\.\.\.; "
               r"rerun bench, the audits and `nift-gate gate`")
    with pytest.raises(InputError, match=changed) as refused:
        write_report(config.report, store, CANDIDATE)
    assert "\n" not in str(refused.value) and not (store.root / "report").exists()
    shutil.rmtree(weights.path)
    with pytest.raises(InputError, match=rf"^{re.escape(weights.path)}: cannot check the candidate's model files "
                                         r"against gate decision gate_decision-\w+: .* are gone"):
        write_report(config.report, store, CANDIDATE)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_opens_in_headless_chromium_and_runs_no_model_script(tmp_path):
    config, store = _run(tmp_path)
    html_path = write_report(config.report, store, CANDIDATE)
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=1200,1800"]
    env = {**os.environ, "HOME": str(tmp_path)}
    shot = tmp_path / "report.png"
    out = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile-a'}", f"--screenshot={shot}",
                          html_path.as_uri()], capture_output=True, timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a rendered page, not a blank one
    if os.environ.get("NIFT_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["NIFT_KEEP_SCREENSHOT"])
    dom = subprocess.run([*flags, f"--user-data-dir={tmp_path / 'profile-b'}", "--dump-dom", html_path.as_uri()],
                         capture_output=True, timeout=120, env=env, text=True, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom.stdout, re.DOTALL).group(1)
    assert "PWNED" not in title and title.startswith("PROMOTE: cand")
    # the output is on the page as text, not as an element
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom.stdout
    assert "<img src=\"x\"" not in dom.stdout
    assert json.loads(json.dumps(dom.stdout.count('class="model-output"'))) >= 1


def _dataset(variant: str, distill: bool, rows: int):
    from harness.data.record import NiftDatasetRecord

    return NiftDatasetRecord(record_id=f"nift_dataset-{variant}", run_id="r1", fingerprint="d" * 64, variant=variant,
                             distill=distill, rows=rows, failed_rows=0, counts={"documents_read": rows,
                                                                                "documents_kept": rows},
                             instruction_rules={}, contamination={}, teacher={"model": "t"} if distill else None,
                             generation={"estimated_cost_usd": 0.01, "seconds": 10}, lengths={}, files={})


def test_ablation_table_compares_the_trained_data_variants(tmp_path):
    config, store = _run(tmp_path)
    save(store, _dataset("nift", True, 165), "data/nift")
    save(store, _dataset("nift-raw", False, 165), "data/nift-raw")
    save(store, checkpoint_record(CANDIDATE, "nift_dataset-nift"), f"train/{CANDIDATE}")
    # base-a stands for the checkpoint trained on the no-distillation variant; bench scored it as a baseline
    save(store, checkpoint_record("base-a", "nift_dataset-nift-raw"), "train/base-a")
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "| nift | yes | 165 | cand | hybrid | 12 | bench.nift_if.prompt_level_strict_acc 0.400 |" in md
    assert "| nift-raw | no | 165 | base-a | hybrid | 12 | bench.nift_if.prompt_level_strict_acc 0.380 |" in md
    assert "data variants trained" not in md  # two variants trained: no "only one" note


def test_training_data_and_its_cost_are_the_decided_checkpoints_not_a_retrain_under_its_name(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    pin_checkpoint(store, f"checkpoint-{CANDIDATE}")
    save(store, _dataset("nift", True, 165), "data/nift")
    save(store, _dataset("a-hand-variant", False, 40000), "data/a-hand-variant")
    save(store, checkpoint_record(CANDIDATE, "nift_dataset-nift"), f"train/{CANDIDATE}")
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "- **Data cost**: The 165 training pairs were generated for" in md
    assert "| nift **(the candidate's data)** | yes | 165 |" in md and "training data: unknown" not in md
    # retrained on the other variant after the decision, under the same name: not the decided weights' data
    retrain = checkpoint_record(CANDIDATE, "nift_dataset-a-hand-variant").model_copy(update={"record_id": "checkpoint-new"})
    save(store, retrain, f"train/{CANDIDATE}")
    _assert_training_data_unknown(config, store)
    shutil.rmtree(store.root / "train" / CANDIDATE)  # no checkpoint record at all: no other variant stands in
    _assert_training_data_unknown(config, store)


def _assert_training_data_unknown(config, store):
    html_path = write_report(config.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "- **Data cost**: Unknown: no dataset record of this run is known to have trained the decided weights." in md
    assert "40,000 training pairs" not in md and "(the candidate's data)" not in md
    assert "The decided candidate's training data: unknown (no checkpoint record of this run is the one" in md
    assert "(the candidate's data)" not in html_path.read_text()


def test_ablation_scores_come_from_the_decided_bench_and_other_benches_only_fill_in_named(tmp_path):
    config, store = _run(tmp_path)
    save(store, _dataset("nift", True, 165), "data/nift")
    save(store, _dataset("nift-raw", False, 165), "data/nift-raw")
    for name, data in ((CANDIDATE, "nift"), ("base-a", "nift-raw"), ("a-new", "nift")):
        save(store, checkpoint_record(name, f"nift_dataset-{data}"), f"train/{name}")
    # a later candidate's bench (its folder sorts first) scored cand and base-a as its baselines, lower
    later = bench_record("r1", means={CANDIDATE: 0.10, "base-a": 0.11, "base-b": 0.12})
    scores = {**later.scores, "a-new": bench_record("r1", means={CANDIDATE: 0.5}, deltas={}).scores[CANDIDATE]}
    save(store, BenchRecord.model_validate({**later.model_dump(), "record_id": "bench-later", "candidate": "a-new",
                                            "scores": scores, "comparisons": [], "pairwise": [], "values": [],
                                            "deltas": []}), "bench/a-new")
    md = write_report(config.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "| nift | yes | 165 | cand | hybrid | 12 | bench.nift_if.prompt_level_strict_acc 0.400 |" in md
    assert "| nift-raw | no | 165 | base-a | hybrid | 12 | bench.nift_if.prompt_level_strict_acc 0.380 |" in md
    assert ("| nift | yes | 165 | a-new | hybrid | 12 | bench.nift_if.prompt_level_strict_acc 0.500 (bench record "
            "`bench-later`) |") in md


# ---- outputs that stay inert -------------------------------------------------------------------------------------
# These render a report built by hand from a hand-made decision record: nothing is decided or read from a run.

HOSTILE_RULE = "<script>alert(1)</script>"


def _hand_report(outcomes, overrides=(), **fields):
    """A Report around a decision record built by hand (PROMOTE, with ``outcomes``) and ``overrides``."""
    from harness.gate.record import GateDecisionRecord
    from reports.build import DecidedEvidence, Report, _first_screen, _headline

    decision = GateDecisionRecord(
        record_id="gate_decision-hand", run_id="r1", created_at="2026-11-30T11:00:00+00:00", fingerprint="g" * 64,
        candidate=CANDIDATE, candidate_model={"spec": "train:cand"}, baselines=["base-a", "base-b"],
        policy={"path": "policy.yaml", "sha256": "p" * 64, "rules": []}, decision="PROMOTE",
        reason="PROMOTE: all 5 blocking checks passed.", outcomes=outcomes, evidence=[], versions={"jinja2": "3"},
        code_revision="abc123")
    verdict, headline = _headline(decision, list(overrides))
    report = {"title": "NIFT release gate report", "run_id": "r1", "candidate": CANDIDATE, "verdict": verdict,
              "headline": headline, "decision": decision, "overrides": list(overrides), "comparisons": [],
              "values": [], "sections": [], "data_cards": [], "cost": None, "identities": [], "fingerprints": [],
              "ablation": [], "ablation_note": "", "review": None, "quoted": []}
    built = Report(**{**report, **fields})
    # the first screen too (summary and scorecard), so names and reasons go through it like everywhere else
    built.extra_sections = _first_screen(built, DecidedEvidence(candidate=CANDIDATE, stored=[], decision=decision))
    return built


def _hostile_report():
    """Rule name, baseline and model names, override reason and release manager as a careless or hostile
    policy author, config or release manager could write them."""
    from harness.gate.record import OverrideRecord, RuleOutcome

    outcome = RuleOutcome(rule=HOSTILE_RULE, type="non_inferiority", severity="block", status="pass",
                          metric="bench.nift_if.prompt_level_strict_acc", model="$x^$", baseline="[b](javascript:1)",
                          value=0.01, n=79, records=["bench-hand-1"], detail="<img src=x onerror=alert(1)>")
    override = OverrideRecord(record_id="gate_override-hand", run_id="r1", fingerprint="o" * 64, candidate=CANDIDATE,
                              decision_record_id="gate_decision-hand", decision_sha256="d" * 64,
                              original_decision="PROMOTE", decision="REJECT", release_manager="<b>Ada</b>",
                              reason="a\n# heading\n<script>alert(2)</script>", aliases=["<i>prod</i>"])
    values = [{"metric": "toxicity.rate", "model": "$x^$", "attribute": "*insult*", "value": 0.2, "ci_low": 0.1,
               "ci_high": 0.3, "interval": "wilson", "n": 24, "higher_is_better": False, "record": "t"}]
    sections = [{"title": "audit <u>toy</u>", "kind": "toy", "record": "toy`1", "version": "1",
                 "metrics": [{"name": "toxicity.rate", "higher_is_better": False, "unit": "rate",
                              "description": "share\n## of prompts"}], "rows": values}]
    comparisons = [{"metric": "bench.nift_if.prompt_level_strict_acc", "label": "x", "baseline": "<b>base</b>",
                    "candidate_value": 0.4, "baseline_value": 0.3, "difference": 0.1, "ci_low": 0.05,
                    "ci_high": 0.15, "higher_is_better": True, "attribute": "*x*", "rule": HOSTILE_RULE,
                    "status": "pass"}]
    return _hand_report([outcome], [override], values=values, sections=sections, comparisons=comparisons)


def test_markdown_report_renders_no_script_link_or_heading_from_names_and_reasons():
    from markdown_it import MarkdownIt

    from reports.build import render_markdown

    text = render_markdown(_hostile_report())
    # A common renderer with raw HTML on (as many are): nothing from a name or a reason becomes markup.
    rendered = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)
    assert "<script" not in rendered and "<img" not in rendered and "<b>" not in rendered and "<i>" not in rendered
    assert "<u>" not in rendered and "<em>insult" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered and "&lt;script&gt;alert(2)&lt;/script&gt;" in rendered
    assert "<a " not in rendered  # the baseline's [b](javascript:1) is text
    assert "<h1>heading" not in rendered and "<h2>of prompts" not in rendered
    assert "# heading" not in text.splitlines() and "## of prompts" not in text.splitlines()
    assert rendered.count("<h1>") == 1  # the verdict line, and only it
    assert text.splitlines()[0] == (r"# REJECT by override of the gate's PROMOTE: &lt;b&gt;Ada&lt;/b&gt; decided so "
                                    r"because a \# heading &lt;script&gt;alert(2)&lt;/script&gt;. The gate said: "
                                    r"PROMOTE: all 5 blocking checks passed.")
    assert r"| &lt;script&gt;alert(1)&lt;/script&gt; vs \[b\](javascript:1) | block | **pass** | 0.010 |" in text
    assert r"| toxicity.rate [\*insult\*] | \$x^\$ | 0.200 | [0.100, 0.300] wilson | 24 |" in text
    assert "### audit &lt;u&gt;toy&lt;/u&gt; (``toy`1``, version 1)" in text
    assert r"- `toxicity.rate` ↓ (rate): share \#\# of prompts" in text
    summary = text.split("## Summary", 1)[1].split("## Policy rules", 1)[0]
    assert ("- **Against &lt;b&gt;base&lt;/b&gt;**: Better, beyond noise, on bench.nift_if.prompt_level_strict_acc "
            "(\\*x\\*): 0.40 vs 0.30, 0.10 higher.") in summary
    assert ("| **PASS** | bench.nift_if.prompt_level_strict_acc (`bench.nift_if.prompt_level_strict_acc`) | "
            "vs \\[b\\](javascript:1): +0.01 | not worse than \\[b\\](javascript:1) by more than any amount (95% "
            "paired CI) | &lt;script&gt;alert(1)&lt;/script&gt; |") in summary


def test_html_report_escapes_names_and_reasons_and_its_csp_pins_base_and_forms():
    from reports.build import render_html

    html = render_html(_hostile_report())
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "<u>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html).group(1)
    assert csp == ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                   "form-action 'none'")


def test_charts_draw_dollar_names_as_text():
    """A model or metric named like mathtext ($x^$ does not parse as math) is drawn as written."""
    from reports import charts

    row = {"label": "$x^$ metric", "baseline": "$y_$", "difference": 0.1, "ci_low": 0.0, "ci_high": 0.2,
           "status": "inconclusive", "margin": 0.1, "higher_is_better": True}
    assert charts.bench_deltas([row]).startswith("<svg")
    assert charts.value_bars({"$a^$": {"$x^$": (0.2, 0.1, 0.3)}}, "$rate^$").startswith("<svg")
    assert charts.distributions({"$x^$": [0.1, 0.4]}, "$score^$").startswith("<svg")
    assert charts.review_outcomes({"flag: $x^$": 0.5}, "agreement: $kappa^$").startswith("<svg")


# ---- the rules' tests, alphas, margins and inconclusive outcomes -------------------------------------------------

def _outcomes():
    from harness.gate.record import RuleOutcome

    common = {"metric": "bench.nift_if.prompt_level_strict_acc", "model": CANDIDATE, "records": ["bench-hand-1"],
              "detail": "hand-made"}
    return [
        RuleOutcome(rule="if-non-inferior", type="non_inferiority", severity="block", status="inconclusive",
                    baseline="base-a", value=-0.02, ci_low=-0.14, ci_high=0.10, n=79, judged=-0.14, comparison=">",
                    threshold=-0.1, test="newcombe", alpha=0.025, margin=0.1, needed_items=121, **common),
        RuleOutcome(rule="if-non-inferior", type="non_inferiority", severity="block", status="pass",
                    baseline="base-b", value=0.01, ci_low=-0.05, ci_high=0.07, n=79, judged=-0.05, comparison=">",
                    threshold=-0.1, test="newcombe", alpha=0.025, margin=0.1, **common),
        RuleOutcome(rule="tox-ceiling", type="ceiling", severity="block", status="pass", value=0.1, n=24,
                    judged=0.14, comparison="<=", threshold=0.2, test="clopper-pearson", alpha=0.05, **common),
        # as a record from before the rules stated their test: every new field None, and shown as nothing
        RuleOutcome(rule="reviewed", type="review_quorum", severity="block", status="pending", detail="waiting"),
        RuleOutcome(rule="agree", type="min_agreement", severity="warn", status="fail", detail="kappa 0.1"),
    ]


def test_rule_rows_show_test_alpha_margin_and_items_an_inconclusive_rule_needs():
    from reports.build import render_html, render_markdown

    report = _hand_report(_outcomes())
    md = render_markdown(report)
    assert ("| if-non-inferior vs base-a | block | **inconclusive** (121 more items would decide it) | -0.020 | "
            "[-0.140, 0.100] | 79 | -0.140 &gt; | -0.100 | newcombe | 0.025 | 0.100 | `bench-hand-1` |") in md
    assert ("| tox-ceiling | block | **pass** | 0.100 |  | 24 | 0.140 &lt;= | 0.200 | clopper-pearson | 0.050 |  | "
            "`bench-hand-1` |") in md
    assert "| reviewed | block | **pending** | n/a |  | n/a | n/a  | n/a |  |  |  | `` |" in md
    html = render_html(report)
    assert ('<td class="inconclusive">inconclusive<br><span class="muted">121 more items would decide it</span></td>'
            in html)
    assert '<td>newcombe</td>\n<td class="num">0.025</td><td class="num">0.100</td>' in html


def test_report_says_every_block_rule_must_pass_and_what_that_means_for_false_verdicts():
    from reports.build import render_html, render_markdown

    md = render_markdown(_hand_report(_outcomes()))
    assert ("**Every block rule must pass.** PROMOTE needs all 4 block checks to pass (3 block rules; a "
            "non-inferiority rule is one check per baseline); one failed block check is REJECT, one waiting for "
            "human review is PENDING_REVIEW; warn rules (1 here) never change the verdict.") in md
    # false PROMOTE: bounded by the largest alpha (0.05), not their sum; false REJECT: grows with the number
    assert "at most the largest alpha of the block checks (0.050; 1 of the checks state no alpha)" in md
    assert "at least one of the 4 checks rejects a model that truly meets all of them grows" in md
    assert "(the sum of the alphas is 0.100)" in md
    html = render_html(_hand_report(_outcomes()))
    assert "<strong>Every block rule must pass.</strong> PROMOTE needs all 4 block checks" in html
    none = render_markdown(_hand_report(_outcomes()[-1:]))
    assert "**This policy has no block rule**: no check here can stop a PROMOTE" in none
