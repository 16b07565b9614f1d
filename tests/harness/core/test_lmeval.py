import random
import shutil

import pytest

from harness.core import lmeval
from harness.core.errors import InputError
from harness.core.lmeval import (
    LmEvalSettings,
    asks_for_a_character,
    cache_dir,
    fingerprint_fields,
    prepare_tasks,
    score_ifeval,
    task_data_paths,
    validate_task_dir,
)
from harness.core.records import Record
from harness.core.runner import StageRun
from harness.core.store import RunStore

# IFEval items 1122 and 1129 ask to count a character that is not a letter; the others exercise langdetect
# (response language, English case) and a plain letter count.
DOCS = [
    {"key": 1122, "prompt": "Write a riddle with at least 4 '#'.", "instruction_id_list": ["keywords:letter_frequency"],
     "kwargs": [{"let_relation": "at least", "letter": "#", "let_frequency": 4}]},
    {"key": 1129, "prompt": "Write a cheer with 6 or more '!'.", "instruction_id_list": ["keywords:letter_frequency"],
     "kwargs": [{"let_relation": "at least", "letter": "!", "let_frequency": 6}]},
    {"key": 7, "prompt": "Answer in Italian.", "instruction_id_list": ["language:response_language"],
     "kwargs": [{"language": "it"}]},
    {"key": 8, "prompt": "Answer in lower case English.", "instruction_id_list": ["change_case:english_lowercase"],
     "kwargs": [{}]},
    {"key": 9, "prompt": "Use the letter q at least twice.", "instruction_id_list": ["keywords:letter_frequency"],
     "kwargs": [{"let_relation": "at least", "letter": "q", "let_frequency": 2}]},
    # no num_bullets: lm-eval's checker draws it from `random`, so only a per-item seed makes this repeatable
    {"key": 10, "prompt": "Answer in bullet points.", "instruction_id_list": ["detectable_format:number_bullet_lists"],
     "kwargs": [{}]},
]
RESPONSES = ["## ## no letters counted here", "Go team!!! Go!!! Win!", "Ciao, come stai? Oggi fa bel tempo.",
             "the quick brown fox jumps over the lazy dog", "quiet quail", "* one\n* two\n* three"]


def _score_all(order: list[int], generation_seed: int) -> dict[int, dict]:
    random.seed(generation_seed)  # whatever generation left in the random state must not matter
    return {i: score_ifeval(DOCS[i], [RESPONSES[i]]) for i in order}


def test_ifeval_scoring_is_identical_in_any_order_and_under_any_generation_seed():
    forward = _score_all([0, 1, 2, 3, 4, 5], generation_seed=1234)
    backward = _score_all([5, 4, 3, 2, 1, 0], generation_seed=1)
    twice = _score_all([2, 5, 0, 4, 1, 3, 2, 5, 0], generation_seed=99)
    assert forward == backward == twice
    # the requested character is counted: 4 '#' and 7 '!'
    assert forward[0]["prompt_level_strict_acc"] is True and forward[1]["prompt_level_strict_acc"] is True
    assert forward[4]["prompt_level_strict_acc"] is True and forward[3]["prompt_level_strict_acc"] is True


def test_lm_evals_own_checker_checks_a_random_letter_instead():
    """What the wrapper fixes: lm-eval's checker, for '#', counts some random letter (none in the response)."""
    lmeval.use_local_nltk_data()
    from lm_eval.tasks.ifeval.utils import process_results

    assert process_results(DOCS[0], [RESPONSES[0].replace("no letters counted here", "")])[
        "prompt_level_strict_acc"] is False
    assert score_ifeval(DOCS[0], [RESPONSES[0].replace("no letters counted here", "")])["prompt_level_strict_acc"] is True


def test_scoring_leaves_the_random_state_and_the_checker_registry_as_it_found_them():
    from langdetect import DetectorFactory
    from lm_eval.tasks.ifeval import instructions, instructions_registry

    random.seed(5)
    state = random.getstate()
    score_ifeval(DOCS[0], [RESPONSES[0]])
    assert random.getstate() == state
    assert instructions_registry.INSTRUCTION_DICT["keywords:letter_frequency"] is instructions.LetterFrequencyChecker
    assert DetectorFactory.seed is None


@pytest.mark.parametrize("doc, asks", [(DOCS[0], True), (DOCS[1], True), (DOCS[4], False), (DOCS[2], False),
                                       ({"question": "no instructions"}, False)])
def test_items_asking_for_a_character_are_recognised(doc, asks):
    assert asks_for_a_character(doc) is asks


def _assets_copy(tmp_path, monkeypatch):
    """The shipped assets with an editable copy of the task templates (never edit the real ones)."""
    real = lmeval.assets_dir()
    copy = tmp_path / "assets"
    shutil.copytree(real / "tasks", copy / "tasks")
    (copy / "nltk_data").symlink_to(real / "nltk_data")
    monkeypatch.setattr(lmeval, "assets_dir", lambda: copy)
    return copy


def test_an_edited_shipped_task_template_is_another_cache_entry_and_stage_input(tmp_path, monkeypatch):
    copy = _assets_copy(tmp_path, monkeypatch)
    settings = LmEvalSettings(tasks=["nift_if"])
    store = RunStore("r")

    def key():
        run = StageRun(store, "bench", "model", Record)
        _, refs = prepare_tasks(settings, tmp_path / "tasks", run)
        template = next(r for r in run.inputs if r.kind == "task_template")
        return cache_dir(store.home, "0" * 64, fingerprint_fields(settings, refs)), template

    before, template = key()
    assert template.id == "nift_if:template"
    template_file = copy / "tasks" / "nift_if.yaml"
    template_file.write_text(template_file.read_text().replace("max_gen_toks: ${max_gen_toks}",
                                                               "max_gen_toks: 7"))
    after, edited = key()
    assert after != before and edited.sha256 != template.sha256
    assert "max_gen_toks: 7" in (tmp_path / "tasks" / "nift_if.yaml").read_text()


def test_local_data_files_of_a_users_task_yaml_are_found(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        (data / name).write_text("{}\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "one.yaml").write_text(f"task: one\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                    f"    test: {data / 'a.jsonl'}\n    train: ['{data}/b*.jsonl']\n")
    (tasks / "hub.yaml").write_text("task: hub\ndataset_path: gsm8k\ndataset_kwargs:\n  data_files: main/*.parquet\n")
    (tasks / "folder.yaml").write_text(f"task: folder\ndataset_path: {data}\n")
    # no dataset_path: it comes from an included YAML, maybe a hub dataset whose data_files are its own
    (tasks / "included.yaml").write_text("include: base.yaml\ntask: inc\ndataset_kwargs:\n  data_files: test/x.parquet\n")
    assert task_data_paths(validate_task_dir(tasks)) == [data.resolve(), (data / "a.jsonl").resolve(),
                                                          (data / "b.jsonl").resolve()]
    (tasks / "broken.yaml").write_text("task: broken\ndataset_path: csv\ndataset_kwargs:\n"
                                       "  data_files: /nowhere/x.csv\n")
    with pytest.raises(InputError, match=r"broken.yaml: data file /nowhere/x.csv \(dataset_kwargs.data_files\) "
                                         r"not found"):
        task_data_paths(validate_task_dir(tasks))


def test_only_proportions_count_their_successes():
    from harness.core.lmeval import binary_successes

    rows = [{"scores": {"acc": 1, "f1": 0.5, "inst": [1, 0]}}, {"scores": {"acc": 0, "f1": 1, "inst": [1]}},
            {"scores": {"acc": True, "f1": 0, "inst": [0]}}]
    # acc is a mean of 0/1 items; f1 has a non-binary item; inst holds lists per item
    assert binary_successes(rows, {"acc": 2 / 3, "f1": 0.5, "inst": 0.5}) == {"acc": 2}
    # 0/1 items whose aggregate is not their mean (another aggregation) are no proportion
    assert binary_successes(rows, {"acc": 0.5}) == {}


def test_own_tasks_skip_indexing_lm_evals_folders_and_a_group_does_not(tmp_path):
    from harness.core.lmeval import task_manager

    (tmp_path / "own.yaml").write_text("task: own_task\ndataset_path: json\noutput_type: generate_until\n"
                                       "doc_to_text: q\ndoc_to_target: a\n")
    # a group of the include path may name lm-eval's own tasks, so it needs the whole index
    (tmp_path / "group.yaml").write_text("group: own_group\ntask:\n  - own_task\n  - arc_easy\n")
    assert task_manager([str(tmp_path)], ["own_task"]).all_tasks == ["own_group", "own_task"]
    assert "arc_easy" in task_manager([str(tmp_path)], ["own_group"]).all_tasks


def test_a_nan_aggregate_is_left_out_and_instruction_ids_are_kept_per_row(monkeypatch):
    """lm-eval's NaN (an aggregate it could not compute) is no value; a record holding it would not reload."""
    import lm_eval

    sample = {"doc_id": 0, "doc": {"prompt": "Write two lines.", "instruction_id_list": ["length:lines", "case:lower"]},
              "target": None, "arguments": [["Write two lines."]], "filtered_resps": ["a\nb"],
              "acc": 1, "inst_level_strict_acc": [True, False]}
    results = {"results": {"t": {"acc,none": 1.0, "acc_stderr,none": float("nan"),
                                 "amb_bias_score_Age,none": float("nan")}},
               "samples": {"t": [sample]}, "versions": {"t": 1}, "higher_is_better": {"t": {"acc": True}}}
    monkeypatch.setattr(lm_eval, "simple_evaluate", lambda **kwargs: results)
    scores, rows, _ = lmeval.run_lm_eval(object(), lmeval.LmEvalSettings(tasks=["t"]), None)
    assert scores["t"].metrics == {"acc": 1.0} and scores["t"].stderr == {"acc": None}
    assert lmeval.TaskScores.model_validate_json(scores["t"].model_dump_json()) == scores["t"]
    assert rows["t"][0]["instruction_id_list"] == ["length:lines", "case:lower"]
