"""The pairwise judge behind the runs home's generation cache, against a real OpenAI-compatible server."""

import json

import pytest
from fake_openai import FakeOpenAI
from scripted import ScriptedGenerator, ScriptedLM
from tiny import build_tiny_model, edit_in_place
from toy_task import write_toy_mc_task

from harness.bench.bench import run_bench
from harness.bench.config import BenchConfig
from harness.core.store import RunStore


@pytest.fixture
def toy_task(tmp_path):
    return write_toy_mc_task(tmp_path, [{"question": f"Q{i}?", "choices": ["yes", "no"], "answer": 0} for i in range(4)])


def _bench(tiny_model, toy_task, questions, server, run="r", **judge):
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(tiny_model)}],
                         tasks=["toy_mc"], task_dirs=[str(toy_task)], apply_chat_template=False, threads=1,
                         pairwise={"enabled": True, "prompts": str(questions), "judge": {
                             "backend": "openai", "base_url": server.base_url, "model": "judge", "max_retries": 0,
                             "price_per_1k_prompt_tokens": 2.0, "price_per_1k_completion_tokens": 10.0, **judge}})
    generators = {"model": ScriptedGenerator(lambda k, p: "candidate says"), "base": ScriptedGenerator(lambda k, p: "base says")}
    return run_bench(config, RunStore(run), lms={"model": ScriptedLM(), "base": ScriptedLM()}, generators=generators)


def test_an_unchanged_pair_is_never_judged_twice_and_the_record_counts_calls_hits_and_cost(
        tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Say thing {i}."]}) + "\n" for i in range(3)))
    with FakeOpenAI(reply=lambda prompt: "A", first_status=None) as server:
        first = _bench(tiny_model, toy_task, questions, server)
        prompt_words = sum(len(b["messages"][-1]["content"].split()) for b in server.answered)
        edit_in_place(questions, b"Say thing 1.", b"Say thing 9.")
        edited = _bench(tiny_model, toy_task, questions, server)  # only q1's two orders are new
        other_run = _bench(tiny_model, toy_task, questions, server, run="r2")  # another run, same runs home
        uncached = _bench(tiny_model, toy_task, questions, server, run="r3", cache=False)
    assert first.pairwise[0].wins == 0 and first.pairwise[0].ties == 3  # "A" in both orders: inconsistent ties
    assert first.judge_usage.model_dump() == {
        "requests": 6, "cache_hits": 0, "calls": 6, "failed": 0, "prompt_tokens": prompt_words,
        "completion_tokens": 6, "price_per_1k_prompt_tokens": 2.0, "price_per_1k_completion_tokens": 10.0,
        "estimated_cost_usd": round(prompt_words / 1000 * 2.0 + 6 / 1000 * 10.0, 6)}
    assert (edited.judge_usage.calls, edited.judge_usage.cache_hits) == (2, 4)
    assert (other_run.judge_usage.calls, other_run.judge_usage.cache_hits, other_run.judge_usage.estimated_cost_usd) \
        == (0, 6, 0.0)
    assert (uncached.judge_usage.calls, uncached.judge_usage.cache_hits) == (6, 0)
    assert len(server.answered) == 6 + 2 + 0 + 6
    assert other_run.pairwise[0].model_dump(exclude={"judge"}) == edited.pairwise[0].model_dump(exclude={"judge"})


def test_the_judges_weights_are_bench_inputs(tiny_model, embedded_texts, tmp_path):
    from harness.bench.bench import _judge_inputs
    from harness.bench.config import BenchConfig
    from harness.bench.record import BenchRecord
    from harness.core.models import resolve_model
    from harness.core.runner import StageRun
    from harness.core.store import RunStore

    def inputs(**fields):
        config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "b", "model": str(tiny_model)}], **fields)
        run = StageRun(RunStore("r"), "bench", "x", BenchRecord)
        _judge_inputs(config, run, injected={})
        return {ref.kind: ref.sha256 for ref in run.inputs}

    other = build_tiny_model(tmp_path / "judge", embedded_texts, seed=1)
    first, second = resolve_model(str(tiny_model)).sha256, resolve_model(str(other)).sha256
    assert inputs() == {}
    assert inputs(pairwise={"enabled": True, "judge": {"model": str(tiny_model)}}) == {"judge_model": first}
    # the grader is the pairwise judge unless it has its own; hashed once either way
    assert inputs(pairwise={"enabled": True, "judge": {"model": str(tiny_model)}},
                  mt_bench={"enabled": True}) == {"judge_model": first}
    assert inputs(mt_bench={"enabled": True, "judge": {"model": str(other)}}) == {
        "grading_judge_model": second}
    # so is the AlpacaEval judge, unless it is the pairwise judge (one input for both)
    assert inputs(pairwise={"enabled": True, "judge": {"model": str(tiny_model)}},
                  alpaca_eval={"enabled": True}) == {"judge_model": first}
    assert inputs(alpaca_eval={"enabled": True, "judge": {"model": str(other)}}) == {"alpaca_eval_judge_model": second}
