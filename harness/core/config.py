"""What every stage's config section shares: strict fields, unique names, a named model.

Each stage owns one config module built from :class:`Section`; the pipeline config aggregate (the
composition root) puts them side by side. Unknown keys are errors, so a typo in a YAML file is reported
with its field path instead of being silently ignored.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from harness.core.errors import ConfigError
from harness.core.store import folder_name_problem, read_utf8


def number_kind(annotation: Any) -> str | None:
    """"number" or "integer" where a field of type ``annotation`` holds a number and not a boolean (``float``,
    ``int``, ``int | None``; not ``int | bool``), else None."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return number_kind(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        kinds = {number_kind(arg) for arg in args} - {None}
        return None if bool in args or not kinds else "number" if "number" in kinds else "integer"
    return {float: "number", int: "integer"}.get(annotation)


class Section(BaseModel):
    """Base of every config section: unknown fields are rejected, and so are NaN and infinity (YAML's ``.nan``,
    ``1e999``): no setting means them, and NaN compares false with every bound a validator checks. A boolean
    where a number is meant is refused too: pydantic reads ``true`` as 1, so ``max_new_tokens: true`` (a YAML
    slip, or a ``--set`` meant for another key) would run with one token instead of failing."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # A model validator, not a field validator on "*": pydantic refuses a before-validator on the field that
    # discriminates a union (a policy rule's ``type``).
    @model_validator(mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        errors = []
        for key, value in data.items():
            if isinstance(value, bool) and key in cls.model_fields \
                    and (kind := number_kind(cls.model_fields[key].annotation)):
                problem = PydanticCustomError("number_not_bool", "Input should be a valid {kind}, not {value}",
                                              {"kind": kind, "value": str(value).lower()})
                errors.append(InitErrorDetails(type=problem, loc=(key,), input=value))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data


class ModelRef(Section):
    """A model compared against the candidate, under the name the tables and the report use."""

    name: str = Field(description="Name in the tables and the report, e.g. 'smollm2-shipped'.")
    model: str = Field(description="train:<checkpoint> of this run, an embedded name, a folder, .gguf or hub id.")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if problem := folder_name_problem(name):  # results are kept under <stage>/<name>
            raise ValueError(f"model name {name!r} {problem}")
        return name


def require_unique(names: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the repeated entries when ``names`` holds one twice (pydantic validators
    turn it into a field error)."""
    names = list(names)
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{what} must be unique; repeated: {repeated}")


# --- the pipeline YAML, shared by the composition root and the review app (which reads one section) -----------


def read_config_yaml(path: Path) -> dict[str, Any]:
    """A pipeline YAML as a mapping of sections; errors (missing, a folder, not UTF-8, not YAML, a key given
    twice) name the file and line."""
    text = read_utf8(path, "config file", ConfigError)
    try:
        raw = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(exc, path, text)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (run, data, ...)")
    return raw


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``data.cut.ratio=0.4`` -> (['data', 'cut', 'ratio'], 0.4); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. data.cut.ratio=0.4")
    key, value = text.split("=", 1)
    try:
        return key.strip().split("."), load_yaml(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML ({yaml_problem(exc)}); "
                          "put a string value in quotes") from None


# --- YAML: duplicate keys refused, errors on one line ------------------------------------------------------------


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping names the same key twice (``problem_mark`` is the second one)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping naming a key twice, where PyYAML keeps the last value silently.

    Keys merged in with ``<<:`` may be overridden by the mapping's own keys, as YAML's merge key defines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    seen = key in first_line
                except TypeError:  # an unhashable key: SafeLoader's own check reports it
                    continue
                if seen:
                    raise DuplicateKeyError(None, None, f"key {key!r} appears twice (first on line "
                                                        f"{first_line[key]})", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` for a key given twice in one mapping."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # UniqueKeyLoader is a SafeLoader


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint in one line, without the quoted source line and caret its message carries (that line
    may hold a secret, e.g. in a tokens file)."""
    if isinstance(exc, yaml.reader.ReaderError):
        if isinstance(exc.character, int):  # a control character in text, or a byte that does not decode
            return f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        return f"unacceptable character: {exc.reason}"
    if isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc.problem or exc.context or type(exc).__name__).split())
    return " ".join(str(exc).split())


def yaml_error_line(exc: yaml.YAMLError, path: str | Path, text: str | None = None, what: str = "YAML") -> str:
    """``<path>:<line>: not valid <what> (<problem>)`` (``<path>:<line>: key 'x' appears twice (first on line
    N)`` for a repeated key), one line and no quoted source. ``text`` is the parsed text: a reader error
    (e.g. a NUL byte) knows only its character offset, from which the line is counted."""
    line = None
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        line = exc.problem_mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError) and text is not None:
        line = text[:exc.position].count("\n") + 1
    where = f"{path}:{line}" if line else str(path)
    if isinstance(exc, DuplicateKeyError):
        return f"{where}: {exc.problem}"
    return f"{where}: not valid {what} ({yaml_problem(exc)})"


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
