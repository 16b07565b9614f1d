import json

import pytest
from scripted import ScriptedGenerator, ScriptedLM
from tiny import build_tiny_model, edit_in_place
from toy_task import write_toy_mc_task

from harness.bench.bench import check_comparable, run_bench
from harness.bench.config import BenchConfig
from harness.bench.pairwise import parse_verdict
from harness.core.errors import ConfigError, InputError, ModelLoadError
from harness.core.lmeval import ModelEvalRecord, TaskScores
from harness.core.stats import paired_comparison
from harness.core.store import RunStore

QUESTIONS = [{"question": f"Question {i}: which is right?", "choices": ["right", "wrong"], "answer": 0} for i in range(10)]


@pytest.fixture
def toy_task(tmp_path):
    return write_toy_mc_task(tmp_path, QUESTIONS)


@pytest.fixture(scope="session")
def second_tiny_model(tmp_path_factory, embedded_texts):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-b") / "model", embedded_texts, seed=1)


def _number(context: str) -> int:
    return int(context.split("Question ")[1].split(":")[0])


def _config(tiny_model, second_tiny_model, toy_task, **kwargs):
    return BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(second_tiny_model)}],
                       tasks=["toy_mc"], task_dirs=[str(toy_task)], apply_chat_template=False, threads=1, **kwargs)


def test_paired_statistics_match_hand_computed_values(tiny_model, second_tiny_model, toy_task):
    # candidate right on questions 0-7, baseline right only on 8-9: 8 discordant pairs one way, 2 the other
    candidate = ScriptedLM(prefers=lambda ctx, cont: (cont.strip() == "right") == (_number(ctx) < 8))
    baseline = ScriptedLM(prefers=lambda ctx, cont: (cont.strip() == "right") == (_number(ctx) >= 8))
    record = run_bench(_config(tiny_model, second_tiny_model, toy_task), RunStore("r"),
                       lms={"model": candidate, "base": baseline})
    [comparison] = record.comparisons
    assert (comparison.n, comparison.wins, comparison.losses, comparison.ties) == (10, 8, 2, 0)
    assert comparison.candidate_mean == 0.8 and comparison.baseline_mean == 0.2
    assert comparison.mean_difference == pytest.approx(0.6)
    assert comparison.test == "mcnemar-exact"
    assert comparison.p_value == pytest.approx(112 / 1024)  # 2 * P(X <= 2), X ~ Binomial(10, 1/2)
    assert -0.2 < comparison.ci_low < 0.6 < comparison.ci_high <= 1.0
    assert record.scores["model"]["toy_mc"].metrics["acc"] == 0.8
    folder = RunStore("r").stage_dir("bench", "model")
    rows = [json.loads(line) for line in (folder / "samples" / "base" / "samples_toy_mc.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and {r["scores"]["acc"] for r in rows} == {0, 1}
    # the gate's view: registry-named values and deltas, directions from lm-eval
    [delta] = record.metric_deltas()
    assert (delta.metric, delta.baseline, delta.n) == ("bench.toy_mc.acc", "base", 10)
    assert delta.difference == pytest.approx(0.6) and delta.ci_low == comparison.ci_low
    values = {v.model: v for v in record.metric_values()}
    assert values["model"].value == 0.8 and values["base"].value == 0.2
    # an accuracy over 0/1 items is a proportion: Wilson's interval (8 of 10, 2 of 10), not 0.8 +- z * stderr
    assert record.scores["model"]["toy_mc"].successes == {"acc": 8}
    assert (values["model"].ci_low, values["model"].ci_high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert (values["base"].ci_low, values["base"].ci_high) == pytest.approx((0.0567, 0.5098), abs=1e-4)
    assert values["model"].interval == values["base"].interval == "wilson"
    assert record.metric_spec("bench.toy_mc.acc").higher_is_better is True


def test_bootstrap_ci_known_cases():
    same = paired_comparison({str(i): 0.7 for i in range(20)}, {str(i): 0.5 for i in range(20)}, task="t",
                             metric="m", baseline_name="b")
    # one difference repeated: the bootstrap's spread measures nothing, so there is no interval (was [0.2, 0.2])
    assert (same.ci_low, same.ci_high, same.interval) == (None, None, None) and same.test == "sign"
    assert same.mean_difference == pytest.approx(0.2) and same.p_value == pytest.approx(2 * 0.5 ** 20)
    # large n: the BCa bootstrap CI is close to mean +- 1.96 * sd / sqrt(n)
    diffs = [((i * 37) % 11 - 5) / 10 for i in range(400)]
    result = paired_comparison({str(i): d for i, d in enumerate(diffs)}, {str(i): 0.0 for i in range(400)},
                               task="t", metric="m", baseline_name="b", iterations=4000)
    import statistics

    half = 1.96 * statistics.pstdev(diffs) / 400 ** 0.5
    assert result.ci_low == pytest.approx(result.mean_difference - half, abs=0.01)
    assert result.ci_high == pytest.approx(result.mean_difference + half, abs=0.01)
    assert result.interval == "bootstrap-bca"
    lower_better = paired_comparison({"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 2.0}, task="t", metric="loss",
                                     baseline_name="b", higher_is_better=False)
    assert (lower_better.wins, lower_better.losses, lower_better.ties) == (1, 0, 1)


def test_baseline_results_are_cached_by_model_hash_and_fingerprint(tiny_model, second_tiny_model, toy_task):
    lms = {"model": ScriptedLM(), "base": ScriptedLM()}
    first = run_bench(_config(tiny_model, second_tiny_model, toy_task), RunStore("r1"), lms=lms)
    assert [m.cached for m in first.models] == [False, False]
    again = {"model": ScriptedLM(), "base": ScriptedLM()}
    second = run_bench(_config(tiny_model, second_tiny_model, toy_task), RunStore("r2"), lms=again)
    assert [m.cached for m in second.models] == [True, True] and again["base"].calls == 0
    changed = {"model": ScriptedLM(), "base": ScriptedLM()}
    run_bench(_config(tiny_model, second_tiny_model, toy_task, limit=5), RunStore("r3"), lms=changed)
    assert changed["base"].calls > 0  # a different fingerprint is a different cache entry


def test_results_with_different_fingerprints_are_never_compared():
    def record(name, fewshot, version):
        return ModelEvalRecord(record_id=name, run_id="r", fingerprint="f", model_name=name,
                               model={"spec": name, "source": "local", "path": name, "sha256": name},
                               fingerprint_fields={"num_fewshot": fewshot, "seed": 1},
                               tasks={"t": TaskScores(version=version, n=1, metrics={}, higher_is_better={})}, seconds=1)

    with pytest.raises(ConfigError, match=r"num_fewshot: 0 vs 5.*task_versions"):
        check_comparable(record("a", 0, "1.0"), record("b", 5, "2.0"))
    check_comparable(record("a", 0, "1.0"), record("b", 0, "1.0"))


def test_pairwise_judge_in_both_orders_with_unparseable_replies(tiny_model, second_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "turns": ["Say something."] + (["And more?"] if i == 0 else [])})
                                 + "\n" for i in range(5)))
    # (candidate shown first, baseline shown first) per question
    script = {"q0": ("A", "B"), "q1": ("A", "A"), "q2": ("B", "A"), "q3": ("I cannot decide", "B"), "q4": ("tie", "Tie.")}
    judge = ScriptedGenerator(lambda key, prompt: script[key.split("|")[0]][0 if key.endswith("cand-first") else 1])
    generators = {"model": ScriptedGenerator(lambda k, p: "candidate answer"),
                  "base": ScriptedGenerator(lambda k, p: "baseline answer")}
    config = _config(tiny_model, second_tiny_model, toy_task,
                     pairwise={"enabled": True, "prompts": str(questions), "judge": {"model": "smollm2-135m-instruct"}})
    record = run_bench(config, RunStore("r"), lms={"model": ScriptedLM(), "base": ScriptedLM()},
                       generators=generators, judge=judge)
    [result] = record.pairwise
    assert (result.wins, result.ties, result.losses, result.unparseable, result.n) == (1, 2, 1, 1, 4)
    assert result.win_rate == pytest.approx(0.5)
    assert "weak judge" in record.judge["note"]
    # order swap really happened: the candidate's answer is A in one prompt and B in the other
    q0 = [r.prompt for r in judge.requests if r.key.startswith("q0|")]
    assert q0[0].index("candidate answer") < q0[0].index("baseline answer")
    assert q0[1].index("baseline answer") < q0[1].index("candidate answer")
    # two-turn question: the second turn saw the first answer
    second_turn = [r for r in generators["model"].requests if r.key == "q0" and r.prompt == "And more?"]
    assert second_turn[0].history[-1] == {"role": "assistant", "content": "candidate answer"}
    lines = (RunStore("r").stage_dir("bench", "model") / "pairwise.jsonl").read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == ["win", "tie", "loss", "unparseable", "tie"]
    # position consistency: q0, q2 and q4 keep their verdict when the order is swapped, q1 does not
    assert result.verdict_rule == "mt-bench" and (result.consistent, result.position_consistency) == (3, 0.75)
    [consistency] = [v for v in record.metric_values() if v.metric == "bench.pairwise.position_consistency"]
    assert (consistency.model, consistency.attribute, consistency.value, consistency.n) == ("model", "base", 0.75, 4)
    assert record.metric_spec("bench.pairwise.position_consistency").higher_is_better is True


def test_the_lenient_verdict_rule_is_a_config_field(tiny_model, second_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 81, "turns": ["Say something."]}) + "\n")
    judge = ScriptedGenerator(lambda key, prompt: "A" if key.endswith("cand-first") else "tie")  # a win and a tie

    def run(rule):
        config = _config(tiny_model, second_tiny_model, toy_task,
                         pairwise={"enabled": True, "prompts": str(questions), "verdict_rule": rule,
                                   "judge": {"model": "smollm2-135m-instruct"}})
        generators = {"model": ScriptedGenerator(lambda k, p: "c"), "base": ScriptedGenerator(lambda k, p: "b")}
        return run_bench(config, RunStore(rule), lms={"model": ScriptedLM(), "base": ScriptedLM()},
                         generators=generators, judge=judge).pairwise[0]

    assert (run("mt-bench").wins, run("lenient").wins) == (0, 1)
    from harness.bench.record import pairwise_rows

    assert [r.question_id for r in pairwise_rows(RunStore("lenient"), "model")] == ["81"]


def test_a_question_file_with_a_repeated_id_stops_the_bench_before_anything_is_written(
        tiny_model, second_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"question_id": 81, "turns": [t]}) + "\n" for t in ("a", "b")))
    config = _config(tiny_model, second_tiny_model, toy_task,
                     pairwise={"enabled": True, "prompts": str(questions), "judge": {"model": "smollm2-135m-instruct"}})
    with pytest.raises(InputError, match=r"q.jsonl:2: question id '81' is used again"):
        run_bench(config, RunStore("r"))
    assert not (RunStore("r").root / "bench").exists()


@pytest.mark.parametrize("reply, verdict", [("A", "A"), ("B.", "B"), ("Tie", "tie"), ("Answer: B", "B"),
                                            ("A and B are equal", "unparseable"), ("", "unparseable")])
def test_judge_reply_parsing(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_unknown_task_suggests_close_names(tiny_model, second_tiny_model, toy_task):
    with pytest.raises(ConfigError, match="unknown task 'nift_iff'; did you mean nift_if"):
        run_bench(_config(tiny_model, second_tiny_model, toy_task).model_copy(update={"tasks": ["nift_iff"]}),
                  RunStore("r"))
    assert not (RunStore("r").root / "bench").exists()  # no task files left behind (bench/_tasks/*.yaml)


def test_task_file_that_does_not_parse_names_file_and_line(tiny_model, second_tiny_model, toy_task):
    (toy_task / "broken.yaml").write_text("task: broken\ndataset_path: json\n  bad: [\n")
    with pytest.raises(InputError, match=r"broken.yaml:3: not valid task YAML"):
        run_bench(_config(tiny_model, second_tiny_model, toy_task), RunStore("r"))


def test_a_model_that_fails_to_load(tiny_model, toy_task, tmp_path):
    config = _config(tiny_model, tmp_path / "missing-model", toy_task)
    with pytest.raises(ModelLoadError, match="missing-model"):
        run_bench(config, RunStore("r"))
    assert not RunStore("r").stage_dir("bench", "model").exists()


def test_tiny_real_model_runs_the_projects_own_suite_through_lm_eval(tiny_model, second_tiny_model):
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(second_tiny_model)}],
                         tasks=["nift_if"], limit=3, max_gen_toks=8, batch_size=2, threads=1)
    record = run_bench(config, RunStore("r"))
    scores = record.scores["model"]["nift_if"]
    assert scores.n == 3 and scores.version == "1.1" and "prompt_level_strict_acc" in scores.metrics
    assert {c.metric for c in record.comparisons} == {"prompt_level_strict_acc", "prompt_level_loose_acc"}
    assert record.fingerprint_fields["max_gen_toks"] == 8 and record.fingerprint_fields["lm_eval_version"]


def test_local_ifeval_and_truthfulqa_from_shared_data(tiny_model, second_tiny_model):
    from shared import shared_data

    ifeval = shared_data("ifeval", "input_data.jsonl")
    truthfulqa = shared_data("truthfulqa", "mc_task.json")
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(second_tiny_model)}],
                         tasks=["nift_ifeval_local", "nift_truthfulqa_mc1", "nift_truthfulqa_mc2"], limit=4,
                         max_gen_toks=8, batch_size=2, threads=1, ifeval_path=str(ifeval),
                         truthfulqa_path=str(truthfulqa))
    record = run_bench(config, RunStore("r"))
    scores = record.scores["model"]
    assert scores["nift_truthfulqa_mc1"].n == 4 and 0 <= scores["nift_truthfulqa_mc1"].metrics["acc"] <= 1
    assert 0 <= scores["nift_truthfulqa_mc2"].metrics["acc"] <= 1
    assert scores["nift_ifeval_local"].version == "4.0+nift.1"
    tests = {(c.task, c.test) for c in record.comparisons}
    assert ("nift_truthfulqa_mc1", "mcnemar-exact") in tests and ("nift_truthfulqa_mc2", "sign") in tests


def test_vllm_backend_without_vllm_is_a_clear_error(tiny_model, second_tiny_model, toy_task):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; the error path is for machines without it")
    config = _config(tiny_model, second_tiny_model, toy_task).model_copy(update={"backend": "vllm"})
    with pytest.raises(ConfigError, match="needs vLLM"):
        run_bench(config, RunStore("r"))


def test_a_baseline_with_the_candidates_weights_is_labelled_by_its_configured_name(tiny_model, toy_task):
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "same-weights", "model": str(tiny_model)}],
                         tasks=["toy_mc"], task_dirs=[str(toy_task)], apply_chat_template=False, threads=1)
    lm = ScriptedLM()
    record = run_bench(config, RunStore("r"), lms={"model": lm, "same-weights": ScriptedLM()})
    assert [m.cached for m in record.models] == [False, True]  # same content hash: evaluated once
    assert {c.baseline for c in record.comparisons} == {"same-weights"}
    assert all(c.mean_difference == 0 for c in record.comparisons)


def test_a_task_file_edited_in_place_is_run_again(tiny_model, second_tiny_model, toy_task, caplog):
    caplog.set_level("INFO", logger="nift_gate")
    config = _config(tiny_model, second_tiny_model, toy_task)
    first = run_bench(config, RunStore("r"), lms={"model": ScriptedLM(), "base": ScriptedLM()})
    caplog.clear()
    assert run_bench(config, RunStore("r")).record_id == first.record_id and "up to date" in caplog.text
    edit_in_place(toy_task / "toy_mc.yaml", b"version: 1.0", b"version: 1.1")
    caplog.clear()
    lms = {"model": ScriptedLM(), "base": ScriptedLM()}
    again = run_bench(config, RunStore("r"), lms=lms)
    assert "up to date" not in caplog.text and again.record_id != first.record_id
    # the task folder keys the lm-eval result cache too: both models really ran on the edited task
    assert [m.cached for m in again.models] == [False, False] and lms["base"].calls > 0
    assert again.scores["model"]["toy_mc"].version == "1.1"


def test_a_task_data_file_outside_the_task_folder_edited_in_place_is_run_again(
        tiny_model, second_tiny_model, toy_task, tmp_path, caplog):
    caplog.set_level("INFO", logger="nift_gate")
    config = _config(tiny_model, second_tiny_model, toy_task)
    first = run_bench(config, RunStore("r"), lms={"model": ScriptedLM(), "base": ScriptedLM()})
    assert any(ref.kind == "task_data" and ref.id.endswith("toy.jsonl") for ref in first.inputs)
    edit_in_place(tmp_path / "toy.jsonl", b"Question 3:", b"Question 9:")  # toy_task's YAML names this file
    caplog.clear()
    lms = {"model": ScriptedLM(), "base": ScriptedLM()}
    again = run_bench(config, RunStore("r"), lms=lms)
    assert "up to date" not in caplog.text and again.record_id != first.record_id
    assert [m.cached for m in again.models] == [False, False] and lms["base"].calls > 0


IFEVAL_ROWS = [{"key": i, "prompt": f"Write a sentence about the number {i} without any comma.",
                "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]} for i in range(3)]


def test_an_ifeval_file_edited_in_place_is_run_again(tiny_model, second_tiny_model, tmp_path):
    ifeval = tmp_path / "input_data.jsonl"
    ifeval.write_text("".join(json.dumps(r) + "\n" for r in IFEVAL_ROWS))
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(second_tiny_model)}],
                         tasks=["nift_ifeval_local"], ifeval_path=str(ifeval), apply_chat_template=False, threads=1)

    def lms():
        return {"model": ScriptedLM(generate=lambda c: "No commas here."), "base": ScriptedLM(generate=lambda c: "a, b")}

    first = run_bench(config, RunStore("r"), lms=lms())
    assert first.scores["model"]["nift_ifeval_local"].metrics["prompt_level_strict_acc"] == 1.0
    edit_in_place(ifeval, b"number 1 ", b"number 7 ")
    again_lms = lms()
    again = run_bench(config, RunStore("r"), lms=again_lms)
    assert again.record_id != first.record_id and [m.cached for m in again.models] == [False, False]
    assert again_lms["model"].calls == 3
    rows = RunStore("r").stage_dir("bench", "model") / "samples" / "model" / "samples_nift_ifeval_local.jsonl"
    assert "number 7 " in rows.read_text() and "number 1 " not in rows.read_text()


def test_ifeval_items_asking_for_a_character_are_counted_and_scored_by_that_character(
        tiny_model, second_tiny_model, tmp_path):
    from harness.core.lmeval import IFEVAL_SCORING

    rows = [{"key": 1122, "prompt": "Write a riddle with at least 4 '#'.", "instruction_id_list": [
        "keywords:letter_frequency"], "kwargs": [{"let_relation": "at least", "letter": "#", "let_frequency": 4}]},
            IFEVAL_ROWS[0]]
    ifeval = tmp_path / "input_data.jsonl"
    ifeval.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "base", "model": str(second_tiny_model)}],
                         tasks=["nift_ifeval_local"], ifeval_path=str(ifeval), apply_chat_template=False, threads=1)
    # only '#' and digits: lm-eval's own checker would count a random letter (0 of them) and fail the riddle
    record = run_bench(config, RunStore("r"), lms={"model": ScriptedLM(generate=lambda c: "#### 1 2 3"),
                                                   "base": ScriptedLM(generate=lambda c: "# 1, 2")})
    scores = record.scores["model"]["nift_ifeval_local"]
    assert (scores.character_items, scores.scoring, scores.version) == (1, IFEVAL_SCORING, "4.0+nift.1")
    assert record.scores["base"]["nift_ifeval_local"].character_items == 1
    from harness.bench.record import bench_items

    strict = {i.item: i.scores["prompt_level_strict_acc"] for i in bench_items(RunStore("r"), "model", "model",
                                                                                  "nift_ifeval_local")}
    riddle = next(i.item for i in bench_items(RunStore("r"), "model", "model", "nift_ifeval_local")
                  if "riddle" in json.dumps(i.prompt))
    assert strict[riddle] is True and scores.metrics["prompt_level_strict_acc"] == 1.0


def test_pairwise_rows_carry_the_turns_and_an_edited_question_file_is_judged_again(
        tiny_model, second_tiny_model, toy_task, tmp_path, caplog):
    from harness.bench.record import pairwise_rows

    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": f"q{i}", "turns": [f"Say thing {i}."]}) + "\n" for i in range(3)))
    config = _config(tiny_model, second_tiny_model, toy_task,
                     pairwise={"enabled": True, "prompts": str(questions), "judge": {"model": "smollm2-135m-instruct"}})

    def run():
        generators = {"model": ScriptedGenerator(lambda k, p: "candidate"), "base": ScriptedGenerator(lambda k, p: "base")}
        judge = ScriptedGenerator(lambda k, p: "A")
        return run_bench(config, RunStore("r"), lms={"model": ScriptedLM(), "base": ScriptedLM()},
                         generators=generators, judge=judge), judge

    first, _ = run()
    assert [r.turns for r in pairwise_rows(RunStore("r"), "model")] == [["Say thing 0."], ["Say thing 1."],
                                                                       ["Say thing 2."]]
    caplog.set_level("INFO", logger="nift_gate")
    edit_in_place(questions, b"Say thing 1.", b"Say thing 9.")
    again, judge = run()
    assert "up to date" not in caplog.text and again.record_id != first.record_id
    assert any("Say thing 9." in r.prompt for r in judge.requests)
    assert [m.cached for m in again.models] == [True, True]  # the lm-eval results do not depend on the questions
    assert pairwise_rows(RunStore("r"), "model")[1].turns == ["Say thing 9."]


def test_mt_bench_grading_in_the_bench_record_with_gateable_deltas(tiny_model, second_tiny_model, toy_task, tmp_path):
    from harness.bench.record import mt_bench_rows

    questions = tmp_path / "question.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question_id": 1, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
        {"question_id": 2, "category": "math", "turns": ["2+2?"], "reference": ["4"]},
        {"question_id": 3, "category": "math", "turns": ["3+3?"], "reference": ["6"]}]))
    ratings = {"model": {"1": "[[8]]", "2": "[[9]]", "3": "[[7]]"}, "base": {"1": "[[4]]", "2": "no idea", "3": "[[5]]"}}
    grader = ScriptedGenerator(lambda key, prompt: ratings[key.split("|")[0]][key.split("|")[1]])
    generators = {"model": ScriptedGenerator(lambda k, p: "candidate answer"),
                  "base": ScriptedGenerator(lambda k, p: "baseline answer")}
    config = _config(tiny_model, second_tiny_model, toy_task,
                     pairwise={"enabled": True, "prompts": str(questions), "judge": {"model": "smollm2-135m-instruct"}},
                     mt_bench={"enabled": True, "prompts": str(questions)})
    record = run_bench(config, RunStore("r"), lms={"model": ScriptedLM(), "base": ScriptedLM()}, generators=generators,
                       judge=ScriptedGenerator(lambda k, p: "A"), grader=grader)
    mt = record.mt_bench
    assert (mt.questions, mt.reference_graded, mt.missing_reference, mt.judge) == (3, 2, [], "smollm2-135m-instruct")
    assert "weak judge" in mt.note
    # the pairwise judge's answers are reused: each model answered each turn once
    assert len(generators["model"].requests) == 4 and len(generators["base"].requests) == 4
    assert len(grader.requests) == 8  # 4 turns x 2 models
    grades = {g.model: g for g in mt.models}
    assert grades["model"].overall.mean == pytest.approx(8.0) and grades["base"].overall.mean == pytest.approx(4.5)
    assert (grades["base"].unparseable, grades["base"].unscored_questions) == (1, 1)
    specs = {s.name: s for s in record.declared_metrics() if s.name.startswith("bench.mt_bench.")}
    assert set(specs) == {"bench.mt_bench.score", "bench.mt_bench.math", "bench.mt_bench.writing"}
    assert all(s.higher_is_better and s.unit == "score" for s in specs.values())
    values = {(v.metric, v.model): v for v in record.metric_values() if v.metric.startswith("bench.mt_bench.")}
    assert values[("bench.mt_bench.math", "base")].value == 5.0 and values[("bench.mt_bench.math", "base")].n == 1
    # 3 questions: fewer than MIN_BOOTSTRAP_ITEMS, so the record carries no interval and names no method
    score = values[("bench.mt_bench.score", "model")]
    assert (score.value, score.n, score.ci_low, score.ci_high, score.interval) == (pytest.approx(8.0), 3, None,
                                                                                   None, None)
    deltas = {d.metric: d for d in record.metric_deltas() if d.metric.startswith("bench.mt_bench.")}
    assert deltas["bench.mt_bench.score"].difference == pytest.approx(3.0) and deltas["bench.mt_bench.score"].n == 2
    assert deltas["bench.mt_bench.writing"].difference == pytest.approx(4.0)
    assert deltas["bench.mt_bench.score"].baseline == "base" and deltas["bench.mt_bench.score"].test == "sign"
    assert (deltas["bench.mt_bench.score"].ci_low, deltas["bench.mt_bench.score"].ci_high,
            deltas["bench.mt_bench.score"].interval) == (None, None, None)
    rows = mt_bench_rows(RunStore("r"), "model")
    assert [(r.model, r.question_id, r.ratings) for r in rows] == [
        ("model", "1", [8.0, 8.0]), ("model", "2", [9.0]), ("model", "3", [7.0]),
        ("base", "1", [4.0, 4.0]), ("base", "2", [None]), ("base", "3", [5.0])]
    assert rows[4].judge_replies == ["no idea"] and record.files["mt_bench"] == "mt_bench.jsonl"
    # what the gate reads: the stored JSON, without bench's classes
    from harness.core.records import StoredRecord
    from harness.core.store import read_record

    stored = read_record(RunStore("r").stage_dir("bench", "model"), StoredRecord)
    assert stored.metric_spec("bench.mt_bench.math").higher_is_better is True
    assert {d.metric for d in stored.metric_deltas()} >= {"bench.mt_bench.score", "bench.mt_bench.math"}


def test_a_bad_mt_bench_question_file_stops_the_bench_before_anything_is_written(
        tiny_model, second_tiny_model, toy_task, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": 1, "category": "writing"}) + "\n")
    config = _config(tiny_model, second_tiny_model, toy_task, mt_bench={"enabled": True, "prompts": str(questions)})
    with pytest.raises(InputError, match=r"q.jsonl:1: row has no 'turns'"):
        run_bench(config, RunStore("r"))
    assert not (RunStore("r").root / "bench").exists()
