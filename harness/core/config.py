"""What every stage's config section shares: strict fields, unique names, a named model.

Each stage owns one config module built from :class:`Section`; the pipeline config aggregate (the
composition root) puts them side by side. Unknown keys are errors, so a typo in a YAML file is reported
with its field path instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.core.errors import ConfigError
from harness.core.store import read_utf8


class Section(BaseModel):
    """Base of every config section: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class ModelRef(Section):
    """A model compared against the candidate, under the name the tables and the report use."""

    name: str = Field(description="Name in the tables and the report, e.g. 'smollm2-shipped'.")
    model: str = Field(description="train:<checkpoint> of this run, an embedded name, a folder, .gguf or hub id.")


def require_unique(names: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the repeated entries when ``names`` holds one twice (pydantic validators
    turn it into a field error)."""
    names = list(names)
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{what} must be unique; repeated: {repeated}")


# --- the pipeline YAML, shared by the composition root and the review app (which reads one section) -----------


def read_config_yaml(path: Path) -> dict[str, Any]:
    """A pipeline YAML as a mapping of sections; errors (missing, a folder, not UTF-8, not YAML) name the
    file and line."""
    text = read_utf8(path, "config file", ConfigError)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({_problem(exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (run, data, ...)")
    return raw


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``data.cut.ratio=0.4`` -> (['data', 'cut', 'ratio'], 0.4); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. data.cut.ratio=0.4")
    key, value = text.split("=", 1)
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({_problem(exc)}); "
                          "put a string value in quotes") from None


def _problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint on one line (a reader error's text spans several)."""
    return " ".join(str(getattr(exc, "problem", None) or exc).split())


def set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``tree[k1][k2]... = value``; in a list, a key is an index or the ``name`` of an entry."""
    node: Any = tree
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = _list_entry(node, key, keys[: depth + 1])
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            raise ConfigError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[:depth])} is not a section")
    if isinstance(node, list):
        raise ConfigError(f"cannot set {'.'.join(keys)}: name a list entry by index or name, then a field")
    if not isinstance(node, dict):
        raise ConfigError(f"cannot set {'.'.join(keys)}: {'.'.join(keys[:-1])} is not a section")
    node[keys[-1]] = value


def _list_entry(entries: list[Any], key: str, path: list[str]) -> Any:
    if key.isdigit() and int(key) < len(entries):
        return entries[int(key)]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == key:
            return entry
    names = [e.get("name") for e in entries if isinstance(e, dict)]
    raise ConfigError(f"cannot set {'.'.join(path)}: no entry {key!r} (entries: {names})")
