"""History across candidates: every decision and override in the registry, with the gated metrics and aliases.

Entry points (published: the report and the CLI read them)::

    decision_history(registry, home=None) -> list[HistoryEntry]   # oldest first, one per registry entry
    alias_holders(registry) -> dict[str, AliasHolder]             # alias -> the model it points at now
    read_history(registry, home=None) -> RegistryHistory          # both, read under one lock
    check_registry_folder(folder, home, configured)              # refuse a registry folder that is not there
    history_table(entries, holders) -> str                        # the table `nift-gate history` prints

``registry`` is an opened :class:`harness.gate.registry.Registry` or its folder (``gate.registry``, else
``<home>/registry``). ``home`` is the runs home whose run folders hold the decision files (default: the
registry folder's parent, which is the runs home of the default registry); a run that is not under it keeps
its registry facts (verdict, candidate, aliases, when, by whom) and shows no metrics, with ``metrics_note``
saying why.

Everything comes from what was logged: the verified log (read under its shared lock, so no append is half
seen), each decision's archived file (``<run>/gate/<candidate>/decisions/<record_id>.json``), used only when
its bytes still hash to the sha256 the log holds, and, for the candidate's own value of a metric judged only
against baselines (non-inferiority), the evidence records the decision pins, each again only when its bytes
still hash to the pinned sha256. An override shows the metrics of the decision it overrides. Nothing is
recomputed and nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.core.errors import InputError
from harness.core.records import StoredRecord, sha256_bytes
from harness.core.store import RunStore
from harness.core.text import one_line
from harness.gate.record import (
    DECISIONS_DIR,
    STAGE,
    GateDecisionRecord,
    RuleOutcome,
    Verdict,
    decision_folder,
)
from harness.gate.registry import Registry, aliases_of

#: ``HistoryEntry.by`` of a decision: the gate made it, not a person.
GATE = "gate"


class HeadlineMetric(BaseModel):
    """The candidate's value of one metric a decision's policy gated on."""

    metric: str = Field(description="Registry name of the metric, e.g. bench.nift_if.prompt_level_strict_acc.")
    attribute: str | None = Field(None, description="Scorer attribute (toxicity), where the metric has one.")
    value: float = Field(description="The candidate's value, as the record that reported it holds it.")
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = Field(None, description="Items behind the value.")
    higher_is_better: bool | None = Field(None, description="The metric's direction, as its record declares it.")
    rule: str = Field(description="The policy rule that gated this metric.")
    status: str | None = Field(None, description="That rule's outcome (pass, fail, pending, inconclusive) where the "
                                                 "rule judged this value itself; None where it judged only the "
                                                 "differences against baselines (see comparisons).")
    threshold: float | None = Field(None, description="The bound the value was judged against, where it was.")
    comparison: str | None = Field(None, description="How it was judged against the bound ('>=', '<=').")
    record_id: str | None = Field(None, description="Id of the record the value came from.")


class BaselineComparison(BaseModel):
    """A non-inferiority outcome of a decision: candidate - baseline on one metric, with its paired CI."""

    metric: str
    attribute: str | None = None
    baseline: str
    difference: float | None = Field(None, description="Candidate - baseline.")
    ci_low: float | None = None
    ci_high: float | None = None
    margin: float | None = Field(None, description="The non-inferiority margin, in the metric's units.")
    higher_is_better: bool | None = None
    rule: str
    status: str = Field(description="pass, fail, pending or inconclusive.")


class HistoryEntry(BaseModel):
    """One registry entry (a gate decision, the same decision reached again, or a release manager's override) as
    the history shows it."""

    seq: int = Field(description="Position in the registry log (1-based).")
    kind: Literal["decision", "redecision", "override"] = Field(
        description="decision; redecision: a decision logged before, reached again after another decision of the "
                    "candidate (its aliases moved again); override.")
    verdict: Verdict = Field(description="The verdict this entry records (an override's is the one that holds).")
    original_verdict: Verdict | None = Field(None, description="For an override: the gate's verdict it replaced.")
    candidate: str
    run_id: str
    record_id: str = Field(description="Id of the decision or override record.")
    decision_record_id: str = Field(description="The decision: this entry's own id (a decision's, or the one a "
                                                "redecision reached again), or the one an override overrides.")
    model_sha256: str | None = Field(None, description="The candidate's weights hash.")
    policy_sha256: str | None = Field(None, description="sha256 of the policy a decision was made under.")
    reason: str = Field("", description="The gate's reason, or the release manager's.")
    when: str = Field(description="When the registry logged the entry (ISO 8601, UTC).")
    by: str = Field(description="'gate' for a decision, the release manager's name for an override.")
    aliases_moved: list[str] = Field(default_factory=list, description="Aliases this entry pointed at the candidate.")
    aliases_removed: list[str] = Field(default_factory=list, description="Aliases this entry took from the candidate.")
    aliases_held: list[str] = Field(default_factory=list, description="Aliases the candidate's model held right "
                                                                      "after this entry.")
    metrics: list[HeadlineMetric] = Field(default_factory=list, description="The candidate's value of each gated "
                                                                            "metric, in policy order.")
    comparisons: list[BaselineComparison] = Field(default_factory=list, description="The non-inferiority outcomes.")
    metrics_note: str | None = Field(None, description="Why metrics are missing, where they are.")

    def metric(self, name: str, attribute: str | None = None) -> HeadlineMetric | None:
        """The headline value of ``name`` (and ``attribute``, when given), or None."""
        return next((m for m in self.metrics if m.metric == name and (attribute is None or m.attribute == attribute)),
                    None)


class AliasHolder(BaseModel):
    """The model an alias points at now, and the registry entry that moved it there."""

    alias: str
    candidate: str
    run_id: str
    model_sha256: str | None = None
    seq: int = Field(description="The registry entry that moved the alias.")
    record_id: str = Field(description="The decision or override record of that entry.")


def _opened(registry: Registry | str | os.PathLike) -> Registry:
    return registry if isinstance(registry, Registry) else Registry(registry)


def alias_holders(registry: Registry | str | os.PathLike) -> dict[str, AliasHolder]:
    """Alias (``staging``, ``production``, ...) -> who holds it now, replayed from the verified log."""
    return _holders(_opened(registry).verify())


def _holders(entries: list[dict[str, Any]]) -> dict[str, AliasHolder]:
    return {alias: AliasHolder(alias=alias, candidate=t["candidate"], run_id=t["run_id"],
                               model_sha256=t.get("model_sha256"), seq=t["seq"], record_id=t["record_id"])
            for alias, t in sorted(aliases_of(entries).items())}


def _same_model(target: dict[str, Any], entry: dict[str, Any]) -> bool:
    return all(target.get(k) == entry.get(k) for k in ("run_id", "candidate", "model_sha256"))


class RegistryHistory(BaseModel):
    """What `nift-gate history --json` prints: every entry, and who holds each alias now."""

    registry: str = Field(description="The registry folder read.")
    entries: list[HistoryEntry] = Field(description="Every decision and override, oldest first.")
    aliases: dict[str, AliasHolder] = Field(description="Alias -> the model it points at now.")


def read_history(registry: Registry | str | os.PathLike, home: str | os.PathLike | None = None) -> RegistryHistory:
    """:func:`decision_history` and :func:`alias_holders` from one read of the log, under its shared lock."""
    registry = _opened(registry)
    with registry.reading() as entries:
        return RegistryHistory(registry=str(registry.folder), entries=_history(entries, _home(registry, home), registry),
                               aliases=_holders(entries))


def check_registry_folder(folder: Path, home: Path, configured: bool) -> None:
    """Refuse to read a registry folder that is not there as an empty log, which would say that no alias is
    held: a ``configured`` one (``gate.registry``, ``--registry``: mistyped?), or the default one of a runs
    ``home`` that holds decision files (the registry was deleted or moved). Only the default registry of a
    runs home where no decision was ever made may be missing: nothing was logged yet."""
    if folder.is_dir():
        return
    if configured:
        raise InputError(f"{folder}: no such registry folder (gate.registry or --registry): mistyped? No decision "
                         f"was ever logged there")
    made = next(home.glob(f"*/{STAGE}/*/{DECISIONS_DIR}/*.json"), None)
    if made is not None:
        raise InputError(f"{folder}: the runs home's registry is missing, yet {made} is a logged decision: the "
                         f"registry was deleted or moved; restore it, or name it with --registry")


def decision_history(registry: Registry | str | os.PathLike, home: str | os.PathLike | None = None
                     ) -> list[HistoryEntry]:
    """Every decision (and decision reached again) and override in the registry, oldest first, with each
    decision's gated metrics.

    Raises :class:`harness.gate.registry.RegistryTamperedError` (an ``InputError``) when the log does not verify;
    a decision file that is missing or no longer the logged bytes costs only that entry's metrics."""
    registry = _opened(registry)
    with registry.reading() as entries:  # held while the decision files are read: no append is half seen
        return _history(entries, _home(registry, home), registry)


def _home(registry: Registry, home: str | os.PathLike | None) -> Path:
    return Path(home) if home is not None else registry.folder.parent


def _history(entries: list[dict[str, Any]], home: Path, registry: Registry) -> list[HistoryEntry]:
    decisions: dict[str, tuple[list[HeadlineMetric], list[BaselineComparison], str | None]] = {}
    history = []
    for position, entry in enumerate(entries):
        event = entry.get("event")
        if event not in ("decision", "redecision", "override"):
            continue
        decision_id = entry.get("decision_record_id", "") if event == "override" else entry["record_id"]
        if decision_id not in decisions:
            logged = entry if event == "decision" else next(  # a redecision's file is its first entry's
                (e for e in entries[:position] if e.get("event") == "decision"
                 and e.get("record_id") == decision_id), None)
            decisions[decision_id] = _decision_metrics(home, logged, registry)
        metrics, comparisons, note = decisions[decision_id]
        moves = entry.get("alias_moves") or {}
        held = aliases_of(entries[:position + 1])
        history.append(HistoryEntry(
            seq=entry["seq"], kind=event, verdict=entry["decision"],
            original_verdict=entry.get("original_decision") if event == "override" else None,
            candidate=entry["candidate"], run_id=entry["run_id"], record_id=entry["record_id"],
            decision_record_id=decision_id, model_sha256=entry.get("model_sha256"),
            policy_sha256=entry.get("policy_sha256"), reason=entry.get("reason", ""), when=entry["logged_at"],
            by=(entry.get("release_manager") or GATE) if event == "override" else GATE,
            aliases_moved=sorted(a for a, t in moves.items() if t is not None),
            aliases_removed=sorted(a for a, t in moves.items() if t is None),
            aliases_held=sorted(a for a, t in held.items() if _same_model(t, entry)),
            metrics=metrics, comparisons=comparisons, metrics_note=note))
    return history


def _decision_metrics(home: Path, entry: dict[str, Any] | None, registry: Registry
                      ) -> tuple[list[HeadlineMetric], list[BaselineComparison], str | None]:
    """The gated metrics of the decision ``entry`` logged, read from its archived file when that still holds
    the logged bytes; else none, and why."""
    if entry is None:
        return [], [], "the overridden decision is not in the registry log"
    run, candidate = entry.get("run_id"), entry.get("candidate")
    if not isinstance(run, str) or not isinstance(candidate, str) or not (home / run).is_dir():
        return [], [], f"run {run!r} is not under {home}: its decision file was not read"
    store = RunStore(run, home)
    path = decision_folder(store, candidate) / DECISIONS_DIR / f"{entry['record_id']}.json"
    if not path.exists():
        return [], [], f"{path}: missing"
    data = path.read_bytes()
    if sha256_bytes(data) != entry.get("record_sha256"):
        return [], [], (f"{path}: edited after {registry.log} entry seq {entry['seq']} logged it: its metrics are "
                        f"not shown")
    try:
        decision = GateDecisionRecord.model_validate_json(data)
    except ValueError as exc:  # the logged bytes of a decision older code wrote in another shape
        return [], [], f"{path}: not readable as a decision by this version ({type(exc).__name__})"
    metrics, comparisons = _gated(decision, store)
    return metrics, comparisons, None


def _gated(decision: GateDecisionRecord, store: RunStore) -> tuple[list[HeadlineMetric], list[BaselineComparison]]:
    """Candidate values (one per metric and attribute, in policy order) and baseline comparisons of ``decision``."""
    metrics: dict[tuple[str, str | None], HeadlineMetric] = {}
    comparisons = []
    pinned: dict[str, list] | None = None
    for outcome in decision.outcomes:
        if outcome.metric is None:
            continue
        key = (outcome.metric, outcome.attribute)
        if outcome.baseline is not None:
            comparisons.append(BaselineComparison(
                metric=outcome.metric, attribute=outcome.attribute, baseline=outcome.baseline,
                difference=outcome.value, ci_low=outcome.ci_low, ci_high=outcome.ci_high, margin=outcome.margin,
                higher_is_better=outcome.higher_is_better, rule=outcome.rule, status=outcome.status))
            if key not in metrics:
                pinned = _pinned_values(decision, store) if pinned is None else pinned
                found = _candidate_value(pinned, decision.candidate, outcome)
                if found is not None:
                    metrics[key] = found
        elif outcome.value is not None and outcome.model in (decision.candidate, None):
            metrics[key] = HeadlineMetric(
                metric=outcome.metric, attribute=outcome.attribute, value=outcome.value, ci_low=outcome.ci_low,
                ci_high=outcome.ci_high, n=outcome.n, higher_is_better=outcome.higher_is_better, rule=outcome.rule,
                status=outcome.status, threshold=outcome.threshold, comparison=outcome.comparison,
                record_id=outcome.records[0] if outcome.records else None)
    return list(metrics.values()), comparisons


def _pinned_values(decision: GateDecisionRecord, store: RunStore) -> dict[str, list]:
    """Record id -> its metric values, for each evidence record the decision pins whose file still holds the
    pinned bytes (a changed record is no longer what was decided on, and is skipped)."""
    values = {}
    for ref in decision.evidence:
        path = store.root / ref.path
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if sha256_bytes(data) != ref.sha256:
            continue
        try:
            values[ref.record_id] = StoredRecord.model_validate_json(data).metric_values()
        except (ValueError, InputError):
            continue
    return values


def _candidate_value(pinned: dict[str, list], candidate: str, outcome: RuleOutcome) -> HeadlineMetric | None:
    for record_id in outcome.records:
        for value in pinned.get(record_id, []):
            if value.metric == outcome.metric and value.model == candidate and value.attribute == outcome.attribute:
                return HeadlineMetric(metric=value.metric, attribute=value.attribute, value=value.value,
                                      ci_low=value.ci_low, ci_high=value.ci_high, n=value.n,
                                      higher_is_better=outcome.higher_is_better, rule=outcome.rule,
                                      record_id=record_id)
    return None


def _short(metric: str) -> str:
    """A column heading: the metric's last two name parts (bench.nift_if.prompt_level_strict_acc ->
    nift_if.prompt_level_strict_acc)."""
    return ".".join(metric.split(".")[-2:])


def history_table(entries: list[HistoryEntry], holders: dict[str, AliasHolder]) -> str:
    """The history as a plain-text table (one row per entry, one column per gated metric), then the aliases. Its
    ``decision`` column is the id an override names (``nift-gate override --decision-id``)."""
    columns: list[tuple[str, str | None]] = []
    for entry in entries:
        for m in entry.metrics:
            if (m.metric, m.attribute) not in columns:
                columns.append((m.metric, m.attribute))
    head = ["seq", "when", "event", "verdict", "run/candidate", "by", "aliases", "decision"] + [
        _short(metric) + (f"[{attribute}]" if attribute else "") for metric, attribute in columns]
    rows = []
    for e in entries:
        verdict = e.verdict if e.original_verdict is None else f"{e.original_verdict}->{e.verdict}"
        aliases = ",".join([*(f"+{a}" for a in e.aliases_moved), *(f"-{a}" for a in e.aliases_removed)]) or "-"
        cells = [str(e.seq), e.when.replace("+00:00", "Z"), e.kind, verdict, f"{e.run_id}/{e.candidate}", e.by,
                 aliases, e.decision_record_id]
        for metric, attribute in columns:
            found = next((m for m in e.metrics if m.metric == metric and m.attribute == attribute), None)
            cells.append("-" if found is None else f"{found.value:.3f}")
        rows.append(cells)
    # one_line: a metric's attribute and a run's names come from records whoever wrote them chose
    head, rows = [one_line(cell) for cell in head], [[one_line(cell) for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [head, *rows]]
    if not entries:
        lines = ["no decisions logged yet"]
    for alias, holder in holders.items():
        lines.append(one_line(f"{alias}: {holder.run_id}/{holder.candidate} (entry {holder.seq}, {holder.record_id})"))
    if not holders:
        lines.append("no alias is held")
    return "\n".join(lines)
