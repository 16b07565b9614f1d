"""The judges section: arena ratings (table and chart), AlpacaEval win rates raw and length-controlled, MT-Bench
scores and pairwise win rates, each beside its judge's position consistency, self-preference flag and the
answers' lengths, and every judge's usage and cost, as escaped text in both formats."""

from gate_records import (
    CANDIDATE,
    bench_record,
    config_for,
    decide_run,
    save,
    standard_run,
    write_policy,
)

from harness.bench.alpaca_eval import AlpacaEvalModel, AlpacaEvalResult
from harness.bench.arena import ArenaResult, EarlierCandidate
from harness.bench.judges import AnswerLength, JudgeUse
from harness.bench.record import BenchRecord
from harness.core.generation_cache import GenerationUsage
from harness.core.preferences import (
    Battle,
    PreferenceJudgement,
    bradley_terry,
    length_controlled_win_rate,
    win_rate,
)
from reports.build import write_report


def _lengths(**means):
    return {m: AnswerLength(mean=v, median=v - 10, n=8) for m, v in means.items()}


def _bench(run):
    battles = ([Battle(model_a="cand", model_b="base-a", winner="a", question=f"q{i}") for i in range(6)]
               + [Battle(model_a="cand", model_b="base-a", winner="b", question=f"q{i}") for i in range(6, 8)]
               + [Battle(model_a="base-a", model_b="old<i>", winner="tie", question=f"q{i}") for i in range(8)]
               + [Battle(model_a="cand", model_b="old<i>", winner="a", question=f"q{i}") for i in range(8)])
    ratings = bradley_terry(battles, anchor="base-a", iterations=50, resample="questions", versus="cand")
    judgements = [PreferenceJudgement(instruction=f"x{i}", model="cand", reference="gpt4_turbo",
                                      preference=float(i % 3 != 0), model_length=300 + 10 * i, reference_length=250)
                  for i in range(12)]
    alpaca = AlpacaEvalResult(
        reference="gpt4_turbo", reference_source="file", judge="big-judge", judge_backend="openai",
        verdict_rule="mt-bench", instructions=12,
        models=[AlpacaEvalModel(model="cand", judged=12, unparseable=0, consistent=9,
                                win_rate=win_rate([j.preference for j in judgements], model="cand"),
                                length_controlled=length_controlled_win_rate(judgements, "cand", iterations=20))])
    usage = GenerationUsage(requests=40, cache_hits=8, calls=32, prompt_tokens=9000, completion_tokens=300,
                            estimated_cost_usd=0.0135)
    judges = [
        JudgeUse(task="arena", judge="smollm2-135m-instruct", backend="transformers", weak=True,
                 note="weak judge: a 135M-parameter model", self_preference=["base-a"],
                 self_preference_basis="same weights (sha256)", judgements=48, unparseable=0, consistent=5,
                 position_consistency=5 / 24, position_n=24,
                 answer_length=_lengths(**{"cand": 420.0, "base-a": 300.0, "old<i>": 280.0}), usage=usage),
        JudgeUse(task="alpaca_eval", judge="big-judge", backend="openai", weak=False, judgements=24, unparseable=0,
                 consistent=9, position_consistency=0.75, position_n=12,
                 answer_length=_lengths(cand=420.0, gpt4_turbo=250.0), usage=None)]
    made = bench_record(run).model_dump(exclude={"metrics", "values", "deltas"})
    return BenchRecord.model_validate({
        **made, "judges": [j.model_dump() for j in judges], "alpaca_eval": alpaca.model_dump(),
        "arena": ArenaResult(judge="smollm2-135m-instruct", judge_backend="transformers", note="weak judge",
                             models=["cand", "base-a", "old<i>"], battles=len(battles), unparseable=2,
                             sources={"pairwise": len(battles)}, ratings=ratings,
                             earlier_candidates=[EarlierCandidate(name="old<i>", record_id="bench-old", included=True),
                                                 EarlierCandidate(name="other", record_id="bench-x", included=False,
                                                                  reason="answered at another length or seed")]
                             ).model_dump()})


def test_ratings_win_rates_and_every_judges_caveats_and_cost_are_shown(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    record = _bench("r1")
    save(store, record, f"bench/{CANDIDATE}")
    setup = config_for(home, write_policy(tmp_path))
    decide_run(setup, store)
    html_path = write_report(setup.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "## Judges: arena ratings, win rates and scores, with their caveats" in md
    assert "**A weak judge gave some of these numbers (the embedded 135M model)" in md
    ratings = {r.model: r for r in record.arena.ratings.ratings}
    cand = ratings["cand"]
    # 8 questions: fewer than any bootstrap is made from, so the ratings have no interval
    assert cand.ci_low is None and record.arena.ratings.iterations == 0
    assert (f"| cand (candidate) | {cand.rating:.0f} | n/a | "
            f"{cand.win_rate_vs_anchor:.3f} | 16 | 14 / 0 / 2 | 420 / 410 | no |") in md
    assert "| base-a | 1000 | n/a | 0.500 | 16 | 2 / 8 / 6 | 300 / 290 | **self** |" in md
    assert "| old&lt;i&gt; |" in md and "<i>" not in md
    assert "Earlier candidates of this run: old&lt;i&gt; (rated from its stored answers); other (left out: " \
           "answered at another length or seed)." in md
    assert "CIs resample questions." in md and "on 8 questions" in md
    lc = record.alpaca_eval.models[0].length_controlled
    assert (f"| cand | 0.667 | [{record.alpaca_eval.models[0].win_rate.ci_low:.3f}, "
            f"{record.alpaca_eval.models[0].win_rate.ci_high:.3f}] | {lc.length_controlled_win_rate:.3f} |") in md
    assert "| 12 / 0 | 0.750 | 420 / 410 | no |" in md and "(mean length 250 characters)" in md
    # usage and cost per judge; the one a test injected says it was not counted
    assert ("| arena battles (every pair) | smollm2-135m-instruct (transformers, weak) | 48 | 0 | 0.208 of 24 | "
            "base-a (same weights (sha256)) | 32 / 8 | 9300 (9000 + 300) | 0.0135 |") in md
    assert "| AlpacaEval win rate vs the reference | big-judge (openai) | 24 | 0 | 0.750 of 12 | none | not counted" in md
    html = html_path.read_text()
    section = html[html.index('id="section-arena"'):]
    assert '<div class="chart" id="chart-arena"><svg' in section and 'id="arena-ratings"' in section
    assert "old&lt;i&gt;" in section and "<i>" not in section.split('<div class="chart"')[0]
    assert 'id="judge-usage"' in section and 'id="alpaca-eval"' in section


def test_a_bench_without_judges_and_no_grader_has_no_judges_section(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    setup = config_for(home, write_policy(tmp_path))
    decide_run(setup, store)
    md = write_report(setup.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "Judges: arena ratings" not in md
