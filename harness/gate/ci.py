"""The gate's verdict for CI: the ``--json`` document, JUnit XML and the Markdown step summary.

The verdict that holds is the decision's, unless a release manager overrode that very decision (same record
id: the same evidence decided again gives the same decision, and the override logged against it stands);
then it is that of the override the registry logged last (the log's order, never the overrides' timestamps).
The JSON document states both (``decision`` and ``verdict``), and the exit status the command ends with for it:
the exit codes are the command line's (``harness.app.cli.VerdictExit``), passed in as ``exit_codes``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harness.core.store import RECORD_FILE, RunStore, atomic_write_text
from harness.core.text import markdown_code, markdown_escape, one_line
from harness.gate.record import (
    EvidenceRef,
    GateDecisionRecord,
    OverrideRecord,
    RuleOutcome,
    Verdict,
    decision_folder,
    logged_decision,
)

#: Version of the ``--json`` document; bumped when a field changes meaning or goes away.
SCHEMA_VERSION = 1


class OverrideSummary(BaseModel):
    """An override of the decision, as the JSON document lists it."""

    record_id: str
    decision: Literal["PROMOTE", "REJECT"]
    release_manager: str
    reason: str
    created_at: str
    aliases: list[str] = Field(default_factory=list)


class CiVerdict(BaseModel):
    """What `gate --json` and `run --json` print: the decision, every rule outcome, the records behind it."""

    schema_version: int = SCHEMA_VERSION
    verdict: Verdict = Field(description="The verdict that holds: that of the override logged last, else the "
                                         "decision's.")
    exit_code: int = Field(description="The command's exit status for this verdict.")
    decision: Verdict = Field(description="The gate's own verdict.")
    reason: str = Field(description="The gate's verdict and why, in one sentence.")
    candidate: str
    run_id: str
    decision_record_id: str
    decision_file: str = Field(description="The candidate's latest decision file.")
    policy: dict = Field(description="Policy path, sha256 and description (the rules are in `rules`).")
    counts: dict[str, int] = Field(description="Rule outcomes per status (pass, fail, pending, inconclusive).")
    rules: list[RuleOutcome] = Field(description="Every rule outcome: status, value, CI, the number judged, the "
                                                 "bound, the test and the ids of the records the value came from.")
    evidence: list[EvidenceRef] = Field(description="The records the decision read, each pinned by sha256.")
    overrides: list[OverrideSummary] = Field(default_factory=list, description="Overrides of this decision, in the "
                                                                              "order the registry logged them.")


def holding_verdict(decision: GateDecisionRecord, overrides: list[OverrideRecord]) -> Verdict:
    """The verdict of the override logged last, else the decision's (``overrides``: of this decision, in the
    order the registry logged them, as :func:`harness.gate.record.logged_decision` returns them)."""
    return overrides[-1].decision if overrides else decision.decision


def ci_verdict(store: RunStore, decision: GateDecisionRecord, overrides: list[OverrideRecord],
               exit_codes: Mapping[str, int]) -> CiVerdict:
    """The JSON document of ``decision`` and the overrides logged against it (in log order); ``exit_codes``:
    verdict -> the exit status the command ends with."""
    holds = holding_verdict(decision, overrides)
    counts = {status: sum(o.status == status for o in decision.outcomes)
              for status in ("pass", "fail", "pending", "inconclusive")}
    return CiVerdict(
        verdict=holds, exit_code=exit_codes[holds], decision=decision.decision, reason=decision.reason,
        candidate=decision.candidate, run_id=decision.run_id, decision_record_id=decision.record_id,
        decision_file=str(decision_folder(store, decision.candidate) / RECORD_FILE),
        policy={k: v for k, v in decision.policy.items() if k != "rules"}, counts=counts,
        rules=decision.outcomes, evidence=decision.evidence,
        overrides=[OverrideSummary(record_id=o.record_id, decision=o.decision, release_manager=o.release_manager,
                                   reason=o.reason, created_at=o.created_at, aliases=o.aliases) for o in overrides])


def logged_verdict(store: RunStore, decision: GateDecisionRecord, registry: str | Path,
                   exit_codes: Mapping[str, int]) -> CiVerdict:
    """:func:`ci_verdict` of the decision a gate just made, with the overrides the ``registry`` logged against
    it (each file checked against its logged hash). A decision another gate wrote since is not this one: then
    no override is taken."""
    latest, overrides = logged_decision(store, decision.candidate, registry)
    return ci_verdict(store, decision, overrides if latest.record_id == decision.record_id else [], exit_codes)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x + 0.0:.4g}"


def _ci(o: RuleOutcome) -> str:
    return "" if o.ci_low is None or o.ci_high is None else f"[{_num(o.ci_low)}, {_num(o.ci_high)}]"


def _bound(o: RuleOutcome) -> str:
    """What the judged number had to be, e.g. '> -0.1' (non-inferiority: above -margin)."""
    return "" if o.threshold is None else f"{o.comparison or ''} {_num(o.threshold)}".strip()


def _case_name(o: RuleOutcome) -> str:
    return o.rule + (f" vs {o.baseline}" if o.baseline else "") + (f" [{o.attribute}]" if o.attribute else "")


def _evidence_text(o: RuleOutcome) -> str:
    """The evidence behind one outcome, one fact per line."""
    lines = [o.detail]
    facts = {"metric": o.metric, "model": o.model, "baseline": o.baseline, "attribute": o.attribute,
             "value": None if o.value is None else _num(o.value), "ci": _ci(o) or None,
             "confidence": None if o.confidence is None else _num(o.confidence), "n": o.n,
             "judged": None if o.judged is None else f"{_num(o.judged)} (required: {_bound(o)})",
             "test": o.test, "alpha": None if o.alpha is None else _num(o.alpha),
             "margin": None if o.margin is None else _num(o.margin), "needed_items": o.needed_items,
             "records": ", ".join(o.records) or None}
    lines += [f"{key}: {value}" for key, value in facts.items() if value is not None]
    return "\n".join(lines)


def junit_xml(result: CiVerdict) -> str:
    """One JUnit test case per rule outcome (a non-inferiority rule has one per baseline). A failed rule is a
    ``<failure>`` (``type`` block or warn: a warn rule fails without changing the verdict); a pending or
    inconclusive one is ``<skipped>``: not decided yet. Each carries the outcome's evidence."""
    suite = ET.Element("testsuite", name=f"nift-gate {result.candidate} ({result.run_id})",
                       tests=str(len(result.rules)), failures=str(result.counts["fail"]), errors="0",
                       skipped=str(result.counts["pending"] + result.counts["inconclusive"]))
    properties = ET.SubElement(suite, "properties")
    for name, value in (("verdict", result.verdict), ("decision", result.decision), ("reason", result.reason),
                        ("decision_record_id", result.decision_record_id), ("run_id", result.run_id),
                        ("policy_sha256", str(result.policy.get("sha256")))):
        ET.SubElement(properties, "property", name=name, value=one_line(value))
    for o in result.rules:
        case = ET.SubElement(suite, "testcase", name=one_line(_case_name(o)),
                             classname=f"nift_gate.{result.candidate}.{o.type}")
        # XML 1.0 holds no control character, even escaped: one in a record's text made the file unparseable
        evidence = "\n".join(one_line(line) for line in _evidence_text(o).split("\n"))
        if o.status == "fail":
            note = "" if o.severity == "block" else "warn rule (does not block): "
            ET.SubElement(case, "failure", message=one_line(note + o.detail), type=o.severity).text = evidence
        elif o.status in ("pending", "inconclusive"):
            ET.SubElement(case, "skipped", message=one_line(f"{o.status}: {o.detail}")).text = evidence
        else:
            ET.SubElement(case, "system-out").text = evidence
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_junit(path: str | Path, result: CiVerdict) -> Path:
    """The JUnit XML at ``path``, written atomically (a CI reader never sees half a file); a link is followed, so
    the file it points at is replaced, not the link."""
    return atomic_write_text(Path(path).resolve(), junit_xml(result))




_ICON = {"pass": "pass", "fail": "**FAIL**", "pending": "_pending_", "inconclusive": "_inconclusive_"}


def markdown_summary(result: CiVerdict) -> str:
    """The verdict and one table row per rule outcome, for a CI job summary."""
    # Names, reasons and details come from records, policies and people: made inert Markdown on one line (no link,
    # image, emphasis or HTML; GitHub renders HTML inside step summaries), as the report does
    lines = [f"## nift-gate: {result.verdict} for {markdown_code(result.candidate)} (run "
             f"{markdown_code(result.run_id)})", "", markdown_escape(result.reason), ""]
    for o in result.overrides:
        lines += [f"Override: {o.decision} by {markdown_escape(o.release_manager)}: {markdown_escape(o.reason)}", ""]
    lines += ["| status | severity | rule | value | CI | judged | required |", "|---|---|---|---|---|---|---|"]
    for o in result.rules:
        judged = "" if o.judged is None else _num(o.judged)
        value = "" if o.value is None else _num(o.value)
        lines.append(f"| {_ICON[o.status]} | {o.severity} | {markdown_escape(_case_name(o))} | {value} | {_ci(o)} | "
                     f"{judged} | {markdown_escape(_bound(o))} |")
    lines += ["", f"Decision `{result.decision_record_id}`; exit status {result.exit_code}.", ""]
    return "\n".join(lines)


def append_step_summary(path: str | Path, result: CiVerdict) -> None:
    """Append the Markdown summary to ``path`` (``$GITHUB_STEP_SUMMARY``: GitHub shows the file on the run page;
    appending keeps what earlier steps wrote)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown_summary(result) + "\n")
