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

from ..assets import assets_dir, resolve_asset
from ..errors import ConfigError, InputError
from ..records import InputRef, sha256_file
from .config import BenchConfig

PROJECT_TASKS = {"nift_if", "nift_ifeval_local", "nift_truthfulqa_mc1", "nift_truthfulqa_mc2"}


def use_local_nltk_data() -> None:
    """Point nltk at the shipped punkt_tab, so IFEval's checkers never try to download it."""
    import nltk

    local = str(assets_dir() / "nltk_data")
    os.environ["NLTK_DATA"] = local + os.pathsep + os.environ.get("NLTK_DATA", "")
    if local not in nltk.data.path:
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
    import lm_eval.tasks

    folder.mkdir(parents=True, exist_ok=True)
    lm_eval_tasks = Path(lm_eval.tasks.__file__).parent
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


def task_manager(config: BenchConfig, folder: Path):
    """A TaskManager that knows the registered tasks, ours, and the user's; unknown names are refused."""
    from lm_eval.tasks import TaskManager

    use_local_nltk_data()
    include, refs = materialise(config, folder)
    paths = [include]
    for extra in config.task_dirs:
        path = resolve_asset(extra)
        if not path.is_dir():
            raise InputError(f"{path}: task folder not found")
        validate_task_dir(path)
        paths.append(str(path))
    manager = TaskManager(include_path=paths)
    known = set(manager.all_tasks)
    for task in config.tasks:
        if task not in known:
            close = difflib.get_close_matches(task, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `lm-eval ls tasks` lists them"
            raise ConfigError(f"unknown task {task!r}{hint}")
    return manager, refs
