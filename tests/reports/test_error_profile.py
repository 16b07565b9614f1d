"""The report's error profile: per-instruction-type pass rates paired against each baseline, hallucination outcomes
by kind, review flags, examples of the largest regressions and the sentences for executives, all escaped."""

import json

import pytest
from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    hallucination_answers,
    hallucination_record,
    ifeval_bench,
    save,
    standard_run,
    write_policy,
)
from pinning import pin_outputs
from scipy import stats

from harness.bench.record import SAMPLES_DIR, InstructionResult, bench_folder, instruction_results
from harness.core.errors import InputError
from harness.core.samples import AuditSample
from harness.core.stats import newcombe_paired_interval, proportion_interval
from harness.core.store import RunStore, atomic_write_jsonl, read_jsonl
from reports import build, profile
from reports.build import DecidedEvidence
from reports.sections import error_profile

WORDS, COMMA, LOWER = "length_constraints:number_words", "punctuation:no_comma", "change_case:english_lowercase"
SENTENCES = "length_constraints:number_sentences"


def _results(model: str, instruction: str, followed: list[bool], task: str = "nift_if",
             start: int = 0) -> list[InstructionResult]:
    """One instruction per item: item ``i<start + n>`` followed or not."""
    return [InstructionResult(task=task, model=model, item=f"i{start + n}", index=0, instruction=instruction,
                              strict=ok, loose=ok, prompt=f"prompt {start + n}", response=f"{model} says {start + n}")
            for n, ok in enumerate(followed)]


# Word-count: candidate 2/10, baseline 6/10; both follow items 0-1, only the baseline 2-5, neither 6-9.
CAND_WORDS = [True, True, False, False, False, False, False, False, False, False]
BASE_WORDS = [True, True, True, True, True, True, False, False, False, False]


def _per_model() -> dict[str, list[InstructionResult]]:
    return {
        CANDIDATE: _results(CANDIDATE, WORDS, CAND_WORDS) + _results(CANDIDATE, COMMA, [True] * 4 + [False], start=10)
        + _results(CANDIDATE, LOWER, [True, False], start=20) + _results(CANDIDATE, SENTENCES, [True] * 5, start=30),
        "base-a": _results("base-a", WORDS, BASE_WORDS) + _results("base-a", COMMA, [True] * 3 + [False] * 2, start=10)
        + _results("base-a", LOWER, [True, False], start=20) + _results("base-a", SENTENCES, [True] * 5, start=30),
    }


def test_a_type_s_pass_rates_and_paired_difference_have_the_known_values():
    changes = profile.instruction_changes(_per_model(), CANDIDATE, ["base-a"])
    words = next(c for c in changes if c.key == WORDS)
    assert (words.candidate.hits, words.candidate.n, words.reference.hits, words.reference.n) == (2, 10, 6, 10)
    assert (words.candidate.low, words.candidate.high) == pytest.approx(proportion_interval(2, 10, 0.95, "wilson"))
    assert words.difference == pytest.approx(-0.4)
    assert (words.ci_low, words.ci_high) == pytest.approx(newcombe_paired_interval(2, 0, 4, 4))
    assert words.p_value == pytest.approx(stats.binomtest(0, 4, 0.5).pvalue)  # exact McNemar on 0 vs 4
    assert words.interval == "newcombe" and words.verdict == "worse" and words.loss == pytest.approx(0.4)
    assert words.label == "word-count limits"
    # a family pools its types: length_constraints = the 10 word-count and the 5 sentence-count instructions
    family = next(c for c in profile.instruction_changes(_per_model(), CANDIDATE, ["base-a"], profile.FAMILY)
                  if c.key == "length_constraints")
    assert (family.candidate.hits, family.n, family.reference.hits) == (7, 15, 11)
    assert family.difference == pytest.approx(-4 / 15) and family.label == "length limits"
    rates = profile.instruction_rates(_per_model())
    assert rates["base-a"][COMMA].text() == "60% [23.1%, 88.2%] (3 of 5)"


def test_changes_are_sorted_by_change_per_baseline_largest_loss_first():
    per_model = _per_model()
    per_model["base-b"] = [r.model_copy(update={"model": "base-b", "strict": not r.strict}) for r in per_model[CANDIDATE]]
    changes = profile.instruction_changes(per_model, CANDIDATE, ["base-a", "base-b"])
    assert [(c.baseline, c.key, round(c.difference, 2)) for c in changes[:4]] == [
        ("base-a", WORDS, -0.4), ("base-a", LOWER, 0.0), ("base-a", SENTENCES, 0.0), ("base-a", COMMA, 0.2)]
    # against base-b (the candidate's results inverted) every difference is a gain, the largest last
    against_b = [c.difference for c in changes if c.baseline == "base-b"]
    assert against_b == sorted(against_b) and against_b[-1] == pytest.approx(1.0)


def test_the_lenient_check_is_profiled_on_its_own_results():
    per_model = {m: [r.model_copy(update={"loose": True}) for r in rs] for m, rs in _per_model().items()}
    lenient = profile.instruction_changes(per_model, CANDIDATE, ["base-a"], check="loose")
    assert all(c.difference == 0 for c in lenient)
    assert profile.instruction_units([r.model_copy(update={"loose": None}) for r in per_model[CANDIDATE]],
                                     check="loose") == {}


def _sample(model: str, item: str, kind: str, outcome: str, suite: str = "closed_book", text: str | None = None):
    return AuditSample(audit="hallucination", suite=suite, model=model, role="baseline", item_id=item, group=kind,
                       prompt=f"{item}?", output="" if outcome == "empty" else (text or f"{model} on {item}"),
                       scores={"correct": float(outcome == "correct")},
                       flags={"hallucination": outcome == "hallucinated", "refusal": outcome == "refused",
                              "empty": outcome == "empty"})


def test_hallucination_outcomes_are_counted_by_kind_over_the_questions_each_can_happen_on():
    rows = [_sample("m", "q1", "factual", "correct"), _sample("m", "q2", "factual", "hallucinated"),
            _sample("m", "q3", "factual", "refused"), _sample("m", "q4", "unanswerable", "hallucinated"),
            _sample("m", "q5", "unanswerable", "refused"), _sample("m", "q6", "factual", "empty"),
            _sample("m", "h1", None, "neither", suite="halueval_qa"),
            _sample("m", "s1", None, "hallucinated", suite="selfcheck")]  # not an answer outcome: left out
    assert [profile.outcome_kind(r) for r in rows[:7]] == [
        "correct", "wrong_claim", "declined", "false_premise", "declined", "empty", "other"]
    rates = profile.outcome_rates(rows, ["m"])["m"]
    counts = {kind: (rate.hits, rate.n) for kind, rate in rates.items()}
    # answerable: q1-q3, q6 and h1 (5); unanswerable: q4, q5 (2); all: 7 answers (the selfcheck row is none)
    assert counts == {"correct": (1, 5), "wrong_claim": (1, 5), "false_premise": (1, 2), "declined": (2, 7),
                      "empty": (1, 7), "other": (1, 7)}


def test_hallucination_changes_are_paired_by_question():
    cand = [_sample(CANDIDATE, f"q{i}", "factual", o) for i, o in enumerate(["hallucinated"] * 3 + ["correct"] * 3)]
    base = [_sample("base-a", f"q{i}", "factual", o) for i, o in enumerate(["correct"] * 5 + ["hallucinated"])]
    changes = {c.key: c for c in profile.hallucination_changes(cand + base, CANDIDATE, ["base-a"])}
    wrong = changes["wrong_claim"]
    assert (wrong.candidate.hits, wrong.reference.hits, wrong.n) == (3, 1, 6)
    assert wrong.difference == pytest.approx(2 / 6) and wrong.higher_is_better is False
    # q0-q2 only the candidate, q5 only the baseline: Newcombe on (both 0, only candidate 3, only baseline 1)
    assert (wrong.ci_low, wrong.ci_high) == pytest.approx(newcombe_paired_interval(0, 3, 1, 2))
    assert changes["declined"].higher_is_better is None and changes["declined"].verdict == "same"
    assert "false_premise" not in changes  # no unanswerable question was asked: no comparison


def test_examples_are_the_items_the_candidate_failed_and_the_baseline_passed():
    per_model = _per_model()
    changes = profile.instruction_changes(per_model, CANDIDATE, ["base-a"])
    worst = profile.largest_regressions(changes, profile.TYPE, 3)
    assert [c.key for c in worst] == [WORDS]  # the only loss; gains and ties are no regression
    examples = profile.instruction_examples(per_model, worst[0], CANDIDATE, per_change=3)
    assert [(e["item"], e["candidate_output"], e["baseline_output"]) for e in examples] == [
        ("i2", "cand says 2", "base-a says 2"), ("i3", "cand says 3", "base-a says 3"),
        ("i4", "cand says 4", "base-a says 4")]
    assert profile.cut("x" * 500, 10) == "x" * 9 + "…" and profile.cut("short", 10) == "short"
    cand = [_sample(CANDIDATE, "q0", "factual", "hallucinated", text="Paris is in Peru."),
            _sample(CANDIDATE, "q1", "factual", "hallucinated")]
    base = [_sample("base-a", "q0", "factual", "correct", text="Paris is in France."),
            _sample("base-a", "q1", "factual", "hallucinated")]
    changes = profile.hallucination_changes(cand + base, CANDIDATE, ["base-a"])
    assert [c.key for c in profile.largest_regressions(changes, profile.HALLUCINATION, 2)] == ["correct",
                                                                                              "wrong_claim"]
    hal = profile.largest_regressions([c for c in changes if c.key in profile.MISTAKE_KINDS], profile.HALLUCINATION, 1)
    assert [c.key for c in hal] == ["wrong_claim"]
    shown = profile.hallucination_examples(cand + base, hal[0], CANDIDATE)
    assert [(e["item"], e["candidate_output"], e["baseline_outcome"]) for e in shown] == [
        ("q0", "Paris is in Peru.", "correct")]


def _change(key: str, diff: float, ci: tuple[float, float], n: int = 50, p: float = 0.5, area: str = profile.FAMILY,
            baseline: str = "base-a", hits: int = 21) -> profile.Change:
    return profile.Change(area=area, key=key, label=key, phrase=f"Follows {key}", unit="instructions",
                          baseline=baseline, candidate=profile.wilson(hits, n), reference=profile.wilson(hits, n),
                          difference=diff, ci_low=ci[0], ci_high=ci[1], p_value=p, interval="newcombe",
                          higher_is_better=True)


def test_the_sentences_name_the_top_three_changes_in_plain_words():
    loss = _change("length limits", -0.12, (-0.25, 0.02))
    assert profile.sentence(loss) == ("Follows length limits less often: 42% of instructions, 12 points fewer than "
                                      "base-a (within noise).")
    gain = _change("format instructions", 0.2, (0.05, 0.35), p=0.01, baseline="base-b", hits=30)
    assert profile.sentence(gain) == ("Follows format instructions more often: 60% of instructions, 20 points more "
                                      "than base-b (beyond noise: better).")
    changes = [loss, gain, _change("length limits", -0.3, (-0.5, 0.1), baseline="base-b"),  # same kind: one only
               _change("keywords", 0.05, (-0.1, 0.2), p=0.9), _change("no change", 0.0, (-0.1, 0.1), p=1.0),
               _change("a single type", -0.9, (-0.95, -0.6), p=0.001, area=profile.TYPE)]  # types are not headlines
    top = profile.top_changes(changes)
    assert [(c.key, c.baseline) for c in top] == [("format instructions", "base-b"), ("length limits", "base-b"),
                                                 ("keywords", "base-a")]
    assert profile.headline_sentences(changes)[0] == profile.sentence(gain)


def test_review_flags_are_counts_of_the_labels_with_wilson_intervals():
    rows = profile.review_flags({"toxic": 0.05, "hallucination": 0.2, "off_topic": 0.0}, labels=60)
    assert [(r["label"], r["rate"]) for r in rows] == [
        ("hallucination", "20% [11.8%, 31.8%] (12 of 60)"), ("toxic", "5% [1.7%, 13.7%] (3 of 60)"),
        ("off topic", "0% [0%, 6%] (0 of 60)")]


DOCS = [{"key": 1, "prompt": "Write fewer than 20 words.", "instruction_id_list": [WORDS], "kwargs": [{}]},
        {"key": 2, "prompt": "No commas, and under 50 words.", "instruction_id_list": [COMMA, WORDS],
         "kwargs": [{}, {}]}]


def test_the_bench_reader_names_each_checked_instruction_from_the_task_documents(tmp_path):
    store = RunStore("r1", tmp_path / "runs")
    ifeval_bench(store, DOCS, {CANDIDATE: [[True], [False, True]], "base-a": [[False], [True, True]]},
                 responses={CANDIDATE: ["ok", "a, b"]})
    found = instruction_results(store, CANDIDATE, CANDIDATE, "nift_if")
    assert [(r.index, r.instruction, r.strict, r.prompt) for r in found] == [
        (0, WORDS, True, "Write fewer than 20 words."), (0, COMMA, False, "No commas, and under 50 words."),
        (1, WORDS, True, "No commas, and under 50 words.")]
    assert [r.response for r in found] == ["ok", "a, b", "a, b"]
    assert instruction_results(store, CANDIDATE, "base-b", "nift_if") == []  # no rows for that model
    # a row whose doc hash matches nothing is matched by its doc id when that document's prompt is the row's
    path = bench_folder(store, CANDIDATE) / SAMPLES_DIR / "base-a" / "samples_nift_if.jsonl"
    rows = read_jsonl(path)
    rows[1]["item"] = "re-hashed"
    atomic_write_jsonl(path, rows)
    pin_outputs(bench_folder(store, CANDIDATE))
    assert [r.instruction for r in instruction_results(store, CANDIDATE, "base-a", "nift_if")] == [WORDS, COMMA, WORDS]
    rows[1]["doc_id"] = 0  # now it claims a document with one instruction
    atomic_write_jsonl(path, rows)
    pin_outputs(bench_folder(store, CANDIDATE))
    with pytest.raises(InputError, match=r"samples_nift_if.jsonl:2: item re-hashed matches no document of .* with "
                                         r"2 instructions"):
        instruction_results(store, CANDIDATE, "base-a", "nift_if")


def test_the_bench_reader_says_when_the_documents_are_not_stored_and_refuses_edited_ones(tmp_path):
    store = RunStore("r1", tmp_path / "runs")
    record = ifeval_bench(store, DOCS, {CANDIDATE: [[True], [False, True]]})
    data = next((store.root / "bench" / "_tasks").glob("instructions-*.jsonl"))
    data.write_text(data.read_text().replace("fewer than 20", "fewer than 99"))
    with pytest.raises(InputError, match=r"instructions-.*\.jsonl: task data changed since the bench ran"):
        instruction_results(store, CANDIDATE, CANDIDATE, "nift_if")
    data.unlink()  # a later bench on other data replaced the copy
    assert instruction_results(store, CANDIDATE, CANDIDATE, "nift_if") is None
    evidence = DecidedEvidence(candidate=CANDIDATE, stored=[], bench=record)
    part = error_profile.build(evidence, store)["instructions"]
    assert part["tasks"] == [] and "Task nift_if checks instructions, but the bench does not store" in part["note"]
    # rows that name their instructions themselves (lm-eval rows since they keep them) need no stored documents
    samples = bench_folder(store, CANDIDATE) / SAMPLES_DIR / CANDIDATE / "samples_nift_if.jsonl"
    rows = read_jsonl(samples)
    atomic_write_jsonl(samples, [{**row, "instruction_id_list": doc["instruction_id_list"]}
                                 for row, doc in zip(rows, DOCS, strict=True)])
    pin_outputs(bench_folder(store, CANDIDATE))
    named = instruction_results(store, CANDIDATE, CANDIDATE, "nift_if")
    assert [(r.instruction, r.strict) for r in named] == [(WORDS, True), (COMMA, False), (WORDS, True)]


def test_with_no_bench_audit_or_review_the_section_is_left_out(tmp_path):
    assert error_profile.build(DecidedEvidence(candidate=CANDIDATE, stored=[]), RunStore("r1", tmp_path)) is None


HOSTILE = "<script>alert('x')</script> **bold** | [link](javascript:x) # not a heading"


def test_the_profile_in_the_report_quotes_a_hostile_output_escaped_and_exposes_its_sentences(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    # the candidate misses the word limit the baseline keeps, in an output written to break the page
    ifeval_bench(store, DOCS, {CANDIDATE: [[False], [True, True]], "base-a": [[True], [True, True]],
                               "base-b": [[True], [True, False]]},
                 responses={CANDIDATE: [HOSTILE, "fine"]})
    save(store, hallucination_record(store.run_id), "audit/hallucination")
    hallucination_answers(store, {CANDIDATE: [("factual", "hallucinated", HOSTILE), ("unanswerable", "refused", "No.")],
                                  "base-a": [("factual", "correct", "answer 0"), ("unanswerable", "hallucinated", "Yes")],
                                  "base-b": [("factual", "correct", "answer 0"), ("unanswerable", "refused", "No.")]})
    config = config_for(home, write_policy(tmp_path))
    decide_run(config, store)
    report = build.build_report(config.report, store, CANDIDATE)
    section = next(s for s in report.extra_sections if s.name == "error_profile")
    sentences = section.data["headline_sentences"]
    # the largest differences, all on one or two questions (within noise); fewer correct answers is not a fourth
    # change but the same one as more wrong claims
    assert sentences == [
        "Accepts false premises less often: 0% of unanswerable questions, 100 points fewer than base-a (within noise).",
        "Makes wrong claims more often: 100% of answerable questions, 100 points more than base-a (within noise).",
        "Declines to answer more often: 50% of questions, 50 points more than base-a (within noise)."]
    examples = section.data["instructions"]["examples"]
    assert [(e["detail"], e["baseline"], e["candidate_output"]) for e in examples] == [(WORDS, "base-a", HOSTILE)]
    html = build.render_html(report)
    part = html[html.index('id="section-error_profile"'):html.index("<h2>Outputs worth reading</h2>")]
    assert html.index("<h2>Human review</h2>") < html.index('id="section-error_profile"')
    assert "<script>" not in part and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in part
    assert "word-count limits" in part and "false premise accepted" in part and 'id="chart-profile"' in part
    assert "<td>hallucination</td><td class=\"num\">20% [11.8%, 31.8%] (12 of 60)</td>" in part  # review flags
    md = build.render_markdown(report)
    md_part = md[md.index("## Error profile"):md.index("## Outputs worth reading")]
    assert "<script>" not in md_part
    assert "&lt;script&gt;alert('x')&lt;/script&gt; \\*\\*bold\\*\\* \\| \\[link\\](javascript:x) \\# not a heading" \
        in md_part
    assert json.dumps(sentences)  # plain strings, for the summary to reuse
