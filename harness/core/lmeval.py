"""lm-eval on one model: the tasks made concrete for this machine, the run, and a cache of its results.

Used by every stage that scores a model with lm-eval tasks (bench, and the hallucination audit's TruthfulQA).

* Tasks: registered lm-eval tasks by name, and nift-gate's own YAMLs (``harness/assets/tasks/``), which name
  their data with ``${data_file}`` and include lm-eval's own task files with ``${lm_eval_tasks}``; they are
  filled in and written to a folder of the calling stage, then loaded with ``TaskManager(include_path=...)``.
  :func:`prepare_tasks` opens every task data file and task folder through the stage's
  :class:`~harness.core.runner.StageRun`, so each is an input of that stage.
  A user's task folder is hashed whole, and so is what its YAMLs have lm-eval read from outside it
  (:func:`task_yaml_inputs`): the YAMLs they ``include:``, the modules their ``!function``s load, and the local
  data of each YAML merged with its includes (``dataset_kwargs.data_files`` and ``data_dir``, a local
  ``dataset_path``). A ``!function`` lm-eval would import from the Python path is refused.
* Filters: a task lm-eval scores under several filters (gsm8k's strict-match and flexible-extract) is kept
  under its last (:func:`task_filters`): its counts, CIs and per-item rows have each document once.
* Scoring: IFEval-style tasks are scored deterministically (:func:`score_ifeval`): lm-eval's checkers draw
  from Python's ``random`` and ``langdetect`` is random unless seeded, so identical responses could score
  differently between runs or orders.
* Cache: one model's results under ``<home>/_cache/bench/<model hash>-<settings hash>/``, keyed by the
  model's weights hash and :func:`fingerprint_fields`: the :data:`FINGERPRINT_FIELDS` of the settings, the
  versions of the libraries that make the numbers, the device, :data:`SCORES_VERSION`, the task input hashes and
  the hashes of the shipped task templates; any stage evaluating the same model the same way reuses them.
* Data parallelism: under ``accelerate launch`` (torchrun) a caller that passes :func:`data_parallel_state` to
  :func:`evaluate_model` has lm-eval's evaluator give each process every ``world_size``-th document; rank 0
  gathers the per-item results, in the order one process makes them, and alone writes the cache entry.
"""

from __future__ import annotations

import difflib
import errno
import functools
import glob
import json
import math
import os
import platform
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field

from harness.core.assets import assets_dir, resolve_asset
from harness.core.config import Section, yaml_error_line
from harness.core.errors import ConfigError, InputError
from harness.core.log import get_logger
from harness.core.models import ResolvedModel
from harness.core.records import (
    RESULT_LIBRARIES,
    InputRef,
    Record,
    config_hash,
    library_versions,
    new_record_id,
    result_code_versions,
    sha256_bytes,
    sha256_file,
)
from harness.core.store import (
    RECORD_FILE,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_jsonl,
    atomic_write_text,
    decode_utf8,
    numbered_jsonl,
    read_bytes,
    read_jsonl,
    read_utf8,
    read_record,
)

if TYPE_CHECKING:
    from harness.core.runner import StageRun

log = get_logger("lmeval")

#: nift-gate's own tasks, written from the templates in ``harness/assets/tasks/``.
TRUTHFULQA_TASKS = {"nift_truthfulqa_mc1", "nift_truthfulqa_mc2"}
PROJECT_TASKS = {"nift_if", "nift_ifeval_local", *TRUTHFULQA_TASKS}

#: Settings that change scores; with the library versions, the device and the task input hashes they form the cache
#: key (:func:`fingerprint_fields`).
FINGERPRINT_FIELDS = ("apply_chat_template", "num_fewshot", "batch_size", "dtype", "seed", "limit", "max_gen_toks",
                      "tasks", "backend")
#: How nift-gate reads lm-eval's results into :class:`TaskScores` and per-item rows, in the cache key: bump it when
#: the same lm-eval output gives other scores or rows (2: one filter's samples per task, not every filter's).
SCORES_VERSION = "2"


class LmEvalSettings(Section):
    """How lm-eval runs: which tasks, on what data, with which generation and batching settings."""

    tasks: list[str] = Field(default_factory=lambda: ["nift_if"],
                             description="lm-eval task names: registered ones, or nift-gate's own: nift_if, "
                                         "nift_ifeval_local, nift_truthfulqa_mc1, nift_truthfulqa_mc2.")
    task_dirs: list[str] = Field(default_factory=list, description="Extra folders of task YAMLs (include_path).")
    ifeval_path: str | None = Field(None, description="IFEval input_data.jsonl for nift_ifeval_local.")
    truthfulqa_path: str | None = Field(None, description="TruthfulQA mc_task.json for nift_truthfulqa_mc1/mc2.")
    limit: int | None = Field(None, ge=1, description="Items per task (quick runs); part of the fingerprint.")
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples; None = each task's default.")
    backend: Literal["hf", "vllm"] = Field("hf", description="lm-eval model class: HFLM over nift-gate's loaded "
                                                              "model, or lm-eval's vLLM class (GPU, vllm installed).")
    batch_size: int = Field(8, ge=1, description="lm-eval batch size.")
    apply_chat_template: bool = Field(True, description="Wrap prompts in the model's chat template.")
    max_gen_toks: int = Field(192, ge=1, description="Longest generation for generative tasks (IFEval's own "
                                                     "1280 is hours on a CPU).")
    dtype: str = Field("float32", description="torch dtype the models are loaded in.")
    seed: int = Field(1234, ge=0, le=2**32 - 1, description="lm-eval's random, numpy, torch and few-shot seeds.")
    threads: int | None = Field(None, ge=1, description="CPU threads; default: chosen by measurement.")


# --- tasks ----------------------------------------------------------------------------------------------------


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


def validate_task_dir(folder: Path) -> dict[Path, Any]:
    """Every task YAML of a user's folder, parsed (a file that does not parse is an error naming its line)."""
    configs = {}
    for path in sorted(folder.rglob("*.yaml")):
        text = read_utf8(path, "task file")
        try:
            configs[path] = yaml.load(text, Loader=_TaskYamlLoader)
        except yaml.YAMLError as exc:
            raise InputError(yaml_error_line(exc, path, text, what="task YAML")) from None
    return configs


#: ``datasets`` builders that read local files named by ``data_files`` (resolved against ``data_dir``, else the
#: working folder).
_LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "xml"}


def _local_data(entry: Any, base: Path | None) -> list[Path] | None:
    """The local files one ``data_files`` entry names (a glob expanded; relative to ``base``, ``data_dir``, when
    given): an empty list for a URL or a pattern that matches nothing, None for a file that is not there."""
    if not isinstance(entry, str) or "://" in entry:
        return []
    spec = os.path.join(base, os.path.expanduser(entry)) if base is not None else os.path.expanduser(entry)
    if any(c in entry for c in "*?["):
        return [Path(m).resolve() for m in sorted(glob.glob(spec))]
    return [Path(spec).resolve()] if Path(spec).is_file() else None


def task_data_paths(configs: dict[Path, Any]) -> list[Path]:
    """The local files and folders that task configs (each YAML merged with what it includes,
    :func:`task_yaml_inputs`) read their data from: for a local builder (``dataset_path: json`` and friends),
    ``dataset_kwargs.data_dir`` (a folder, hashed whole) and the ``data_files`` (globs expanded; relative to
    ``data_dir`` when one is given, as ``datasets`` resolves them), or a ``dataset_path`` that is a local folder
    or file (with a ``data_dir`` outside it). Hub datasets are not local inputs. A file or folder a local
    builder names that is missing is an error; a config without ``dataset_path`` (an include lm-eval could not
    load) has its existing ones counted."""
    found: dict[Path, None] = {}
    for path, config in configs.items():
        if not isinstance(config, dict):
            continue
        source = config.get("dataset_path")
        kwargs = config.get("dataset_kwargs") if isinstance(config.get("dataset_kwargs"), dict) else {}
        data_dir = kwargs.get("data_dir") if isinstance(kwargs.get("data_dir"), str) else None
        if source is not None and source not in _LOCAL_BUILDERS:
            local = Path(str(source)).expanduser()
            if local.exists():
                found[local.resolve()] = None
                # `datasets` joins data_dir to the folder: only an absolute one leaves it
                if data_dir and local.is_dir() and (below := (local / data_dir).resolve()).exists() \
                        and not below.is_relative_to(local.resolve()):
                    found[below] = None
            continue  # a hub dataset, or a local one hashed whole: its data_files are relative to it
        base = None
        if data_dir and "://" not in data_dir:
            base = Path(data_dir).expanduser().resolve()
            if base.is_dir():
                found[base] = None
            elif source is not None:
                raise InputError(f"{path}: data folder {data_dir} (dataset_kwargs.data_dir) not found")
        files = kwargs.get("data_files")
        if isinstance(files, dict):
            files = [f for split in files.values() for f in (split if isinstance(split, list) else [split])]
        for entry in files if isinstance(files, list) else [files] if files else []:
            local = _local_data(entry, base)
            if local is None and source is not None:
                raise InputError(f"{path}: data file {entry} (dataset_kwargs.data_files) not found")
            # one inside data_dir is in its hash already
            found.update({f: None for f in local or [] if base is None or not f.is_relative_to(base)})
    return list(found)


def load_task_yaml(path: Path, seen: set[Path] | None = None, files: dict[Path, None] | None = None,
                   functions: list[tuple[str, Path]] | None = None,
                   render: Callable[[str], str] | None = None) -> dict[str, Any] | None:
    """lm-eval's ``load_yaml`` (lm_eval/tasks/_yaml_loader.py) of one task YAML, as data: its ``include:``s
    followed recursively, each relative to the YAML that names it, and merged the way lm-eval merges them
    (includes in order, then the YAML's own keys; an included ``task_list`` dropped). lm-eval's own function
    does not say which files it read, and imports every ``!function`` (or, told not to, keeps only a path), so
    this one reads the same way and records: every file read is added to ``files``, and every ``!function`` to
    ``functions`` with the YAML it is in (lm-eval resolves it against that YAML's folder). ``render``: applied
    to each file's text first (nift-gate's templates name lm-eval's task folder ``${lm_eval_tasks}``). None
    where lm-eval's loading fails (a missing include, an include seen before, a YAML that is not a mapping): its
    index then skips the YAML, which is no task."""
    seen, files, functions = (set() if seen is None else seen, {} if files is None else files,
                              [] if functions is None else functions)
    path = path.expanduser().resolve()
    if path in seen or not path.is_file():
        return None
    seen.add(path)
    files[path] = None
    text = read_utf8(path, "task file")
    if render is not None:
        text = render(text)
    named: list[str] = []

    class Loader(_TaskYamlLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: named.append(str(loader.construct_scalar(node))))
    try:
        config = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        raise InputError(yaml_error_line(exc, path, text, what="task YAML")) from None
    functions.extend((name, path) for name in named)
    if not isinstance(config, dict) or "include" not in config:
        return config if isinstance(config, dict) else None
    includes = config.pop("include")
    merged: dict[str, Any] = {}
    for include in includes if isinstance(includes, list) else [includes]:
        if not isinstance(include, str):
            return None
        included = load_task_yaml(Path(include) if Path(include).is_absolute() else path.parent / include, seen,
                                  files, functions, render)
        if included is None:
            return None
        included.pop("task_list", None)
        merged.update(included)
    return merged | config


@functools.cache
def _versioned_packages() -> frozenset[str]:
    """Top-level modules whose code the fingerprint pins by a version: those of the
    :data:`~harness.core.records.RESULT_LIBRARIES` (lm-eval's ``lm_eval``, ``sklearn``...; their versions are
    in the stage fingerprint and the cache key) and nift-gate's own (its stage and scores versions)."""
    from importlib.metadata import packages_distributions

    def normal(name: str) -> str:
        return name.replace("_", "-").replace(".", "-").lower()

    wanted = {normal(name) for name in RESULT_LIBRARIES}
    return frozenset({top for top, dists in packages_distributions().items() if any(normal(d) in wanted for d in dists)}
                     | {__name__.split(".", 1)[0]})


def _function_module(name: str, yaml_path: Path) -> Path | None:
    """The file lm-eval runs for ``!function <name>`` in ``yaml_path`` (``_import_func_in_yml``): the module next to
    the YAML (``utils.process_docs`` -> ``<yaml folder>/utils.py``, dots as folders) when there is one; None for a
    module of a :func:`_versioned_packages` package, which lm-eval imports from the Python path. Any other module
    it would import from the Python path is refused: only its origin file could be hashed, not the modules it
    imports, and a module already imported in this process runs as it was then, whatever its file now holds."""
    module = name.rpartition(".")[0]
    if not module:
        return None  # lm-eval refuses it when it builds the task
    beside = (yaml_path.parent / f"{module.replace('.', '/')}.py").resolve()
    if beside.exists():
        return beside
    if module.split(".", 1)[0] in _versioned_packages():
        return None
    raise InputError(f"{yaml_path}: !function {name}: there is no {module.replace('.', '/')}.py beside this YAML, "
                     f"so lm-eval would import {module} from the Python path, and its code would not be in the "
                     "fingerprint (an edit to it would reuse the old results); put the module beside the YAML, where "
                     "lm-eval loads it from first")


def task_yaml_inputs(folder: Path) -> list[tuple[str, Path]]:
    """What lm-eval reads for the task YAMLs of a user's ``folder`` from outside it, as (input kind, path): the
    YAMLs they include (``task_file``, followed as lm-eval follows them), the modules their ``!function``s load
    (``task_code``, :func:`_function_module`) and the local data of each YAML merged with its includes
    (``task_data``, :func:`task_data_paths`). What lies inside ``folder`` is in its own hash."""
    inside = folder.resolve()
    files: dict[Path, None] = {}
    functions: list[tuple[str, Path]] = []
    merged = {}
    for path, own in validate_task_dir(folder).items():
        config = load_task_yaml(path, set(), files, functions)
        merged[path] = config if config is not None else own
    code = {module: None for name, yaml_path in functions if (module := _function_module(name, yaml_path))}
    found = [("task_file", p) for p in files] + [("task_code", p) for p in code] + [
        ("task_data", p) for p in task_data_paths(merged)]
    return [(kind, path) for kind, path in found if not path.is_relative_to(inside)]


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), "a number")


#: The header TruthfulQA's generation set (TruthfulQA.csv) starts with (after a UTF-8 byte order mark in the 2021
#: copy).
_TRUTHFULQA_CSV_HEADER = "Type,Category,Question,Best Answer"


#: What bench.truthfulqa_path takes, for a file in another layout.
_TRUTHFULQA_LAYOUT = ("bench.truthfulqa_path takes TruthfulQA's own multiple-choice file, one JSON array of "
                      "{question, mc1_targets, mc2_targets} objects whose targets map each choice to 0 or 1 "
                      "(data/v1/mc_task.json in the TruthfulQA repository), not the Hugging Face dataset, whose "
                      "targets are {choices, labels} lists")


def _truthfulqa_targets(path: Path, number: int, key: str, targets: Any) -> list[int]:
    """The labels of one item's ``mc1_targets``/``mc2_targets`` ({choice: 0 or 1}), in the file's order."""
    where = f"{path}: item {number}: field {key}"
    if not isinstance(targets, dict) or not targets:
        got = "an empty object" if isinstance(targets, dict) else _json_kind(targets)
        raise InputError(f"{where} must be a non-empty object mapping each choice to 0 or 1, got {got}")
    if set(targets) == {"choices", "labels"} and all(isinstance(v, list) for v in targets.values()):
        raise InputError(f"{where} is in the Hugging Face datasets layout ({{choices, labels}} lists); "
                         "bench.truthfulqa_path takes TruthfulQA's mc_task.json ({choice: 0 or 1} per field), "
                         "data/v1/mc_task.json in the TruthfulQA repository")
    for choice, label in targets.items():
        if not choice.strip():
            raise InputError(f"{where} has an empty choice")
        # the published labels are the integers 0 and 1; lm-eval's mc2 compares them with 1 (a "1" never equals it)
        if type(label) is not int or label not in (0, 1):
            raise InputError(f"{where}: the label of {choice[:60]!r} must be 0 or 1, got {json.dumps(label)}")
    return list(targets.values())


def _truthfulqa_rows(path: Path, data: bytes) -> list[dict]:
    """TruthfulQA's mc_task.json ({choice: label} maps) -> lm-eval's fields (choices and labels lists), each item
    checked against what lm-eval's truthfulqa_mc1/mc2 tasks assume: mc1 scores choice 0 as the answer
    (``doc_to_target: 0``), so exactly one label is 1 and it is the first; mc2 sums the probability of the choices
    labelled 1 (``process_results_mc2``), so at least one is. A key given twice in an object is refused: JSON
    keeps its last value, so a repeated choice would lose a label or flip one."""
    try:
        text = decode_utf8(data, path, reads="a JSON array (TruthfulQA's mc_task.json)")
    except InputError:
        # decode_utf8 advises converting a Parquet file to JSON Lines; converted, the Hugging Face dataset's rows
        # ({choices, labels} targets) are refused again
        if data.startswith(b"PAR1") and data.endswith(b"PAR1"):
            raise InputError(f"{path}: this is a Parquet file, not a JSON array (TruthfulQA's mc_task.json), and "
                             f"converting it will not make one: {_TRUTHFULQA_LAYOUT}") from None
        raise
    if text.lstrip("\ufeff").startswith(_TRUTHFULQA_CSV_HEADER):
        raise InputError(f"{path}: this is TruthfulQA's generation CSV; bench.truthfulqa_path takes mc_task.json, "
                         "the multiple-choice file (data/v1/mc_task.json in the TruthfulQA repository)")
    repeated: dict[int, str] = {}  # id of an object that gives a key twice -> the key

    def note_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        value = dict(pairs)
        if len(value) < len(pairs):
            keys = [key for key, _ in pairs]
            repeated[id(value)] = next(key for i, key in enumerate(keys) if key in keys[:i])
        return value

    try:
        items = json.loads(text, object_pairs_hook=note_repeats)
    except json.JSONDecodeError as exc:
        lines = "; mc_task.json is one JSON array, and this looks like JSON Lines" if exc.msg == "Extra data" else ""
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}){lines}") from None
    if not isinstance(items, list):
        raise InputError(f"{path}: expected a JSON array of TruthfulQA items (mc_task.json), got "
                         f"{_json_kind(items)}")
    if not items:
        raise InputError(f"{path}: no items (an empty JSON array)")
    rows = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InputError(f"{path}: item {number}: expected an object with question, mc1_targets and "
                             f"mc2_targets, got {_json_kind(item)}")
        for key in ("question", "mc1_targets", "mc2_targets"):
            if key not in item:
                raise InputError(f"{path}: item {number}: field {key} is missing")
        for where, value in (("", item), (" in field mc1_targets", item["mc1_targets"]),
                             (" in field mc2_targets", item["mc2_targets"])):
            if isinstance(value, dict) and id(value) in repeated:
                raise InputError(f"{path}: item {number}: key {repeated[id(value)]!r} is repeated{where}; JSON "
                                 "keeps only its last value")
        question = item["question"]
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{path}: item {number}: field question must be a non-empty string, got "
                             f"{json.dumps(question)[:60]}")
        mc1 = _truthfulqa_targets(path, number, "mc1_targets", item["mc1_targets"])
        if mc1[0] != 1 or mc1.count(1) != 1:
            raise InputError(f"{path}: item {number}: field mc1_targets must label exactly one choice 1, the first "
                             f"(lm-eval's truthfulqa_mc1 scores choice 0 as the answer); labels are {mc1}")
        mc2 = _truthfulqa_targets(path, number, "mc2_targets", item["mc2_targets"])
        if 1 not in mc2:
            raise InputError(f"{path}: item {number}: field mc2_targets labels no choice 1 (lm-eval's "
                             "truthfulqa_mc2 scores the probability of the choices labelled 1)")
        rows.append({"question": question,
                     **{key: {"choices": list(item[key]), "labels": list(item[key].values())}
                        for key in ("mc1_targets", "mc2_targets")}})
    return rows


@functools.cache
def _ifeval_checkers() -> dict[str, tuple[frozenset[str] | None, frozenset[str], dict[str, type]]]:
    """lm-eval's IFEval instruction ids -> (the arguments its checker's ``build_description`` takes, None when it
    takes any; those it requires; the type of each argument it draws itself when not given). Importing lm-eval's
    IFEval registry takes about 1.6 s on 2 cores (it imports lm_eval.tasks and nltk).

    lm-eval's checkers annotate nothing (every argument defaults to None): the value a checker draws for an
    argument left out, read back with ``get_instruction_args``, is the one statement of what it uses there (an
    int count, a str, a list of str). A checker that cannot be built without an argument (repeat_prompt's
    prompt_to_repeat) leaves that argument's type unknown. The draws use ``random``: its state is put back."""
    import inspect

    use_local_nltk_data()  # before lm-eval's IFEval modules: on import they download punkt_tab if not found
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    checkers = {}
    state = random.getstate()
    try:
        for instruction, checker in INSTRUCTION_DICT.items():
            params = list(inspect.signature(checker.build_description).parameters.values())[1:]  # after self
            named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
            try:
                built = checker(instruction)
                built.build_description()
                drawn = built.get_instruction_args() or {}
            except Exception:  # it needs an argument it does not draw (lm-eval raises ValueError, TypeError)
                drawn = {}
            checkers[instruction] = (None if takes_any else frozenset(p.name for p in named),
                                     frozenset(p.name for p in named if p.default is p.empty),
                                     {name: type(value) for name, value in drawn.items() if value is not None})
    finally:
        random.setstate(state)
    return checkers


def _ifeval_argument_error(value: Any, drawn: type) -> str | None:
    """Why ``value`` is not what lm-eval's checker uses for an argument whose own draws are of type ``drawn``, or
    None when it is (or ``drawn`` is no type checked here).

    lm-eval takes each of these without a word and scores something other than what the row says: true as the
    count 1; 2.5 words, no count, and -5, a bound every answer meets ("at least -5"); a string where it iterates a
    list as a list of its characters ("abc": the keywords a, b and c); a blank string as "", found in every
    answer; and an empty value (0, "", []) it drops, drawing one at random instead. Every number its checkers draw
    is a count or a position, so at least 1."""
    if drawn is int:
        ok = type(value) is int and value >= 1
        wanted = "a whole number of at least 1"
    elif drawn is list:
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v.strip() for v in value)
        wanted = "a non-empty list of non-empty strings"
    elif drawn is str:
        ok = isinstance(value, str) and bool(value.strip())
        wanted = "a non-empty string"
    else:
        return None
    if ok:
        return None
    dropped = " (lm-eval drops an empty value and draws one at random; null asks for that)" if not value else ""
    return f"must be {wanted}, got {json.dumps(value)[:60]}{dropped}"


#: What a checker is tried on before the model answers (two lines: some checkers split the response by line).
_PROBE_RESPONSE = "A first line of a probe response, with a few words.\nA second line."


def _try_ifeval_checker(row: dict[str, Any], number: int, where: str) -> None:
    """Score a probe response on instruction ``number`` of the IFEval ``row`` through lm-eval's own strict
    scoring (``test_instruction_following_strict``, which builds the checker from the row's kwargs), so that a
    value it cannot use (``num_words: "300"``, ``relation: "atleast"``) is refused with the row's field now, not
    as a traceback from the scoring after every answer was generated. lm-eval's checkers draw missing arguments
    from ``random``: its state is put back."""
    from lm_eval.tasks.ifeval.utils import InputExample, test_instruction_following_strict

    instruction = row["instruction_id_list"][number]
    one = InputExample(key=row["key"], instruction_id_list=[instruction], prompt=row["prompt"],
                       kwargs=[row["kwargs"][number]])
    state = random.getstate()
    try:
        test_instruction_following_strict(one, _PROBE_RESPONSE)
    except Exception as exc:  # lm-eval's checkers raise ValueError, TypeError, KeyError... on a bad value
        reason = " ".join(str(exc).split())[:160]
        raise InputError(f"{where}: lm-eval's checker for {instruction!r} cannot use these arguments "
                         f"({type(exc).__name__}: {reason})") from None
    finally:
        random.setstate(state)


def check_ifeval_rows(path: Path, data: bytes) -> None:
    """IFEval's input_data.jsonl checked against what lm-eval's IFEval scoring reads from each row
    (``utils.process_results``): ``key``, a non-empty ``prompt``, a non-empty ``instruction_id_list`` of
    instructions in lm-eval's registry, and ``kwargs``, one object per instruction holding only arguments its
    checker takes (null leaves one to the checker, which draws it), each of the type the checker draws for it
    (:func:`_ifeval_argument_error`). Errors name the file, line and field."""
    keys: dict[int, int] = {}
    rows = 0
    for line, row in numbered_jsonl(data, path):
        rows += 1
        where = f"{path}:{line}"
        for field in ("key", "prompt", "instruction_id_list", "kwargs"):
            if field not in row:
                raise InputError(f"{where}: field {field} is missing (IFEval rows hold key, prompt, "
                                 "instruction_id_list and kwargs)")
        key = row["key"]
        if type(key) is not int:
            raise InputError(f"{where}: field key must be an integer, got {json.dumps(key)[:60]}")
        if key in keys:
            raise InputError(f"{where}: field key {key} is also the key of line {keys[key]}")
        keys[key] = line
        prompt = row["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where}: field prompt must be a non-empty string, got {json.dumps(prompt)[:60]}")
        instructions, kwargs = row["instruction_id_list"], row["kwargs"]
        if not isinstance(instructions, list) or not all(isinstance(i, str) for i in instructions):
            raise InputError(f"{where}: field instruction_id_list must be a list of instruction ids (strings)")
        if not instructions:  # lm-eval's all() over no checks: every answer, even an empty one, a strict pass
            raise InputError(f"{where}: field instruction_id_list is empty; lm-eval would score any answer to this "
                             "prompt as following all its instructions")
        if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
            raise InputError(f"{where}: field kwargs must be a list of objects, one per instruction")
        if len(kwargs) != len(instructions):
            raise InputError(f"{where}: field kwargs has {len(kwargs)} entries for {len(instructions)} instructions "
                             "in instruction_id_list (one object per instruction, {} when it takes none)")
        checkers = _ifeval_checkers()  # lm-eval imported once, at the first row
        for number, (instruction, args) in enumerate(zip(instructions, kwargs)):
            if instruction not in checkers:
                close = difflib.get_close_matches(instruction, sorted(checkers), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"{where}: instruction {instruction!r} is not one of lm-eval's IFEval "
                                 f"instructions{hint}")
            takes, needs, drawn = checkers[instruction]
            given = {name for name, value in args.items() if value}  # as lm-eval passes them
            if takes is not None and (extra := sorted(given - takes)):
                accepted = ", ".join(sorted(takes)) or "none"
                raise InputError(f"{where}: field kwargs[{number}] gives {instruction!r} the argument {extra[0]!r}, "
                                 f"which lm-eval's checker does not take (it takes: {accepted})")
            if missing := sorted(needs - given):
                raise InputError(f"{where}: field kwargs[{number}] lacks {missing[0]!r}, which lm-eval's checker "
                                 f"for {instruction!r} needs")
            _try_ifeval_checker(row, number, f"{where}: field kwargs[{number}]")
            # after the probe, which names what its checker cannot use at all; this, what it would misread
            for name, value in args.items():
                if value is not None and name in drawn and (error := _ifeval_argument_error(value, drawn[name])):
                    raise InputError(f"{where}: field kwargs[{number}].{name} of {instruction!r} {error}")
    if not rows:
        raise InputError(f"{path}: no rows (IFEval's input_data.jsonl holds one JSON object per line)")


def _input_file(run: StageRun | None, spec: str, what: str, id: str) -> Path:
    """``spec`` resolved; an input of ``run`` (hashed by content) when one is given. ``what`` names the file in
    errors ("TruthfulQA file"): one that is not there, a folder, a broken link."""
    path = resolve_asset(spec)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a {what}")
    if not path.is_file():  # is_file() and is_dir() are False for every reason stat() fails: it says which
        try:
            path.stat()
        except FileNotFoundError:
            if path.is_symlink():  # the link is there, what it names is not
                raise InputError(f"{path}: is a broken link (to {os.readlink(path)}, which is not there), "
                                 f"not a {what}") from None
            raise InputError(f"{path}: {what} not found") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(f"{path}: is a broken link (links that lead round in a loop), not a {what}") from None
            raise InputError(f"{path}: cannot read this {what} ({exc.strerror or exc})") from None
        raise InputError(f"{path}: is not a regular file (a device, pipe or socket), not a {what}")
    return run.file(spec, kind="task_data", id=id) if run is not None else path


def _read(run: StageRun | None, path: Path) -> bytes:
    """The bytes of an input file: through ``run`` (so exactly the bytes it hashed) when there is one."""
    return run.read(path) if run is not None else read_bytes(path, "task data")


def _content_named_copy(folder: Path, name: str, content: bytes, digest: str) -> Path:
    """``content`` as ``folder/<stem>-<hash><suffix>``. lm-eval reads task data through ``datasets``, whose
    cache knows a local file by its path and mtime only: a file edited in place with its mtime kept would be
    read back stale, a file named by its content never is. Copies of earlier content are removed."""
    stem, suffix = Path(name).stem, Path(name).suffix
    target = folder / f"{stem}-{digest[:16]}{suffix}"
    if not target.exists():
        atomic_write_bytes(target, content)
    for old in folder.glob(f"{stem}-*{suffix}"):
        if old != target and len(old.name) == len(target.name):
            old.unlink(missing_ok=True)
    return target


def materialise(settings: LmEvalSettings, folder: Path, run: StageRun | None = None) -> tuple[str, list[InputRef]]:
    """Write the project tasks these settings use into ``folder``; return the include path and the data refs
    that key the result cache. The data of every task asked for is an input of ``run``, and is checked before
    anything is written: a bad row is an error naming its file and line (or item), before any model loads."""
    import importlib.util

    # Located, not imported: importing lm_eval.tasks costs seconds a cached rerun does not need.
    lm_eval_tasks = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
    refs = []
    truthfulqa_rows = None
    if settings.truthfulqa_path:  # mc1 and mc2 share one source, converted to lm-eval's fields once
        wanted = bool(TRUTHFULQA_TASKS & set(settings.tasks))
        source = _input_file(run if wanted else None, settings.truthfulqa_path, "TruthfulQA file",
                             f"truthfulqa:{settings.truthfulqa_path}")
        rows = _truthfulqa_rows(source, _read(run if wanted else None, source))
        truthfulqa_rows = "".join(json.dumps(r) + "\n" for r in rows).encode()
    # Every project task whose data is at hand is written (so its name is known and suggested); one that
    # is asked for without its data is an error. All are read and checked first, then written.
    to_write = []
    for task in sorted(PROJECT_TASKS):
        wanted = task in settings.tasks
        if task == "nift_if":
            spec = "embedded:suites/instruction_following.jsonl"
            source = _input_file(run if wanted else None, spec, f"data file of task {task}",
                                 f"{task}:{resolve_asset(spec).name}")
            name, content = source.name, _read(run if wanted else None, source)
        elif task == "nift_ifeval_local":
            if not settings.ifeval_path:
                if wanted:
                    raise ConfigError("task nift_ifeval_local needs bench.ifeval_path (IFEval's input_data.jsonl)")
                continue
            source = _input_file(run if wanted else None, settings.ifeval_path, f"data file of task {task}",
                                 f"{task}:{resolve_asset(settings.ifeval_path).name}")
            name, content = source.name, _read(run if wanted else None, source)
            if wanted:  # checking imports lm-eval's IFEval registry (seconds): only for a task that runs
                check_ifeval_rows(source, content)
        else:
            if truthfulqa_rows is None:
                if wanted:
                    raise ConfigError(f"task {task} needs bench.truthfulqa_path (TruthfulQA's mc_task.json)")
                continue
            name, content = "truthfulqa_mc.jsonl", truthfulqa_rows
        digest = sha256_bytes(content)
        template_path = assets_dir() / "tasks" / f"{task}.yaml"
        if wanted:
            refs.append(InputRef(kind="task_data", id=f"{task}:{name}", sha256=digest))
            # the template says how the task is built and scored: an edited one is another result
            template_id = f"{task}:template"
            template_ref = InputRef(kind="task_template", id=template_id, sha256=sha256_file(template_path))
            if run is not None:
                run.file(template_path, kind="task_template", id=template_id)
                template_ref = run.inputs[-1]
            refs.append(template_ref)
        template_bytes = _read(run if wanted else None, template_path)
        to_write.append((task, name, content, digest, decode_utf8(template_bytes, template_path)))
    folder.mkdir(parents=True, exist_ok=True)
    for task, name, content, digest, template in to_write:
        data = _content_named_copy(folder, name, content, digest)
        _write_when_changed(folder / f"{task}.yaml", Template(template).substitute(
            lm_eval_tasks=lm_eval_tasks, data_file=data.resolve(), max_gen_toks=settings.max_gen_toks))
    return str(folder), refs


def _write_when_changed(path: Path, text: str) -> None:
    """``text`` into ``path`` unless it already holds it: the ranks of a data-parallel bench that follow rank 0
    find its task files and write nothing."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


def prepare_tasks(settings: LmEvalSettings, folder: Path,
                  run: StageRun | None = None) -> tuple[list[str], list[InputRef]]:
    """Write nift-gate's task files into ``folder`` and check the user's; returns the include paths and the
    refs that key the result cache (task data and templates, each user task folder's content, and what its
    YAMLs have lm-eval read from outside it: :func:`task_yaml_inputs`).

    ``run`` is the calling stage's run: every task data file, template and task folder asked for becomes one
    of its inputs. Cheap: a fully cached rerun needs no more than this (building a TaskManager indexes every
    task lm-eval ships, several seconds).
    """
    from harness.core.runner import tree_sha256

    def pin(kind: str, spec: str | Path, ref_id: str, is_dir: bool) -> None:
        if run is not None:
            (run.tree if is_dir else run.file)(spec, kind=kind, id=ref_id)
            refs.append(InputRef(kind=kind, id=ref_id, sha256=run.inputs[-1].sha256))
        else:
            digest = tree_sha256(Path(spec)) if is_dir else sha256_file(Path(spec))
            refs.append(InputRef(kind=kind, id=ref_id, sha256=digest))

    use_local_nltk_data()
    include, refs = materialise(settings, folder, run)
    paths = [include]
    for extra in settings.task_dirs:
        path = resolve_asset(extra)
        if not path.is_dir():
            raise InputError(f"{path}: task folder not found")
        outside = task_yaml_inputs(path)
        pin("task_dir", extra if run is not None else path, extra, is_dir=True)
        for kind, read in outside:
            pin(kind, read, f"{extra}:{read}", is_dir=read.is_dir())
        paths.append(str(path))
    return paths, refs


def discard_tasks(folder: Path) -> None:
    """Remove the task files :func:`prepare_tasks` wrote into ``folder`` (and the folder above it when that is
    left empty), for a command that stops before anything used them: it leaves nothing behind."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # only when empty: the stage folder may hold other output
    except OSError:
        pass


def task_manager(include_paths: list[str], tasks: list[str], written: Path | None = None):
    """A TaskManager over lm-eval's tasks and ``include_paths``; unknown task names are refused.

    ``written``: the folder :func:`prepare_tasks` filled for this command, discarded when a name is refused
    (the names can only be checked against the index this builds, after the files were written)."""
    from lm_eval.tasks import TaskManager

    if include_paths:
        # Indexing lm-eval's own task folders takes 13-17 s on a 2-core machine. When every task asked for is
        # a plain task of the include paths (not a group or tag, which may name lm-eval's tasks), the index of
        # those paths alone loads the same tasks.
        own = TaskManager(include_path=include_paths, include_defaults=False)
        if all(task in own.all_subtasks for task in tasks):
            return own
    manager = TaskManager(include_path=include_paths)
    known = set(manager.all_tasks)
    for task in tasks:
        if task not in known:
            if written is not None:
                discard_tasks(written)
            close = difflib.get_close_matches(task, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `lm-eval ls tasks` lists them"
            raise ConfigError(f"unknown task {task!r}{hint}")
    return manager


# --- scoring --------------------------------------------------------------------------------------------------

#: The IFEval instruction whose lm-eval checker checks a ``random.choice`` letter when the one asked for is not
#: a letter ("at least 4 '#'"): the score of such an item depends on the seed and on the order items are scored.
LETTER_FREQUENCY = "keywords:letter_frequency"
#: nift-gate's tasks scored by :func:`score_ifeval` (their templates name it).
IFEVAL_TASKS = {"nift_if", "nift_ifeval_local"}
#: How IFEval-style items were scored, written into each such task's scores: nift-gate's tasks, and any other
#: IFEval-based task (lm-eval's ``ifeval``, a user's YAML), which keeps lm-eval's process_results.
IFEVAL_SCORING = ("deterministic: every item scored under its own seed (from its key and prompt, not the "
                  "generation seed), langdetect seeded; a letter-frequency instruction naming a character that "
                  "is not a letter counts that character")
OTHER_IFEVAL_SCORING = ("lm-eval's process_results with langdetect seeded and a letter-frequency instruction naming "
                        "a character that is not a letter counting that character; a checker missing an argument "
                        "draws it from the run's random state")


def _is_ascii_letter(char: str) -> bool:
    return len(char) == 1 and "a" <= char.lower() <= "z"


def asks_for_a_character(doc: dict[str, Any]) -> bool:
    """Whether an IFEval-style item has a letter-frequency instruction whose 'letter' is a single character
    that is not a letter: lm-eval's own checker would check a random letter for it."""
    instructions = doc.get("instruction_id_list") or []
    kwargs = doc.get("kwargs") or []
    for instruction, args in zip(instructions, kwargs):
        letter = (args or {}).get("letter") if isinstance(args, dict) else None
        if instruction == LETTER_FREQUENCY and isinstance(letter, str) and len(letter.strip()) == 1 \
                and not _is_ascii_letter(letter.strip()):
            return True
    return False


@functools.cache
def _character_frequency_checker() -> type:
    """lm-eval's LetterFrequencyChecker, counting the character the instruction names when it is not a
    letter. Built on first use: importing lm-eval's IFEval modules imports nltk and langdetect."""
    from lm_eval.tasks.ifeval.instructions import LetterFrequencyChecker

    class CharacterFrequencyChecker(LetterFrequencyChecker):
        def build_description(self, *, letter=None, let_frequency=None, let_relation=None):
            requested = letter.strip() if isinstance(letter, str) else ""
            if len(requested) != 1 or _is_ascii_letter(requested):
                return super().build_description(letter=letter, let_frequency=let_frequency,
                                                 let_relation=let_relation)
            # lm-eval validates frequency and relation; "a" only keeps it from drawing a random letter
            super().build_description(letter="a", let_frequency=let_frequency, let_relation=let_relation)
            self._letter = requested.lower()
            return self._description_pattern.format(letter=self._letter, let_frequency=self._frequency,
                                                    let_relation=self._comparison_relation)

    return CharacterFrequencyChecker


@contextmanager
def deterministic_ifeval_checkers(item_seed: str | None = None) -> Iterator[None]:
    """While inside: lm-eval's IFEval registry uses the character-counting letter-frequency checker,
    ``langdetect`` is seeded, and, with ``item_seed``, Python's ``random`` is seeded for this item alone (a
    checker missing an argument draws it from ``random``). Everything is restored on the way out, so
    generation's random state is neither used nor disturbed by scoring."""
    import random

    use_local_nltk_data()
    from langdetect import DetectorFactory
    from lm_eval.tasks.ifeval import instructions_registry

    registry = instructions_registry.INSTRUCTION_DICT
    saved = random.getstate(), DetectorFactory.seed, registry[LETTER_FREQUENCY]
    try:
        registry[LETTER_FREQUENCY] = _character_frequency_checker()
        DetectorFactory.seed = 0  # langdetect's documented way to make detect() deterministic
        if item_seed is not None:
            random.seed(item_seed)
        yield
    finally:
        random.setstate(saved[0])
        DetectorFactory.seed = saved[1]
        registry[LETTER_FREQUENCY] = saved[2]


def score_ifeval(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """lm-eval's IFEval ``process_results`` for one item, made deterministic: the same response gets the same
    per-item result in any run, any order and under any generation seed. nift-gate's IFEval task templates
    name this function. A change to how it scores must bump those templates' ``metadata.version``."""
    use_local_nltk_data()  # before lm-eval's IFEval modules: on import they download punkt_tab if not found
    from lm_eval.tasks.ifeval.utils import process_results

    with deterministic_ifeval_checkers(item_seed=json.dumps(["nift-gate ifeval", doc.get("key"), doc.get("prompt")])):
        return process_results(doc, results)


# --- evaluation -----------------------------------------------------------------------------------------------


class TaskScores(BaseModel):
    version: str | None = Field(description="The task's metadata.version.")
    n: int = Field(description="Items scored: the task's documents (each once, under the kept filter).")
    metrics: dict[str, float] = Field(description="Aggregate per metric (lm-eval's 'acc,none' style keys trimmed).")
    stderr: dict[str, float | None] = Field(default_factory=dict)
    higher_is_better: dict[str, bool] = Field(description="lm-eval's direction for each metric.")
    scoring: str | None = Field(None, description="How nift-gate changed lm-eval's scoring of this task, when it "
                                                  "did (IFEval-style tasks); None: lm-eval's own.")
    character_items: int = Field(0, description="IFEval-style items asking to count a character that is not a "
                                                 "letter ('#', '!'); lm-eval's checker would check a random letter "
                                                 "for them, nift-gate's counts the character, and they stay in the "
                                                 "paired comparison.")
    successes: dict[str, int] = Field(default_factory=dict, description="For each metric whose per-item values are "
                                                                     "all 0 or 1 and whose aggregate is their mean "
                                                                     "(accuracies): the items scoring 1. The record's "
                                                                     "CI of such a metric is Wilson's, not a normal "
                                                                     "interval around lm-eval's stderr.")
    filter: str | None = Field(None, description="The lm-eval filter these results are under (see "
                                                 ":func:`task_filters`: the task's last; 'none' for a task without "
                                                 "a filter_list). n, metrics, stderr, successes and the per-item "
                                                 "rows are all this filter's. None: a record made before it was "
                                                 "kept.")


class ModelEvalRecord(Record):
    """One model's lm-eval results on the tasks; per-item rows in samples_<task>.jsonl beside it."""

    kind: Literal["model_eval"] = "model_eval"
    model_name: str
    model: ResolvedModel
    fingerprint_fields: dict[str, Any] = Field(description="What must match for two results to be compared.")
    tasks: dict[str, TaskScores]
    seconds: float
    threads: dict[str, Any] = Field(default_factory=dict)
    world_size: int = Field(1, ge=1, description="Processes that shared lm-eval's requests (accelerate launch "
                                                 "ranks; each scored every world_size-th document). The results "
                                                 "are the ones one process makes.")


def eval_device(settings: LmEvalSettings, ranks=None) -> str:
    """Where lm-eval's model runs (as :func:`load_lm` places it), for the cache key: a CPU and a GPU, or two GPU
    models, run other kernels and round differently, so their scores can differ. ``cpu (x86_64)`` or
    ``cuda (<GPU name>)``. For vLLM the name is read through NVML (``pynvml``, a dependency of vLLM) where it can
    be: CUDA started in this process would hold device memory before vLLM's engine measures what is free."""
    import torch

    kind = ranks.device.type if ranks is not None else (
        "cuda" if settings.backend == "vllm" or torch.cuda.is_available() else "cpu")
    if kind != "cuda":
        return f"{kind} ({platform.machine()})"
    if settings.backend == "vllm":
        try:
            import pynvml

            pynvml.nvmlInit()
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(torch.cuda._get_nvml_device_index(0)))
            return f"cuda ({name.decode() if isinstance(name, bytes) else name})"
        except Exception:  # no pynvml, or NVML cannot see the device: CUDA's own name
            pass
        if not torch.cuda.is_available():  # loading refuses it (no vLLM, no GPU)
            return "cuda"
    return f"cuda ({torch.cuda.get_device_name(ranks.device if ranks is not None else None)})"


def fingerprint_fields(settings: LmEvalSettings, task_refs: list[InputRef], ranks=None) -> dict[str, Any]:
    """What keys one model's cached results (with its weights' hash), and must match for two results to be
    compared: the :data:`FINGERPRINT_FIELDS` of ``settings``, the versions of the libraries that make the numbers
    (the stage fingerprint's :data:`~harness.core.records.RESULT_LIBRARIES`: a transformers or torch upgrade is
    other results, not the cached ones under a new record), the device (:func:`eval_device`; ``ranks`` as for
    :func:`load_lm`), :data:`SCORES_VERSION` and the hash of every task input (``task_refs``)."""
    fields = {name: getattr(settings, name) for name in FINGERPRINT_FIELDS}
    fields["lm_eval_version"] = library_versions().get("lm-eval")
    fields["libraries"] = result_code_versions(SCORES_VERSION)["libraries"]
    fields["device"] = eval_device(settings, ranks)
    fields["scores_version"] = SCORES_VERSION
    fields["task_data"] = {ref.id: ref.sha256 for ref in task_refs}
    return fields


def fingerprint_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of fingerprint fields that differ (task versions included), for a refusal message."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _metric_name(key: str) -> str:
    return key.split(",", 1)[0]


def task_filters(aggregate: dict[str, Any]) -> list[str]:
    """The filters of one task's lm-eval aggregate, in lm-eval's order: the task's ``filter_list`` order, or
    ``["none"]`` without one.

    lm-eval scores a task once per filter (gsm8k's strict-match and flexible-extract, a chain-of-thought task's
    answer extractions), keys each aggregate "metric,filter" and logs one sample per filter and document, filter
    by filter. nift-gate names a metric without its filter, so it keeps one filter's results, the last's (whose
    aggregates it always reported): samples under two filters would count every document twice, and two filters'
    scores of one document are no independent items."""
    return list(dict.fromkeys(key.split(",", 1)[1] for key in aggregate if "," in key))


def item_key(sample: dict[str, Any]) -> str:
    """Items are matched across models by lm-eval's document hash (the same doc gives the same hash)."""
    return str(sample.get("doc_hash") or sample["doc_id"])


def _sample_row(sample: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    def plain(value):
        return value if isinstance(value, (int, float, str, bool)) or value is None else json.loads(
            json.dumps(value, default=str))

    row = {"doc_id": sample["doc_id"], "item": item_key(sample), "target": plain(sample.get("target")),
           "response": plain(sample.get("filtered_resps")), "prompt": plain(sample.get("arguments")),
           "scores": {m: plain(sample[m]) for m in metrics if m in sample}}
    # IFEval-style items: which instruction each entry of the per-instruction pass/fail lists checked (the
    # report's error profile groups by it; lm-eval's sample keeps the document, the scores alone do not say).
    if isinstance(ids := (sample.get("doc") or {}).get("instruction_id_list"), list):
        row["instruction_id_list"] = [str(i) for i in ids]
    return row


def binary_successes(rows: list[dict[str, Any]], metrics: dict[str, float]) -> dict[str, int]:
    """Metric -> items scoring 1, for each metric that is a proportion: every item has a scalar 0/1 score and the
    aggregate is their mean. Metrics aggregated otherwise (lists per item, as IFEval's instruction-level
    accuracies; F1; perplexities) are left out."""
    found = {}
    for metric, aggregate in metrics.items():
        values = [row["scores"].get(metric) for row in rows]
        if not values or not all(isinstance(v, int | float) and v in (0, 1) for v in values):
            continue
        hits = int(sum(values))
        if math.isclose(aggregate, hits / len(values), abs_tol=1e-9):
            found[metric] = hits
    return found


def run_lm_eval(lm, settings: LmEvalSettings,
                task_manager) -> tuple[dict[str, TaskScores], dict[str, list[dict]], float] | None:
    """``lm`` is any lm-eval LM (HFLM in production, a scripted model in tests). None on a rank other than 0 of a
    data-parallel ``lm``: lm-eval gathers every result on rank 0 and returns nothing elsewhere."""
    import lm_eval

    start = time.perf_counter()
    # Around the whole run as well: an IFEval-based task that is not nift-gate's (lm-eval's registered
    # `ifeval`, a user's YAML) scores with lm-eval's process_results, which this still makes count the
    # requested character and seeds langdetect for.
    with deterministic_ifeval_checkers():
        results = lm_eval.simple_evaluate(
            model=lm, tasks=list(settings.tasks), task_manager=task_manager, num_fewshot=settings.num_fewshot,
            limit=settings.limit, log_samples=True, apply_chat_template=settings.apply_chat_template,
            bootstrap_iters=1000, random_seed=settings.seed, numpy_random_seed=settings.seed,
            torch_random_seed=settings.seed, fewshot_random_seed=settings.seed)
    seconds = time.perf_counter() - start
    if results is None:
        return None
    scores, rows = {}, {}
    for task in settings.tasks:
        aggregate = results["results"][task]
        directions = results.get("higher_is_better", {}).get(task, {})
        filters = task_filters(aggregate)
        kept = filters[-1] if filters else None
        if len(filters) > 1:
            log.info(f"{task}: lm-eval scored it under the filters {', '.join(filters)}; the results kept are "
                     f"{kept}'s")
        own = {_metric_name(k): v for k, v in aggregate.items() if "," in k and k.split(",", 1)[1] == kept}
        # lm-eval reports NaN for an aggregate it could not compute (a BBQ category with no items in the run, a
        # stderr of one item): no value, so it is left out (a NaN would be written as null and fail to reload).
        metrics = {m: float(v) for m, v in own.items()
                   if "_stderr" not in m and isinstance(v, (int, float)) and math.isfinite(v)}
        if skipped := sorted(m for m, v in own.items()
                             if "_stderr" not in m and isinstance(v, float) and not math.isfinite(v)):
            log.warning(f"{task}: lm-eval computed no value for {', '.join(skipped)} (NaN); left out")
        stderr = {m.replace("_stderr", ""): (float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
                  for m, v in own.items() if "_stderr" in m}
        samples = [s for s in results["samples"][task] if kept is None or s.get("filter", kept) == kept]
        rows[task] = [_sample_row(s, list(metrics)) for s in samples]
        docs = [s.get("doc") or {} for s in samples]
        ifeval_style = any("instruction_id_list" in d for d in docs)
        note = (IFEVAL_SCORING if task in IFEVAL_TASKS else OTHER_IFEVAL_SCORING) if ifeval_style else None
        scores[task] = TaskScores(version=str(results.get("versions", {}).get(task)), n=len(samples),
                                  metrics=metrics, stderr=stderr,
                                  higher_is_better={m: bool(directions.get(m, True)) for m in metrics},
                                  scoring=note,
                                  character_items=sum(map(asks_for_a_character, docs)),
                                  successes=binary_successes(rows[task], metrics), filter=kept)
    return scores, rows, seconds


# --- data parallelism -----------------------------------------------------------------------------------------

#: Set by the launchers accelerate uses: torchrun (``accelerate launch --multi_gpu``/a config file) and mpirun.
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def data_parallel_state():
    """accelerate's ``PartialState`` when this process is one of several that ``accelerate launch`` (or torchrun)
    started, else None. Read from the launcher's environment first, so a single process imports nothing.

    The state is made by the rule the train and data stages use (CPU, so gloo, when ``ACCELERATE_USE_CPU`` is
    set or there is no CUDA device): a stage later in the same process finds the one it would have made. Its
    process group waits as long as lm-eval's own (a year): ranks meet after every request type, and one rank's
    share of a generative task can take far longer than another's."""
    if max(int(os.environ.get(name) or 1) for name in _WORLD_SIZE_VARIABLES) <= 1:
        return None
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available(),
                         timeout=timedelta(weeks=52))
    return state if state.num_processes > 1 else None


def _interleave(parts: list[list[Any]]) -> list[Any]:
    """Rank-ordered lists of per-document entries, back in document order: lm-eval's evaluator gives rank ``r``
    documents ``r, r + W, r + 2W, ...`` (``islice(docs, rank, limit, world_size)``)."""
    merged = []
    for i in range(max(map(len, parts), default=0)):
        merged += [part[i] for part in parts if i < len(part)]
    return merged


def _merge_rank_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One task-keyed payload of lm-eval's evaluator from every rank's, entries in the order one process makes
    them: logged samples (per filter, each filter's documents in order) and raw metrics (per (metric, filter)
    key, one value per document in order)."""
    merged: dict[str, Any] = {}
    for task, first in parts[0].items():
        if isinstance(first, dict):
            merged[task] = {key: _interleave([part[task][key] for part in parts]) for key in first}
        else:
            filters = list(dict.fromkeys(sample.get("filter") for part in parts for sample in part[task]))
            merged[task] = [sample for f in filters for sample in _interleave(
                [[s for s in part[task] if s.get("filter") == f] for part in parts])]
    return merged


@functools.cache
def _sharded_hflm() -> type:
    """lm-eval's HFLM made data-parallel for a model nift-gate loaded. Built on first use (lm-eval's import).

    HFLM shares requests across ranks only for a model it loads by name onto more than one GPU: given a model
    object it runs as one process (rank 0 of 1), and on CPUs it never shares. lm-eval's ``LM`` says what a class
    overrides to have the evaluator distribute requests instead: ``rank``, ``world_size`` and the three
    communication primitives; this does that over accelerate's state (gloo on CPU, NCCL on GPUs)."""
    from accelerate.utils import gather
    from lm_eval.models.huggingface import HFLM

    class ShardedHFLM(HFLM):
        def __init__(self, *args: Any, state: Any, **kwargs: Any):
            import logging

            # HFLM warns that a model object means one process ("do not launch via accelerate"): not so here
            hf_log = logging.getLogger(HFLM.__module__)
            level = hf_log.level
            hf_log.setLevel(logging.ERROR)
            try:
                super().__init__(*args, **kwargs)
            finally:
                hf_log.setLevel(level)
            self._state = state
            self._rank, self._world_size = state.process_index, state.num_processes

        def all_gather(self, tensor):
            return gather(tensor)

        def gather_object(self, obj, dst=0):
            """Every rank's ``obj`` on ``dst``, merged into one in document order (a list of that one object, as
            the evaluator chains the list it gets). The evaluator would put rank 0's documents before rank 1's: its
            aggregates (float sums, bootstrap resamples drawn by position) and the sample order would then differ
            from one process's."""
            import torch.distributed as dist

            parts = [None] * self._world_size if self._rank == dst else None
            dist.gather_object(obj, object_gather_list=parts, dst=dst)
            return [_merge_rank_results(parts)] if parts is not None else None

        def barrier(self):
            self._state.wait_for_everyone()

    return ShardedHFLM


def load_lm(resolved: ResolvedModel, settings: LmEvalSettings, ranks=None):
    """lm-eval's HFLM around the model nift-gate loaded, or lm-eval's vLLM class on the same folder.

    ``ranks`` (:func:`data_parallel_state`): the HFLM shares lm-eval's requests with the other processes, its
    model on this process's device."""
    if settings.backend == "vllm":
        if ranks is not None:
            raise ConfigError("bench.backend=vllm runs in one process (vLLM spreads over GPUs itself); run it "
                              "without accelerate launch, or use bench.backend=hf")
        if resolved.gguf_file:
            # A GGUF source's path is the folder holding the file; vLLM and lm-eval's VLLM (which also reads
            # config.json from `pretrained`) load a Hugging Face folder or a hub id.
            raise ConfigError(f"bench.backend=vllm cannot load the GGUF file {resolved.gguf_file} of "
                              f"{resolved.spec!r}: use a safetensors folder (an embedded model is converted to "
                              "one), or bench.backend=hf")
        try:
            from lm_eval.models.vllm_causallms import VLLM
        except ImportError:
            raise ConfigError("bench.backend=vllm needs vLLM (pip install vllm, on a GPU machine)") from None
        return VLLM(pretrained=resolved.path, dtype=settings.dtype, batch_size=settings.batch_size,
                    seed=settings.seed)

    import torch
    from lm_eval.models.huggingface import HFLM

    from harness.core.models import load_model

    loaded = load_model(resolved, dtype=settings.dtype)
    if ranks is not None:
        first, count = ranks.process_index, ranks.num_processes
        log.info(f"[{resolved.spec}] rank {first} of {count}: documents {first}, {first + count}, "
                 f"{first + 2 * count}, ...")
        return _sharded_hflm()(pretrained=loaded.model.to(ranks.device), tokenizer=loaded.tokenizer,
                               batch_size=settings.batch_size, device=str(ranks.device), state=ranks)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFLM(pretrained=loaded.model.to(device), tokenizer=loaded.tokenizer, batch_size=settings.batch_size,
                device=device)


def shutdown_engine(lm) -> None:
    """Stop the vLLM engine of lm-eval's VLLM (a no-op for any other LM). vLLM reserves a share of the whole
    device (``gpu_memory_utilization``, 0.92 in vLLM 0.33) and refuses to start while that much is not free, so
    the candidate's engine must be gone before a baseline's starts; garbage collection alone may leave its
    engine-core process running."""
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)  # lm-eval's VLLM keeps vllm.LLM as .model
    core = getattr(engine, "engine_core", None)  # vLLM 0.33's EngineCoreClient
    if core is not None:
        core.shutdown()


def _run_loaded(resolved: ResolvedModel, settings: LmEvalSettings, manager, ranks=None):
    """:func:`run_lm_eval` on a model loaded here, let go of afterwards: its engine stopped, its memory collected
    and the CUDA caching allocator emptied (cached blocks count as used memory to the next vLLM engine)."""
    import gc
    import sys

    lm = load_lm(resolved, settings) if ranks is None else load_lm(resolved, settings, ranks)
    try:
        return run_lm_eval(lm, settings, manager)
    finally:
        shutdown_engine(lm)
        del lm
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def cache_dir(home: Path, model_sha: str, fields: dict[str, Any]) -> Path:
    return home / "_cache" / "bench" / f"{model_sha[:16]}-{config_hash(fields)[:16]}"


def evaluate_model(name: str, resolved: ResolvedModel, settings: LmEvalSettings, task_manager: Callable[[], Any],
                   task_refs: list[InputRef], home: Path, run_id: str, force: bool = False,
                   lm=None, ranks=None) -> tuple[ModelEvalRecord, Path, bool] | None:
    """lm-eval results for one model, from the cache when this model was run with the same fingerprint.

    ``task_refs`` are :func:`prepare_tasks`' refs. ``task_manager`` is called only when the model must really
    be evaluated. Returns the record, the folder holding it and its per-item rows, and whether it came from
    the cache.

    ``ranks`` (:func:`data_parallel_state`, called by every process of an ``accelerate launch``): the processes
    share the model's documents; rank 0 decides whether the cache holds the results, gathers them and alone
    writes the cache entry. Every other rank returns None.
    """
    fields = fingerprint_fields(settings, task_refs, ranks)
    folder = cache_dir(home, resolved.sha256, fields)
    cached = not force and (folder / RECORD_FILE).exists()
    if ranks is not None:
        from accelerate.utils import broadcast_object_list

        # rank 0's answer: an entry it wrote a moment ago may not be visible to the others yet, and ranks that
        # disagreed would wait for each other forever
        cached = broadcast_object_list([cached])[0]
    helper = ranks is not None and not ranks.is_main_process
    if cached:
        if helper:
            return None
        record = read_record(folder, ModelEvalRecord)
        log.info(f"[{name}] cached lm-eval results reused ({folder}); --force reruns")
        return record, folder, True
    from harness.core.threads import choose_threads

    threads = choose_threads("generate", settings.threads)
    manager = task_manager()  # first: an unknown task fails before a model is loaded
    if lm is not None:
        results = run_lm_eval(lm, settings, manager)
    else:
        results = _run_loaded(resolved, settings, manager) if ranks is None else _run_loaded(
            resolved, settings, manager, ranks)
    if helper:
        return None
    scores, rows, seconds = results
    record = ModelEvalRecord(
        record_id=new_record_id("model_eval"), run_id=run_id, config=settings.model_dump(),
        inputs=[InputRef(kind="model", id=resolved.spec, sha256=resolved.sha256), *task_refs],
        fingerprint=config_hash(fields), model_name=name, model=resolved, fingerprint_fields=fields, tasks=scores,
        seconds=round(seconds, 2), threads=threads.model_dump(),
        world_size=ranks.num_processes if ranks is not None else 1)
    with atomic_dir(folder) as tmp:
        for task, task_rows in rows.items():
            atomic_write_jsonl(tmp / f"samples_{task}.jsonl", task_rows)
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    return record, folder, False


def load_samples(record_dir: Path, task: str) -> list[dict[str, Any]]:
    path = record_dir / f"samples_{task}.jsonl"
    if not path.exists():
        raise InputError(f"{path}: per-item rows missing; rerun with --force")
    return read_jsonl(path)
