"""AlpacaEval win rates, the length-controlled win rate and arena ratings through the bench, on scripted judges
whose behaviour is known: one that only likes long answers, one that ranks models by a fixed strength."""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest
from scripted import ScriptedGenerator, ScriptedLM
from tiny import build_tiny_model
from toy_task import write_toy_mc_task

from harness.bench.bench import run_bench
from harness.bench.config import BenchConfig
from harness.core.errors import ConfigError, InputError
from harness.core.store import RunStore

_ANSWERS = re.compile(r"\[Answer A\]\n(.*)\n\n\[Answer B\]\n(.*)\n\nWhich answer", re.DOTALL)


@pytest.fixture
def toy_task(tmp_path):
    return write_toy_mc_task(tmp_path, [{"question": f"Q{i}?", "choices": ["yes", "no"], "answer": 0} for i in range(4)])


@pytest.fixture(scope="module")
def other_tiny_model(tmp_path_factory, embedded_texts):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-other") / "model", embedded_texts, seed=1)


def _uniform(*parts: str) -> float:
    """A number in [0, 1) fixed by its arguments: the scripted judge's coin, the same in both orders."""
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest()[:12], 16) / 16 ** 12


def _answers(prompt: str) -> tuple[str, str]:
    return _ANSWERS.search(prompt).groups()


def _length_biased(key, prompt):
    """Prefers the longer answer with probability logistic(1.5 tanh(|dlen| / 300)), whoever wrote it; in both
    orders the same answer wins (the coin is drawn on the unordered pair)."""
    a, b = _answers(prompt)
    longer_wins = _uniform(*sorted((a, b))) < 1 / (1 + np.exp(-1.5 * np.tanh(abs(len(a) - len(b)) / 300)))
    return "A" if ((len(a), a) > (len(b), b)) == longer_wins else "B"  # equal lengths: the text breaks the tie


def _config(tiny_model, other_tiny_model, toy_task, **kwargs):
    fields = {"baselines": [{"name": "base", "model": str(other_tiny_model)}], "bootstrap_iterations": 200, **kwargs}
    return BenchConfig(candidate=str(tiny_model), tasks=["toy_mc"], task_dirs=[str(toy_task)],
                       apply_chat_template=False, threads=1, **fields)


def _lms(*names):
    return {name: ScriptedLM() for name in names}


def test_a_length_biased_judge_moves_the_raw_win_rate_and_not_the_length_controlled_one(
        tiny_model, other_tiny_model, toy_task, tmp_path):
    # 500 AlpacaEval instructions; the reference (the file's outputs) and both models are equally good, but the
    # candidate writes about 300 characters more than the reference and the baseline about 250 fewer
    rng = np.random.default_rng(5)
    n = 500
    reference = rng.lognormal(6.3, 0.4, n).astype(int) + 50
    verbose = np.clip(reference + rng.normal(300, 350, n), 10, None).astype(int)
    terse = np.clip(reference + rng.normal(-250, 250, n), 10, None).astype(int)
    rows = [{"instruction": f"Instruction {i}.", "output": f"ref{i} " + "r" * int(reference[i]),
             "generator": "gpt4_turbo", "dataset": "helpful_base"} for i in range(n)]
    path = tmp_path / "alpaca_eval.json"
    path.write_text(json.dumps(rows, indent=1))
    number = lambda prompt: int(prompt.split()[1].rstrip("."))
    generators = {"model": ScriptedGenerator(lambda k, p: f"cand{number(p)} " + "c" * int(verbose[number(p)])),
                  "base": ScriptedGenerator(lambda k, p: f"base{number(p)} " + "b" * int(terse[number(p)]))}
    config = _config(tiny_model, other_tiny_model, toy_task, alpaca_eval={"enabled": True, "prompts": str(path)},
                     bootstrap_iterations=100)
    record = run_bench(config, RunStore("r"), lms=_lms("model", "base"), generators=generators,
                       judge=ScriptedGenerator(_length_biased))
    ae = record.alpaca_eval
    assert (ae.reference, ae.reference_source, ae.instructions, ae.length_unit) == ("gpt4_turbo", "file", n,
                                                                                  "characters")
    by_model = {m.model: m for m in ae.models}
    cand, base = by_model["model"], by_model["base"]
    assert cand.unparseable == base.unparseable == 0 and cand.consistent == n  # the judge is order-blind
    # the raw win rate moves with length alone, each way, and its CI leaves 0.5
    assert cand.win_rate.win_rate > 0.6 and base.win_rate.win_rate < 0.4
    assert cand.win_rate.ci_low > 0.5 > base.win_rate.ci_high
    # the length-controlled one does not (difficulty estimated across the two models). Tolerance: over 12 seeds
    # of this simulation the LC win rates lay in [0.418, 0.565]
    for m in (cand, base):
        lc = m.length_controlled
        assert lc.length_controlled_win_rate == pytest.approx(0.5, abs=0.1)
        assert lc.ci_low <= 0.5 <= lc.ci_high and lc.length_coefficient > 0.5
        assert lc.difficulty == "per-instruction, estimated across 2 models"
    # what a policy gates on: values per model, and candidate-minus-baseline deltas
    values = {(v.metric, v.model): v for v in record.metric_values() if v.metric.startswith("bench.alpaca_eval.")}
    assert values[("bench.alpaca_eval.win_rate", "model")].attribute == "gpt4_turbo"
    assert values[("bench.alpaca_eval.lc_win_rate", "base")].value == base.length_controlled.length_controlled_win_rate
    deltas = {d.metric: d for d in record.metric_deltas() if d.metric.startswith("bench.alpaca_eval.")}
    raw = deltas["bench.alpaca_eval.win_rate"]
    assert raw.difference > 0.25 and raw.ci_low > 0  # raw: the verbose model looks better, "significantly"
    lc = deltas["bench.alpaca_eval.lc_win_rate"]
    assert abs(lc.difference) < 0.12 and lc.ci_low <= 0 <= lc.ci_high and lc.n == n
    specs = {s.name: s for s in record.declared_metrics()}
    assert specs["bench.alpaca_eval.lc_win_rate"].higher_is_better and specs["bench.alpaca_eval.win_rate"].unit == "rate"
    # the judge task states the lengths it saw next to its numbers, and that the embedded-name judge is weak
    [use] = [j for j in record.judges if j.task == "alpaca_eval"]
    assert use.answer_length["model"].mean > use.answer_length["gpt4_turbo"].mean > use.answer_length["base"].mean
    assert (use.position_consistency, use.position_n, use.judgements) == (1.0, 2 * n, 4 * n)
    assert use.weak and "weak judge" in use.note and use.self_preference == []
    from harness.bench.record import alpaca_eval_rows

    rows = alpaca_eval_rows(RunStore("r"), "model")
    assert len(rows) == 2 * n and rows[0].reference_length == len("ref0 ") + reference[0]
    assert record.files["alpaca_eval"] == "alpaca_eval.jsonl"


def test_alpaca_eval_against_a_baseline_judges_the_others_and_needs_outputs_otherwise(
        tiny_model, other_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Say {i}."]}) + "\n" for i in range(4)))
    config = _config(tiny_model, other_tiny_model, toy_task, alpaca_eval={"enabled": True, "prompts": str(questions)})
    with pytest.raises(InputError, match=r"q.jsonl: instruction 'q0' has no 'output'.*4 of 4"):
        run_bench(config, RunStore("r"))
    with pytest.raises(ConfigError, match="bench.alpaca_eval.reference: 'nobody' is not a baseline"):
        run_bench(config.model_copy(update={"alpaca_eval": config.alpaca_eval.model_copy(
            update={"reference": "nobody"})}), RunStore("r"))
    assert not (RunStore("r").root / "bench" / "model").exists()
    config = _config(tiny_model, other_tiny_model, toy_task,
                     baselines=[{"name": "base", "model": str(other_tiny_model)},
                                {"name": "ref", "model": str(other_tiny_model)}],
                     alpaca_eval={"enabled": True, "prompts": str(questions), "reference": "ref"})
    generators = {name: ScriptedGenerator(lambda k, p, name=name: f"{name} says") for name in ("model", "base", "ref")}
    # the candidate beats the reference everywhere; the baseline loses everywhere
    judge = ScriptedGenerator(lambda k, p: "A" if _answers(p)[0].startswith("model") or _answers(p)[1].startswith(
        "base") else "B")
    record = run_bench(config, RunStore("r"), lms=_lms("model", "base", "ref"), generators=generators, judge=judge)
    ae = record.alpaca_eval
    assert (ae.reference, ae.reference_source) == ("ref", "baseline")
    assert {m.model: m.win_rate.win_rate for m in ae.models} == {"model": 1.0, "base": 0.0}
    assert ae.models[0].win_rate.interval == "wilson"  # 0/1 preferences: a proportion interval, not collapsed
    assert all(r.reference_answer == ["ref says"] for r in record_rows(RunStore("r")))
    [delta] = [d for d in record.metric_deltas() if d.metric == "bench.alpaca_eval.win_rate"]
    assert (delta.baseline, delta.difference) == ("base", 1.0)


def record_rows(store):
    from harness.bench.record import alpaca_eval_rows

    return alpaca_eval_rows(store, "model")


#: The scripted arena's true strengths: a model beats a weaker one on a question with probability
#: logistic((s_a - s_b) / 400 * ln 10) (the Bradley-Terry model on the Elo scale), decided by a coin per
#: question and pair, the same in both orders.
STRENGTH = {"model": 1200, "base": 1000, "weak": 800, "older": 1100}


def _by_strength(key, prompt):
    a, b = (text.split()[0] for text in _answers(prompt))
    p = 1 / (1 + 10 ** ((STRENGTH[b] - STRENGTH[a]) / 400))
    coin = _uniform(prompt.split("[Question]\n")[1].split("\n")[0], *sorted((a, b)))
    a_wins = coin < p if a < b else coin >= 1 - p  # one coin per unordered pair: the same winner in both orders
    return "A" if a_wins else "B"


def _arena_config(tiny_model, other_tiny_model, toy_task, questions, **arena):
    return _config(tiny_model, other_tiny_model, toy_task,
                   baselines=[{"name": "base", "model": str(other_tiny_model)},
                              {"name": "weak", "model": str(other_tiny_model)}],
                   pairwise={"enabled": True, "prompts": str(questions)}, arena={"enabled": True, **arena})


def _arena_generators(*names):
    return {name: ScriptedGenerator(lambda k, p, name=name: f"{name} answers {p}") for name in names}


def test_arena_ratings_from_scripted_verdicts_order_the_models_with_cis_resampled_by_question(
        tiny_model, other_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}."]}) + "\n" for i in range(120)))
    config = _arena_config(tiny_model, other_tiny_model, toy_task, questions)
    judge = ScriptedGenerator(_by_strength)
    record = run_bench(config, RunStore("r"), lms=_lms("model", "base", "weak"),
                       generators=_arena_generators("model", "base", "weak"), judge=judge)
    arena = record.arena
    ratings = arena.ratings
    assert [r.model for r in ratings.ratings] == ["model", "base", "weak"]
    assert (ratings.anchor, ratings.resampled, ratings.questions) == ("base", "questions", 120)
    assert arena.battles == 3 * 120 and arena.sources == {"pairwise": 360} and arena.unparseable == 0
    by_model = {r.model: r for r in ratings.ratings}
    assert by_model["base"].rating == 1000
    for name in ("model", "weak"):  # 200-point gaps, recovered within the CI (the penalty shrinks them a little)
        r = by_model[name]
        assert r.ci_low < r.rating < r.ci_high and r.ci_low <= STRENGTH[name] + 60 and r.ci_high >= STRENGTH[name] - 60
        assert abs(r.rating - 1000) > 100
    # only the baselines' pair was judged anew: the candidate's pairs are the pairwise judge's verdicts
    assert len(judge.requests) == 2 * 120 * 3
    values = {v.model: v for v in record.metric_values() if v.metric == "bench.arena.rating"}
    assert set(values) == {"model", "base", "weak"} and values["model"].interval == "bootstrap-percentile (questions)"
    deltas = {d.baseline: d for d in record.metric_deltas() if d.metric == "bench.arena.rating"}
    assert set(deltas) == {"base", "weak"} and deltas["weak"].difference > deltas["base"].difference > 100
    assert deltas["base"].ci_low > 0 and deltas["base"].n == 120
    assert record.metric_spec("bench.arena.rating").higher_is_better
    from harness.bench.record import arena_rows

    rows = arena_rows(RunStore("r"), "model")
    assert {(b.model_a, b.model_b) for b in rows} == {("model", "base"), ("model", "weak"), ("base", "weak")}
    [use] = [j for j in record.judges if j.task == "arena"]
    assert (use.position_consistency, use.position_n) == (1.0, 360)


def test_an_earlier_candidate_of_the_run_joins_the_arena_from_its_stored_answers(
        tiny_model, other_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Question {i}."]}) + "\n" for i in range(40)))
    older = tmp_path / "older"
    shutil.copytree(tiny_model, older)  # another candidate of the run, named by its folder
    first = _arena_config(older, other_tiny_model, toy_task, questions).model_copy(update={"candidate": str(older)})
    run_bench(first, RunStore("r"), lms=_lms("older", "base", "weak"),
              generators=_arena_generators("older", "base", "weak"), judge=ScriptedGenerator(_by_strength))
    judge = ScriptedGenerator(_by_strength)
    generators = _arena_generators("model", "base", "weak")
    record = run_bench(_arena_config(tiny_model, other_tiny_model, toy_task, questions), RunStore("r"),
                       lms=_lms("model", "base", "weak"), generators=generators, judge=judge)
    arena = record.arena
    assert [e.model_dump() for e in arena.earlier_candidates] == [
        {"name": "older", "record_id": arena.earlier_candidates[0].record_id, "included": True, "reason": ""}]
    assert any(i.kind == "earlier_bench" for i in record.inputs)  # its record is pinned by content
    assert any(i.kind == "earlier_bench_answers" for i in record.inputs)  # and the answers it lends
    assert [r.model for r in arena.ratings.ratings] == ["model", "older", "base", "weak"]
    assert arena.battles == 6 * 40
    # its answers came from its bench folder: the older model was never asked anything by this bench
    assert "older" not in generators and all("older answers" in r.prompt for r in judge.requests
                                             if "older answers" in r.prompt)


def test_the_arena_needs_the_pairwise_judge_and_a_known_anchor(tiny_model, other_tiny_model, toy_task, tmp_path):
    with pytest.raises(ConfigError, match="bench.arena needs bench.pairwise.enabled"):
        run_bench(_config(tiny_model, other_tiny_model, toy_task, arena={"enabled": True}), RunStore("r"))
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q", "turns": ["Hi."]}) + "\n")
    with pytest.raises(ConfigError, match="bench.arena.anchor: 'gpt' is neither the candidate nor a baseline"):
        run_bench(_arena_config(tiny_model, other_tiny_model, toy_task, questions, anchor="gpt"), RunStore("r"))
