"""What stands next to every judge number: greedy judges by default, self-preference flags, constrained ratings
for a local judge too small to write them, and the judge task summaries of the bench record."""

import json
import shutil

import pytest
import torch
from fake_openai import FakeOpenAI
from scripted import ScriptedGenerator, ScriptedLM
from toy_task import write_toy_mc_task

from harness.bench.bench import run_bench
from harness.bench.config import BenchConfig
from harness.bench.grading import (
    RATING_CHOICES,
    grade,
    load_judge_prompts,
    rating_method,
)
from harness.bench.judges import self_preference
from harness.bench.pairwise import Question
from harness.core.errors import ConfigError
from harness.core.generation import (
    GenerationRequest,
    GeneratorConfig,
    TransformersGenerator,
    chat_messages,
)
from harness.core.models import ResolvedModel
from harness.core.store import RunStore


@pytest.fixture
def toy_task(tmp_path):
    return write_toy_mc_task(tmp_path, [{"question": f"Q{i}?", "choices": ["yes", "no"], "answer": 0} for i in range(4)])


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Say thing {i}."] + (["More?"] if i == 0 else [])})
                            + "\n" for i in range(3)))
    return path


@pytest.fixture(scope="module")
def candidate_model(tmp_path_factory, embedded_texts):
    from tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("judges") / "cand", embedded_texts, seed=3)


def _config(tiny_model, baseline, toy_task, **kwargs):
    return BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(baseline)}],
                       tasks=["toy_mc"], task_dirs=[str(toy_task)], apply_chat_template=False, threads=1,
                       bootstrap_iterations=100, **kwargs)


def _generators():
    return {"model": ScriptedGenerator(lambda k, p: "the candidate's answer"),
            "base": ScriptedGenerator(lambda k, p: "base")}


def test_every_judge_is_greedy_unless_the_user_gives_a_temperature():
    config = BenchConfig(pairwise={"judge": {"model": "a"}}, mt_bench={"judge": {"model": "b"}},
                         alpaca_eval={"judge": {"model": "c", "temperature": 0.4}})
    assert (config.pairwise.judge.temperature, config.grading_judge().temperature,
            config.alpaca_eval_judge().temperature) == (0.0, 0.0, 0.4)
    assert BenchConfig(mt_bench={"judge": {"model": "b", "temperature": 0.7}}).grading_judge().temperature == 0.7
    assert BenchConfig().grading_judge().temperature == 0.0
    # the same through the pipeline config and --set, as a user writes it
    from harness.app.config import load_pipeline_config

    loaded = load_pipeline_config(None, ["bench.mt_bench.judge.model=judge-x"])
    assert loaded.bench.mt_bench.judge.temperature == 0.0


def test_a_judge_with_a_baselines_weights_is_flagged_for_self_preference(tiny_model, candidate_model, toy_task,
                                                                        questions, tmp_path):
    judge_copy = tmp_path / "judge-copy"
    shutil.copytree(tiny_model, judge_copy)  # the baseline's weights under another name: the same model
    config = _config(candidate_model, tiny_model, toy_task,
                     pairwise={"enabled": True, "prompts": str(questions),
                               "judge": {"model": str(judge_copy), "max_new_tokens": 2, "threads": 1}})
    record = run_bench(config, RunStore("r"), lms={"cand": ScriptedLM(), "base": ScriptedLM()},
                       generators={"cand": ScriptedGenerator(lambda k, p: "c"),
                                   "base": ScriptedGenerator(lambda k, p: "b")})
    [use] = record.judges
    assert (use.task, use.self_preference, use.self_preference_basis) == ("pairwise", ["base"],
                                                                          "same weights (sha256)")
    assert "self-preference: the judge is also base" in use.note and not use.weak
    assert use.usage is not None and use.usage.requests == 2 * 3  # the real judge, behind the cache
    assert use.answer_length["cand"].mean == (1 + 1 + 1 + 1) / 3  # q0 has two turns
    # an endpoint is recognised by its served name only
    resolved = ResolvedModel(spec="org/model-7b", source="hub", path="/models/model-7b", sha256="x")
    endpoint = GeneratorConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="org/model-7b")
    assert self_preference(endpoint, None, {"cand": ("org/model-7b", resolved)}) == (["cand"], "same model name")
    assert self_preference(endpoint.model_copy(update={"model": "other"}), None,
                           {"cand": ("org/model-7b", resolved)}) == ([], "")


def _naive_best(generator: TransformersGenerator, prompt: str) -> tuple[str, float]:
    """The most likely rating by full forward passes over each whole continuation (no cache, no batching)."""
    tok = generator.tokenizer
    context = tok.apply_chat_template(chat_messages(generator.config, prompt), add_generation_prompt=True,
                                      tokenize=True, return_dict=True)["input_ids"]
    context = context + tok(RATING_CHOICES.prefix, add_special_tokens=False)["input_ids"]
    scores = []
    for option in RATING_CHOICES.options:
        ids = tok(option, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(generator.model(torch.tensor([context + ids])).logits[0].double(), -1)
        scores.append(sum(float(logp[len(context) - 1 + t, i]) for t, i in enumerate(ids)))
    probabilities = torch.softmax(torch.tensor(scores), 0)
    best = int(torch.argmax(probabilities))
    return RATING_CHOICES.options[best], float(probabilities[best])


def test_a_constrained_rating_is_the_likeliest_of_1_to_10_and_every_reply_parses(tiny_model):
    judge = TransformersGenerator(GeneratorConfig(model=str(tiny_model), threads=1, batch_size=3))
    templates = load_judge_prompts("harness/assets/judges/single_grading.jsonl")
    questions = [Question(id="q0", turns=["Write a poem.", "Shorter."]), Question(id="q1", turns=["2+2?"]),
                 Question(id="q2", turns=["Name a colour."])]
    answers = {"m": {"q0": ["roses are red " * 5, "red"], "q1": ["4"], "q2": ["blue, or perhaps green " * 3]}}
    rows = grade(judge, templates, questions, answers, 256, seed=0, constrained=True)
    assert all(r.ratings and None not in r.ratings and r.constrained == [True] * len(r.turns) for r in rows)
    assert rating_method(rows)[0] == "constrained"
    # batched prompts of different lengths, left padded, scored on the cache: the same as the naive way
    from harness.bench.grading import grading_prompt

    for row, q in zip(rows, questions):
        for turn in range(len(q.turns)):
            _, prompt = grading_prompt(templates, q, answers["m"][q.id], turn)
            option, probability = _naive_best(judge, prompt)
            assert row.judge_replies[turn] == "Rating: [[" + option
            assert row.ratings[turn] == float(option.removesuffix("]]"))
            assert row.rating_probabilities[turn] == pytest.approx(probability, abs=1e-5)
    # a constrained request is another request for the generation cache than a written one
    from harness.core.generation_cache import request_fingerprint

    plain = GenerationRequest(key="k", prompt="p", max_new_tokens=4)
    assert request_fingerprint(judge.config, plain, 0) != request_fingerprint(
        judge.config, plain.model_copy(update={"choices": RATING_CHOICES}), 0)


def test_mt_bench_with_a_local_judge_reads_constrained_ratings_and_says_so(tiny_model, toy_task, questions):
    config = _config(tiny_model, tiny_model, toy_task,
                     mt_bench={"enabled": True, "prompts": str(questions), "judge": {"model": str(tiny_model),
                                                                                   "threads": 1}})
    record = run_bench(config, RunStore("r"), lms={"model": ScriptedLM(), "base": ScriptedLM()},
                       generators=_generators())
    mt = record.mt_bench
    assert mt.rating_method == "constrained" and "ratings constrained" in mt.note
    assert all(g.unparseable == 0 and g.overall.n == 3 for g in mt.models)
    assert 0.1 <= mt.mean_rating_probability <= 1
    [use] = record.judges
    assert (use.task, use.judgements, use.unparseable, use.position_consistency) == ("mt_bench", 8, 0, None)
    # the candidate and the baseline share the tiny model's weights, and so does the judge
    assert use.self_preference == ["model", "base"] and use.usage.calls == 8


def test_an_endpoint_judge_writes_its_ratings_and_cannot_be_constrained(tiny_model, toy_task, questions):
    with FakeOpenAI(reply=lambda prompt: "Fine answer. Rating: [[7]]", first_status=None) as server:
        judge = {"backend": "openai", "base_url": server.base_url, "model": "big-judge"}
        with pytest.raises(ConfigError, match="constrained needs a local transformers judge"):
            run_bench(_config(tiny_model, tiny_model, toy_task, mt_bench={
                "enabled": True, "prompts": str(questions), "judge": judge, "rating": "constrained"}), RunStore("r"))
        record = run_bench(_config(tiny_model, tiny_model, toy_task, mt_bench={
            "enabled": True, "prompts": str(questions), "judge": judge}), RunStore("r"),
            lms={"model": ScriptedLM(), "base": ScriptedLM()}, generators=_generators())
        sent = server.answered
    assert record.mt_bench.rating_method == "written" and record.mt_bench.mean_rating_probability is None
    assert all(g.overall.mean == 7.0 for g in record.mt_bench.models)
    assert len(sent) == 8 and all(body["temperature"] == 0.0 for body in sent)  # greedy by default
    [use] = record.judges
    assert use.self_preference == [] and use.usage.calls == 8 and use.usage.estimated_cost_usd > 0
