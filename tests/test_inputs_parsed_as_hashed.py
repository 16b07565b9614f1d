"""Every input file nift-gate parses itself is parsed from the bytes its stage hashed (``StageRun.read``).

An input changed after its hash and put back before the commit (A, then B, then A again) passes the commit's
second hash; only parsing the hashed bytes keeps B out of a record whose fingerprint names A. Each loader is
handed ``run.read``: an edit between the hash and the parse is refused, naming the file, where a read by path
would parse the edited bytes without a word.
"""

import json
import shutil

import pytest
from tiny import edit_in_place

from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.records import Record
from harness.core.runner import StageRun
from harness.core.store import RunStore


class _Record(Record):
    kind: str = "probe"


def _shipped(name: str, tmp_path):
    path = tmp_path / name.split("/")[-1]
    shutil.copyfile(resolve_asset(f"embedded:{name}"), path)
    return path


def _questions(tmp_path):
    from harness.bench.pairwise import load_questions

    return _shipped("suites/pairwise_questions.jsonl", tmp_path), lambda path, read: load_questions(path, None, read)


def _judge_prompts(tmp_path):
    from harness.bench.grading import load_judge_prompts

    return _shipped("judges/single_grading.jsonl", tmp_path), lambda path, read: load_judge_prompts(path, read)


def _closed_book(tmp_path):
    from audits.hallucination.suites import load_closed_book

    return _shipped("suites/closed_book_qa.jsonl", tmp_path), lambda path, read: load_closed_book(str(path), None, read)


def _halueval(tmp_path):
    from audits.hallucination.suites import load_halueval

    path = tmp_path / "qa_data.json"
    path.write_text(json.dumps({"knowledge": "Paris is the capital of France.", "question": "Where is Paris?",
                                "right_answer": "France", "hallucinated_answer": "Spain"}) + "\n")
    return path, lambda path, read: load_halueval(str(path), None, read)


def _toxicity_prompts(tmp_path):
    from audits.toxicity.protocol import load_prompts

    return _shipped("suites/toxicity_prompts.jsonl", tmp_path), lambda path, read: load_prompts(str(path), read=read)


def _bbq(tmp_path):
    from audits.bias.suite import load_bbq

    return _shipped("suites/bbq.jsonl", tmp_path), lambda path, read: load_bbq([path], None, read)


LOADERS = {"pairwise questions": _questions, "judge prompts": _judge_prompts, "closed-book questions": _closed_book,
           "HaluEval QA": _halueval, "toxicity prompts": _toxicity_prompts, "BBQ items": _bbq}


@pytest.mark.parametrize("name", LOADERS)
def test_a_loader_handed_run_read_parses_the_hashed_bytes_or_refuses(name, tmp_path):
    path, load = LOADERS[name](tmp_path)
    run = StageRun(RunStore("r", tmp_path / "home"), "probe", name.replace(" ", "-"), _Record)
    run.file(path, kind="probe")
    assert load(path, run.read)  # unchanged: parsed
    edit_in_place(path, b" the ", b" THE ")  # inside a text: same size and mtime, still a valid file
    assert load(path, lambda p: p.read_bytes())  # read by path, the edit would go in unnoticed
    with pytest.raises(InputError, match=rf"{path.name}: changed while probe/.* was running"):
        load(path, run.read)


def test_training_rows_are_parsed_from_the_hashed_bytes(tmp_path):
    from harness.train.data import load_training_rows

    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"instruction": "Name a colour.", "output": "Blue."}) + "\n")
    store = RunStore("r", tmp_path / "home")

    class Hashed(StageRun):
        def file(self, *args, **kwargs):  # the edit lands right after the hash, before the parse
            resolved = super().file(*args, **kwargs)
            edit_in_place(path, b"Blue.", b"Red!!")
            return resolved

    with pytest.raises(InputError, match=r"sft.jsonl: changed while train/probe was running"):
        load_training_rows(str(path), "auto", store, Hashed(store, "train", "probe", _Record))


@pytest.mark.parametrize("task", ["nift_ifeval_local", "nift_truthfulqa_mc1"])
def test_lm_eval_task_data_is_copied_from_the_hashed_bytes(task, tmp_path):
    """lm-eval reads a copy named by its content; the copy holds the bytes the fingerprint names."""
    from harness.core.lmeval import LmEvalSettings, materialise

    if task == "nift_ifeval_local":
        path = tmp_path / "input_data.jsonl"
        path.write_text(json.dumps({"key": 1, "prompt": "Write a haiku.",
                                    "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n")
        old, new, settings = b"haiku", b"limer", LmEvalSettings(tasks=[task], ifeval_path=str(path))
    else:
        path = tmp_path / "mc_task.json"
        path.write_text(json.dumps([{"question": "Is ice cold?", "mc1_targets": {"Yes": 1, "No": 0},
                                     "mc2_targets": {"Yes": 1, "No": 0}}]))
        old, new, settings = b"cold", b"warm", LmEvalSettings(tasks=[task], truthfulqa_path=str(path))
    store = RunStore("r", tmp_path / "home")
    run = StageRun(store, "bench", "probe", _Record)
    materialise(settings, tmp_path / "tasks", run)  # unchanged: written

    class Hashed(StageRun):
        def file(self, spec, *args, **kwargs):
            resolved = super().file(spec, *args, **kwargs)
            if resolved == path:
                edit_in_place(path, old, new)
            return resolved

    with pytest.raises(InputError, match=rf"{path.name}: changed while bench/probe was running"):
        materialise(settings, tmp_path / "tasks", Hashed(store, "bench", "probe", _Record))


def test_a_prompt_file_swapped_and_put_back_during_an_audit_is_refused(tiny_model, tmp_path, monkeypatch):
    """A stage end to end (the toxicity audit): the prompt file is edited right after its hash and restored
    before the commit, so the commit's second hash matches; the audit still refuses, as it parsed the hashed
    bytes."""
    from audits.config import AuditConfig
    from audits.toxicity.audit import run_toxicity_audit

    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "group": "g", "prompt": f"Prompt {i} about the rivers"})
                               + "\n" for i in range(3)))
    original = prompts.read_bytes()
    real_file, real_check = StageRun.file, StageRun._check_inputs_unchanged

    def file_then_edit(self, spec, *args, **kwargs):
        resolved = real_file(self, spec, *args, **kwargs)
        if resolved == prompts:
            edit_in_place(prompts, b" the ", b" THE ")
        return resolved

    def restore_then_check(self):
        prompts.write_bytes(original)
        return real_check(self)

    monkeypatch.setattr(StageRun, "file", file_then_edit)
    monkeypatch.setattr(StageRun, "_check_inputs_unchanged", restore_then_check)
    config = AuditConfig(toxicity={"prompts": str(prompts), "samples_per_prompt": 2, "scorer": "profanity-check"},
                         threads=1)
    with pytest.raises(InputError, match=r"p.jsonl: changed while audit/toxicity was running"):
        run_toxicity_audit(config, str(tiny_model), [], RunStore("r", tmp_path / "home"),
                           generate=lambda model, texts: [["calm", "fine"] for _ in texts])
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("record.json"))
