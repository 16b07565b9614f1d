"""Everything lm-eval reads for a user's task folder, and the code and device that make its numbers, key the cached
results: a YAML it includes from elsewhere, the data that YAML or a ``data_dir`` names, a ``!function``'s module, a
library upgrade, another device. Each edit here is scored anew, not answered from the cache."""

import json
from pathlib import Path

import pytest
from scripted import ScriptedLM

import harness.core.records as records
from harness.core.errors import InputError
from harness.core.lmeval import (
    LmEvalSettings,
    evaluate_model,
    fingerprint_fields,
    prepare_tasks,
    task_data_paths,
    task_manager,
)
from harness.core.models import ResolvedModel
from harness.core.records import Record
from harness.core.runner import StageRun
from harness.core.store import RunStore

MODEL = ResolvedModel(spec="toy", source="local", path="/models/toy", sha256="0" * 64)
ROWS = [{"question": f"Question {i}: which is right?", "choices": ["right", "wrong"], "answer": 0} for i in range(10)]
MC = """output_type: multiple_choice
test_split: test
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def _rows(path: Path, answer: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({**row, "answer": answer}) + "\n" for row in ROWS))
    return path


def _task_folder(tmp_path: Path, yaml: str) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "toy_mc.yaml").write_text(yaml)
    return folder


def _evaluate(tmp_path: Path, folder: Path) -> tuple[float, bool, StageRun]:
    """toy_mc's accuracy for a model that always picks "right", whether it came from the cache, and the stage run
    whose inputs the task files became."""
    settings = LmEvalSettings(tasks=["toy_mc"], task_dirs=[str(folder)], apply_chat_template=False, threads=1)
    store = RunStore("r")
    run = StageRun(store, "bench", "model", Record)
    include_paths, refs = prepare_tasks(settings, tmp_path / "written", run)
    record, _, cached = evaluate_model("toy", MODEL, settings, lambda: task_manager(include_paths, settings.tasks),
                                       refs, store.home, store.run_id,
                                       lm=ScriptedLM(lambda context, continuation: continuation.strip() == "right"))
    return record.tasks["toy_mc"].metrics["acc"], cached, run


def test_yamls_included_from_outside_the_task_folder_and_the_data_they_name_are_inputs(tmp_path):
    """An include is followed as lm-eval follows it: relative to the YAML that names it, and on into what the
    included YAML includes. Editing the data only that YAML names, or the YAML an include includes, reruns."""
    shared = tmp_path / "shared"
    data = _rows(tmp_path / "data" / "toy.jsonl")
    (shared / "common").mkdir(parents=True)
    (shared / "mc.yaml").write_text(f"include: common/target.yaml\ndataset_path: json\ndataset_kwargs:\n"
                                    f"  data_files:\n    test: {data}\n" + MC)
    target = shared / "common" / "target.yaml"
    target.write_text('doc_to_target: "{{answer}}"\n')
    folder = _task_folder(tmp_path, "task: toy_mc\ninclude: ../shared/mc.yaml\n")

    acc, cached, run = _evaluate(tmp_path, folder)
    assert (acc, cached) == (1.0, False)
    assert {(ref.kind, Path(ref.id).name) for ref in run.inputs} >= {
        ("task_file", "mc.yaml"), ("task_file", "target.yaml"), ("task_data", "toy.jsonl")}
    assert _evaluate(tmp_path, folder)[:2] == (1.0, True)

    _rows(data, answer=1)  # every right answer is now "wrong"
    assert _evaluate(tmp_path, folder)[:2] == (0.0, False)
    target.write_text("doc_to_target: 0\n")  # the nested include scores choice 0 again
    assert _evaluate(tmp_path, folder)[:2] == (1.0, False)


def test_a_data_dir_outside_the_task_folder_is_an_input(tmp_path):
    data = tmp_path / "data"
    _rows(data / "test.jsonl")
    folder = _task_folder(tmp_path, f"task: toy_mc\ndataset_path: json\ndataset_kwargs:\n  data_dir: {data}\n"
                                    f'doc_to_target: "{{{{answer}}}}"\n' + MC)
    assert _evaluate(tmp_path, folder)[:2] == (1.0, False)
    _rows(data / "test.jsonl", answer=1)
    assert _evaluate(tmp_path, folder)[:2] == (0.0, False)


def test_data_files_are_found_under_the_data_dir_they_are_relative_to(tmp_path):
    """``datasets`` resolves data_files against data_dir; a data_dir that is not there is an error, as a data
    file that is not there is."""
    data, outside = tmp_path / "data", _rows(tmp_path / "elsewhere" / "extra.jsonl")
    _rows(data / "test.jsonl")
    config = {"dataset_path": "json", "dataset_kwargs": {"data_dir": str(data),
                                                         "data_files": {"test": "test.jsonl", "train": str(outside)}}}
    assert task_data_paths({tmp_path / "t.yaml": config}) == [data.resolve(), outside.resolve()]
    config["dataset_kwargs"]["data_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"t.yaml: data folder .*/nowhere \(dataset_kwargs.data_dir\) not found"):
        task_data_paths({tmp_path / "t.yaml": config})


def test_the_module_of_a_function_beside_an_included_yaml_is_an_input(tmp_path):
    """lm-eval loads ``!function helpers.target`` from helpers.py beside the YAML that names it, here one included
    from outside the task folder."""
    shared = tmp_path / "shared"
    shared.mkdir()
    helpers = shared / "helpers.py"
    helpers.write_text("def target(doc):\n    return doc['answer']\n")
    (shared / "mc.yaml").write_text(f"dataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                    f"    test: {_rows(tmp_path / 'toy.jsonl')}\n"
                                    "doc_to_target: !function helpers.target\n" + MC)
    folder = _task_folder(tmp_path, f"task: toy_mc\ninclude: {shared / 'mc.yaml'}\n")
    acc, cached, run = _evaluate(tmp_path, folder)
    assert (acc, cached) == (1.0, False)
    assert any(ref.kind == "task_code" and ref.id.endswith("helpers.py") for ref in run.inputs)
    helpers.write_text("def target(doc):\n    return 1 - doc['answer']\n")
    assert _evaluate(tmp_path, folder)[:2] == (0.0, False)


def test_a_function_lm_eval_would_import_from_the_python_path_is_refused(tmp_path, monkeypatch):
    """Its code would not be in the fingerprint. lm-eval's and nift-gate's own functions are pinned by their
    versions and accepted."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "nift_test_helpers.py").write_text("def target(doc):\n    return doc['answer']\n")
    monkeypatch.syspath_prepend(str(lib))
    folder = _task_folder(tmp_path, f"task: toy_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                    f"    test: {_rows(tmp_path / 'toy.jsonl')}\n"
                                    "doc_to_target: !function nift_test_helpers.target\n"
                                    "process_results: !function harness.core.lmeval.score_ifeval\n" + MC)
    settings = LmEvalSettings(tasks=["toy_mc"], task_dirs=[str(folder)])
    with pytest.raises(InputError, match=r"toy_mc.yaml: !function nift_test_helpers.target: there is no "
                                         r"nift_test_helpers.py beside this YAML, so lm-eval would import "
                                         r"nift_test_helpers from the Python path") as caught:
        prepare_tasks(settings, tmp_path / "written")
    assert "\n" not in str(caught.value)
    yaml = folder / "toy_mc.yaml"
    yaml.write_text(yaml.read_text().replace("nift_test_helpers.target", "lm_eval.api.metrics.mean"))
    _, refs = prepare_tasks(settings, tmp_path / "written")
    assert not any(ref.kind == "task_code" for ref in refs)


def test_a_library_upgrade_or_another_device_is_scored_anew(tmp_path, monkeypatch):
    """The stage's fingerprint changes on a transformers upgrade; the cached lm-eval results must not present the
    old library's numbers as the new one's. Nor are CPU results reused on a GPU."""
    folder = _task_folder(tmp_path, f"task: toy_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                    f"    test: {_rows(tmp_path / 'toy.jsonl')}\n"
                                    'doc_to_target: "{{answer}}"\n' + MC)
    assert _evaluate(tmp_path, folder)[1] is False
    assert _evaluate(tmp_path, folder)[1] is True
    installed = records._installed_version
    monkeypatch.setattr(records, "_installed_version",
                        lambda name: "99.0.0" if name == "transformers" else installed(name))
    assert _evaluate(tmp_path, folder)[1] is False

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert fingerprint_fields(LmEvalSettings(), [])["device"] == "cuda (NVIDIA H200)"
    assert _evaluate(tmp_path, folder)[1] is False
