"""The pipeline config file: one YAML with a section per stage.

    run: demo            # run folder name under the runs home
    data: {...}          # harness.data.config.DataConfig

Relative paths in the file are resolved against the file's folder, so a config can sit beside its data.
Precedence: CLI flags > ``--set section.field=value`` > the YAML file > defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from audits.config import AuditConfig
from harness.bench.config import BenchConfig
from harness.core.assets import EMBEDDED_PREFIX
from harness.core.config import (
    Section,
    parse_assignment,
    read_config_yaml,
    require_unique,
    set_path,
)
from harness.core.errors import ConfigError
from harness.data.config import DataConfig
from harness.gate.config import GateConfig
from harness.review.config import ReviewConfig
from harness.train.config import TrainConfig
from reports.config import ReportConfig


class PipelineConfig(Section):
    """The pipeline config file: one section per stage, each owned by that stage."""

    run: str = Field("default", description="Run folder name under the runs home.")
    data: DataConfig = Field(default_factory=DataConfig, description="NIFT pair builder.")
    train: list[TrainConfig] = Field(default_factory=list, description="Checkpoints to train, in order (a later "
                                                                       "one may start from train:<earlier>).")
    bench: BenchConfig = Field(default_factory=BenchConfig, description="Benchmarks against the baselines.")
    audit: AuditConfig = Field(default_factory=AuditConfig, description="Toxicity and hallucination audits.")
    gate: GateConfig = Field(default_factory=GateConfig, description="Release policy, registry and promotion.")
    report: ReportConfig = Field(default_factory=ReportConfig, description="The executive report.")
    review: ReviewConfig = Field(default_factory=ReviewConfig, description="Human review queue and app.")

    def audit_targets(self) -> tuple[str, list]:
        """Candidate and baselines of the audit: its own, else the bench's."""
        baselines = self.audit.baselines if self.audit.baselines is not None else self.bench.baselines
        return self.audit.candidate or self.bench.candidate, baselines

    @model_validator(mode="after")
    def _unique_checkpoints(self) -> PipelineConfig:
        require_unique((t.name for t in self.train), "train names")
        return self


#: Config fields that hold file paths, resolved against the config file's folder, whether or not the file or
#: folder exists yet (a registry is created by the first gate): files and folders, and models (_MODEL_FIELDS).
#: ``*`` is every entry of a list. A variant's ``overrides`` hold fields of data.corpus/teacher/filters.
#: tests/harness/app/test_config_paths.py checks that every field whose description names a file or folder is
#: listed here.
_DATA_PATH_FIELDS = (("corpus", "path"), ("teacher", "model"), ("filters", "contamination", "*", "path"),
                     ("filters", "judge", "teacher", "model"))
_PATH_FIELDS = (*(("data", *keys) for keys in _DATA_PATH_FIELDS),
                *(("data", "variants", "*", "overrides", *keys) for keys in _DATA_PATH_FIELDS),
                ("train", "*", "data"), ("train", "*", "base_model"),
                ("bench", "candidate"), ("bench", "baselines", "*", "model"), ("bench", "ifeval_path"),
                ("bench", "truthfulqa_path"), ("bench", "task_dirs", "*"),
                ("bench", "pairwise", "prompts"), ("bench", "pairwise", "judge", "model"),
                ("bench", "mt_bench", "prompts"), ("bench", "mt_bench", "judge_prompts"),
                ("bench", "mt_bench", "judge", "model"),
                ("bench", "alpaca_eval", "prompts"), ("bench", "alpaca_eval", "judge", "model"),
                ("audit", "candidate"), ("audit", "baselines", "*", "model"),
                ("audit", "toxicity", "prompts"), ("audit", "toxicity", "checkpoint"),
                ("audit", "toxicity", "config_dir"), ("audit", "hallucination", "closed_book", "questions"),
                ("audit", "hallucination", "halueval", "path"), ("audit", "hallucination", "truthfulqa", "path"),
                ("audit", "hallucination", "selfcheck", "nli_model"),
                ("audit", "hallucination", "grading", "judge", "model"), ("audit", "bias", "paths", "*"),
                ("gate", "policy"), ("gate", "registry"), ("review", "tokens_file"), ("review", "guidelines"))
#: The path fields that name a model: a local folder or .gguf file, or an embedded name or hub id, which reads
#: like a relative path; so these are resolved only where the file or folder exists beside the config.
_MODEL_FIELDS = {keys for keys in _PATH_FIELDS if keys[-1] in ("model", "base_model", "nli_model", "candidate")}


def _relative_to(value: Any, base: Path, must_exist: bool) -> Any:
    """A relative path becomes absolute against the config file's folder (a model's only where it exists there);
    ``data:``/``train:`` references and ``embedded:`` assets stay as written."""
    if (isinstance(value, str) and not value.startswith(EMBEDDED_PREFIX) and ":" not in value
            and not Path(value).expanduser().is_absolute() and (not must_exist or (base / value).exists())):
        return str((base / value).resolve())
    return value


def _resolve_paths(node: Any, keys: tuple[str, ...], base: Path, must_exist: bool) -> None:
    if not keys or node is None:
        return
    head, rest = keys[0], keys[1:]
    if head == "*":
        if isinstance(node, list) and not rest:
            node[:] = [_relative_to(item, base, must_exist) for item in node]
        for item in node if isinstance(node, list) and rest else []:
            _resolve_paths(item, rest, base, must_exist)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if not rest:
        node[head] = _relative_to(node[head], base, must_exist)
        return
    _resolve_paths(node[head], rest, base, must_exist)


def load_pipeline_config(path: str | Path | None = None, assignments: list[str] = (),
                         overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read, merge and validate. Errors name the file and the field."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        raw = read_config_yaml(path)
        for keys in _PATH_FIELDS:
            _resolve_paths(raw, keys, path.parent.resolve(), must_exist=keys in _MODEL_FIELDS)
    for assignment in assignments:
        keys, value = parse_assignment(assignment)
        set_path(raw, keys, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_path(raw, dotted.split("."), value)
    if path is None and (assignments or any(v is not None for v in (overrides or {}).values())):
        source = "--set and flags over the defaults"  # no file to blame for a bad value
    _refuse_nul(raw, source)
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{source}: invalid config: {problems}") from None
    _check_database_url(config.review.database, source)
    return config


def _refuse_nul(node: Any, source: str, where: str = "") -> None:
    """A NUL character in any string of the config is refused naming its field: no path, URL or name holds one,
    and the OS refuses it only later, as a ValueError traceback where the value is first used."""
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_nul(value, source, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_nul(value, source, f"{where}[{i}]")
    elif isinstance(node, str) and "\x00" in node:
        raise ConfigError(f"{source}: invalid config: {where}: holds a NUL character")


def _check_database_url(database: str | None, source: str) -> None:
    """``review.database`` is an SQLAlchemy URL; a plain path is refused here, not as a traceback when the label
    store is first opened."""
    if database is None:
        return
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(database)
    except ArgumentError:
        raise ConfigError(f"{source}: review.database: not a database URL: give an SQLAlchemy URL, e.g. "
                          f"sqlite:////abs/path/review.db or postgresql://user@host/labels") from None


def reference_markdown(model: type[BaseModel] = PipelineConfig, prefix: str = "",
                       seen: dict[type, str] | None = None) -> str:
    """Markdown tables of every config field with its default and description (the README's reference)."""
    seen = {} if seen is None else seen
    rows, sections = [], []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [a for a in (getattr(annotation, "__args__", None) or (annotation,))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        is_list = getattr(annotation, "__origin__", None) is list
        dotted = f"{prefix}{name}" + ("[]" if is_list else "")
        if nested and field.default_factory is not None:
            if nested[0] in seen:  # e.g. the judge's model settings: same fields as the teacher's
                default = field.default_factory().model_dump(exclude_defaults=True)
                rows.append(f"| `{dotted}` | `{default}` | {field.description or ''} Same fields as "
                            f"`{seen[nested[0]]}.*`. |")
                continue
            seen[nested[0]] = dotted
            sections.append(reference_markdown(nested[0], dotted + ".", seen))
            if is_list:
                rows.append(f"| `{dotted}` | see below | {field.description or ''} |")
            continue
        if field.default_factory is not None:
            default = repr(field.default_factory())
        elif field.is_required():
            default = "required"
        else:
            default = repr(field.default)
        rows.append(f"| `{dotted}` | `{default}` | {field.description or ''} |")
    table = "| field | default | meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n" if rows else ""
    return "\n".join(part for part in [table, *sections] if part)
