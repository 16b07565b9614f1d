"""Relative paths in a pipeline YAML are resolved against its folder: every config field naming a file or a
folder is in ``_PATH_FIELDS``, so a new one cannot be left resolved against the working directory instead."""

from __future__ import annotations

import re
import types
import typing

import yaml
from pydantic import BaseModel, SecretStr

from harness.app.config import _PATH_FIELDS, PipelineConfig, load_pipeline_config

#: Fields whose description mentions a file or folder but whose value is not a path.
NOT_PATHS = {
    ("run",): "the run's folder name under the runs home",
    ("data", "variants", "*", "name"): "a variant's folder name under data/",
    ("train", "*", "name"): "a checkpoint's folder name under train/",
    ("bench", "alpaca_eval", "reference"): "a baseline's name or null",
    ("audit", "toxicity", "label_field"): "a field name in the prompt file",
    ("gate", "mlflow", "tracking_uri"): "a URI (file:// included), used as written",
}
#: What in a description or a default says the value is a file or a folder.
_NAMES_A_PATH = re.compile(r"\b(files?|folders?)\b|\.jsonl|\.json\b|\.ya?ml\b|\.gguf|\bmc_task\b", re.IGNORECASE)


def _members(annotation) -> list:
    """The types a field's annotation allows, unions and lists opened (list[str] | None -> [str, NoneType])."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    if typing.get_origin(annotation) is list:
        return _members(typing.get_args(annotation)[0])
    return [annotation]


def _is_list(annotation) -> bool:
    return typing.get_origin(annotation) is list or any(
        typing.get_origin(a) is list for a in typing.get_args(annotation))


def _string_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    """(keys, field) of every field of ``model`` that holds a plain string, ``*`` for a list's entries."""
    for name, field in model.model_fields.items():
        keys = (*prefix, name, *(("*",) if _is_list(field.annotation) else ()))
        members = _members(field.annotation)
        for nested in (m for m in members if isinstance(m, type) and issubclass(m, BaseModel)):
            yield from _string_fields(nested, keys)
        if str in members and SecretStr not in members:
            yield keys, field


def _names_a_path(field) -> bool:
    default = field.default if isinstance(field.default, str) else ""
    return bool(_NAMES_A_PATH.search(field.description or "")) or default.startswith("embedded:")


def test_every_field_naming_a_file_or_folder_is_resolved_against_the_config_folder():
    listed = set(_PATH_FIELDS)
    missing = [".".join(keys) for keys, field in _string_fields(PipelineConfig)
               if _names_a_path(field) and keys not in listed and keys not in NOT_PATHS]
    assert missing == []


def test_every_listed_path_field_exists():
    fields = {keys for keys, _ in _string_fields(PipelineConfig)}
    overrides = ("data", "variants", "*", "overrides")  # a dict of data.* fields, checked as data.*
    stale = [".".join(keys) for keys in _PATH_FIELDS
             if (("data", *keys[len(overrides):]) if keys[:4] == overrides else keys) not in fields]
    assert stale == []
    assert set(NOT_PATHS) <= fields


def test_prompt_files_of_mt_bench_and_alpaca_eval_are_read_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "q.jsonl").write_text("{}\n")
    (tmp_path / "sub" / "judges.jsonl").write_text("{}\n")
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(yaml.safe_dump({"run": "x", "bench": {
        "mt_bench": {"prompts": "sub/q.jsonl", "judge_prompts": "sub/judges.jsonl"},
        "alpaca_eval": {"prompts": "sub/q.jsonl"}, "pairwise": {"prompts": "sub/q.jsonl"}},
        "data": {"variants": [{"name": "v", "overrides": {"corpus": {"path": "sub/q.jsonl"}}}]}}))
    monkeypatch.chdir(tmp_path / "sub")  # not the config's folder: the names must not be read from here
    bench = load_pipeline_config(cfg).bench
    prompts = str(tmp_path / "sub" / "q.jsonl")
    assert (bench.mt_bench.prompts, bench.alpaca_eval.prompts, bench.pairwise.prompts) == (prompts,) * 3
    assert bench.mt_bench.judge_prompts == str(tmp_path / "sub" / "judges.jsonl")
    assert load_pipeline_config(cfg).data.variants[0].overrides["corpus"]["path"] == prompts
    # embedded assets, and a name with no file beside the config, stay as written
    assert load_pipeline_config(cfg, ["bench.mt_bench.prompts=nope.jsonl"]).bench.mt_bench.prompts == "nope.jsonl"
