"""lm-eval tasks: registered ones by name, and nift-gate's own YAMLs made concrete for this machine.

The shipped YAMLs (harness/assets/tasks/) name their data with ``${data_file}`` and include lm-eval's own
task files with ``${lm_eval_tasks}``; they are filled in and written to ``<run>/bench/_tasks/``, then
loaded with ``TaskManager(include_path=...)``.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from string import Template

import yaml

from harness.bench.config import BenchConfig
from harness.core.assets import assets_dir, resolve_asset
from harness.core.errors import ConfigError, InputError
from harness.core.records import InputRef, sha256_file

PROJECT_TASKS = {"nift_if", "nift_ifeval_local", "nift_truthfulqa_mc1", "nift_truthfulqa_mc2"}


def use_local_nltk_data() -> None:
    """Point nltk at the shipped punkt_tab, so IFEval's checkers never try to download it."""
    import sys

    local = str(assets_dir() / "nltk_data")
    if local not in os.environ.get("NLTK_DATA", "").split(os.pathsep):
        os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (local, os.environ.get("NLTK_DATA")) if p)
    nltk = sys.modules.get("nltk")  # already imported: its search path was fixed at import time
    if nltk is not None and local not in nltk.data.path:
        nltk.data.path.insert(0, local)


class _TaskYamlLoader(yaml.SafeLoader):
    """Parses lm-eval task YAML for validation: `!function` and other tags are accepted, not run."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def validate_task_dir(folder: Path) -> None:
    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise InputError(f"{path}{where}: task file does not parse ({getattr(exc, 'problem', exc)})") from None


def _truthfulqa_rows(path: Path) -> list[dict]:
    """TruthfulQA's mc_task.json ({choice: label} maps) -> lm-eval's fields (choices and labels lists)."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    rows = []
    for number, item in enumerate(items, 1):
        try:
            rows.append({"question": item["question"],
                         **{key: {"choices": list(item[key]), "labels": list(item[key].values())}
                            for key in ("mc1_targets", "mc2_targets")}})
        except (KeyError, TypeError, AttributeError):
            raise InputError(f"{path}: item {number} lacks question/mc1_targets/mc2_targets") from None
    return rows


def materialise(config: BenchConfig, folder: Path) -> tuple[str, list[InputRef]]:
    """Write the project tasks this config uses into ``folder``; return the include path and data refs."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    # Located, not imported: importing lm_eval.tasks costs seconds a cached rerun does not need.
    lm_eval_tasks = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
    refs = []
    # Every project task whose data is at hand is written (so its name is known and suggested); one that
    # is asked for without its data is an error.
    for task in sorted(PROJECT_TASKS):
        wanted = task in config.tasks
        if task == "nift_if":
            data = resolve_asset("embedded:suites/instruction_following.jsonl")
        elif task == "nift_ifeval_local":
            if not config.ifeval_path:
                if wanted:
                    raise ConfigError("task nift_ifeval_local needs bench.ifeval_path (IFEval's input_data.jsonl)")
                continue
            data = resolve_asset(config.ifeval_path)
        else:
            if not config.truthfulqa_path:
                if wanted:
                    raise ConfigError(f"task {task} needs bench.truthfulqa_path (TruthfulQA's mc_task.json)")
                continue
            source = resolve_asset(config.truthfulqa_path)
            if not source.exists():
                raise InputError(f"{source}: TruthfulQA file not found")
            data = folder / "truthfulqa_mc.jsonl"
            data.write_text("".join(json.dumps(r) + "\n" for r in _truthfulqa_rows(source)), encoding="utf-8")
        if not data.exists():
            raise InputError(f"{data}: data for task {task} not found")
        if wanted:
            refs.append(InputRef(kind="task_data", id=f"{task}:{data.name}", sha256=sha256_file(data)))
        template = Template((assets_dir() / "tasks" / f"{task}.yaml").read_text())
        (folder / f"{task}.yaml").write_text(template.substitute(
            lm_eval_tasks=lm_eval_tasks, data_file=data.resolve(), max_gen_toks=config.max_gen_toks))
    return str(folder), refs


def prepare_tasks(config: BenchConfig, folder: Path) -> tuple[list[str], list[InputRef]]:
    """Write nift-gate's task files and check the user's; returns include paths and the task data refs.

    Cheap: a fully cached rerun needs no more than this (building a TaskManager indexes every task lm-eval
    ships, several seconds).
    """
    use_local_nltk_data()
    include, refs = materialise(config, folder)
    paths = [include]
    for extra in config.task_dirs:
        path = resolve_asset(extra)
        if not path.is_dir():
            raise InputError(f"{path}: task folder not found")
        validate_task_dir(path)
        paths.append(str(path))
    return paths, refs


def task_manager(include_paths: list[str], tasks: list[str]):
    """A TaskManager over lm-eval's tasks and ``include_paths``; unknown task names are refused."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_paths)
    known = set(manager.all_tasks)
    for task in tasks:
        if task not in known:
            close = difflib.get_close_matches(task, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `lm-eval ls tasks` lists them"
            raise ConfigError(f"unknown task {task!r}{hint}")
    return manager
