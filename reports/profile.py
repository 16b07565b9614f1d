"""The error profile: what kinds of mistake the candidate makes more or less often than each baseline.

Computed from the published per-item rows only, never from aggregates, so every comparison is paired:

- instruction following: each IFEval instruction of each item is one unit, named by its instruction id
  (``length_constraints:number_words``) and grouped by type and by family (the id's prefix, ``length_constraints``).
  A model's pass rate per type has a Wilson interval; the candidate against a baseline is paired on the same
  units (task, item, position), with Newcombe's paired interval and the exact McNemar test
  (:func:`harness.core.stats.paired_comparison`);
- hallucination outcomes: each answer of the hallucination audit (closed book, HaluEval QA) is one kind of
  outcome: correct, a wrong claim, a false premise accepted (an unanswerable question answered), declined, empty,
  or other (neither the right nor the hallucinated answer). Each kind's rate is over the questions it can happen on
  (a wrong claim over the answerable ones, a false premise over the unanswerable ones, declined and empty over all);
- review flags: the share of reviewer labels setting each flag, from the review record, with a Wilson interval;
- examples: for the largest regressions, items the candidate got wrong that the baseline got right, both outputs;
- one plain sentence for each of the three largest changes, for readers who know none of the metric names.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.core.samples import AuditSample
from harness.core.stats import paired_comparison, proportion_interval
from reports.summary import amount, difference

CONFIDENCE = 0.95
#: The comparison areas; the sentences draw on families and hallucination kinds (types are the detail).
TYPE, FAMILY, HALLUCINATION = "instruction type", "instruction family", "hallucination"
#: How much of a model output or prompt an example shows.
EXAMPLE_CHARS = 400

#: IFEval instruction families (the id's prefix) -> what they ask, as a noun phrase ("Follows <phrase>").
FAMILY_LABELS = {
    "change_case": "letter-case instructions",
    "combination": "combined instructions (repeat the prompt, give two answers)",
    "detectable_content": "content instructions (placeholders, a postscript)",
    "detectable_format": "format instructions (bullets, sections, JSON, a title)",
    "keywords": "keyword instructions (use, repeat or avoid words)",
    "language": "response-language instructions",
    "length_constraints": "length limits",
    "punctuation": "punctuation instructions (no commas)",
    "startend": "start and end instructions (quotes, a closing phrase)",
}
#: IFEval instruction ids (lm-eval's instructions_registry) -> what they ask, as a noun phrase.
TYPE_LABELS = {
    "change_case:capital_word_frequency": "limits on words in capitals",
    "change_case:english_capital": "all-capitals instructions",
    "change_case:english_lowercase": "all-lowercase instructions",
    "combination:repeat_prompt": "repeat-the-request instructions",
    "combination:two_responses": "give-two-answers instructions",
    "detectable_content:number_placeholders": "placeholder instructions",
    "detectable_content:postscript": "postscript instructions",
    "detectable_format:constrained_response": "fixed-answer instructions",
    "detectable_format:json_format": "JSON-format instructions",
    "detectable_format:multiple_sections": "section instructions",
    "detectable_format:number_bullet_lists": "bullet-count instructions",
    "detectable_format:number_highlighted_sections": "highlighting instructions",
    "detectable_format:title": "title instructions",
    "keywords:existence": "include-these-words instructions",
    "keywords:forbidden_words": "forbidden-word instructions",
    "keywords:frequency": "word-repetition instructions",
    "keywords:letter_frequency": "letter-count instructions",
    "language:response_language": "response-language instructions",
    "length_constraints:nth_paragraph_first_word": "first-word-of-paragraph instructions",
    "length_constraints:number_paragraphs": "paragraph-count limits",
    "length_constraints:number_sentences": "sentence-count limits",
    "length_constraints:number_words": "word-count limits",
    "punctuation:no_comma": "no-comma instructions",
    "startend:end_checker": "end-with-this-phrase instructions",
    "startend:quotation": "wrap-in-quotes instructions",
}


@dataclass(frozen=True)
class OutcomeKind:
    """One kind of hallucination-audit outcome: its names and the questions its rate is over."""

    label: str  # in a table
    phrase: str  # a sentence's subject and verb: "<phrase> more often"
    unit: str  # what the rate is a share of
    over: str  # "answerable", "unanswerable" or "all": which questions can have this outcome
    higher_is_better: bool | None  # None: neither (declining is right on an unanswerable question, a miss otherwise)


OUTCOME_KINDS = {
    "correct": OutcomeKind("correct", "Answers correctly", "answerable questions", "answerable", True),
    "wrong_claim": OutcomeKind("wrong claim", "Makes wrong claims", "answerable questions", "answerable", False),
    "false_premise": OutcomeKind("false premise accepted", "Accepts false premises", "unanswerable questions",
                                 "unanswerable", False),
    "declined": OutcomeKind("declined", "Declines to answer", "questions", "all", None),
    "empty": OutcomeKind("empty answer", "Gives empty answers", "questions", "all", False),
    "other": OutcomeKind("other (neither answer)", "Gives an answer matching neither the right nor the wrong one",
                         "questions", "all", None),
}
#: The kinds that are mistakes: the regressions a reader is shown examples of (a loss of correct answers shows
#: as a rise of one of these, on the same questions).
MISTAKE_KINDS = ("wrong_claim", "false_premise", "empty")
#: The hallucination audit's suites whose rows are a model's own answer to a question.
ANSWER_SUITES = ("closed_book", "halueval_qa")


class CheckedInstruction(Protocol):
    """What the profile reads of one checked instruction (``harness.bench.record.InstructionResult``)."""

    task: str
    model: str
    item: str
    index: int
    instruction: str
    strict: bool
    loose: bool | None
    prompt: str
    response: str


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``n`` with its Wilson interval."""

    hits: int
    n: int
    low: float | None
    high: float | None

    @property
    def value(self) -> float | None:
        return self.hits / self.n if self.n else None

    def text(self) -> str:
        """``42% [31%, 54%] (21 of 50)``."""
        if not self.n:
            return "n/a"
        ci = "" if self.low is None else f" [{amount(self.low, 'rate')}, {amount(self.high, 'rate')}]"
        return f"{amount(self.value, 'rate')}{ci} ({self.hits} of {self.n})"


@functools.lru_cache(maxsize=4096)
def wilson(hits: int, n: int, confidence: float = CONFIDENCE) -> Rate:
    """``hits`` of ``n`` with its Wilson interval (cached: a profile asks for the same small counts many times)."""
    low, high = proportion_interval(hits, n, confidence, "wilson")
    return Rate(hits, n, low, high)


@dataclass(frozen=True)
class Change:
    """The candidate against one baseline on one kind of unit, paired on the units both were scored on."""

    area: str  # TYPE, FAMILY or HALLUCINATION
    key: str  # the instruction id or family, or the outcome kind
    label: str
    phrase: str
    unit: str
    baseline: str
    candidate: Rate
    reference: Rate  # the baseline's rate on the same units
    difference: float  # candidate - baseline, a share
    ci_low: float | None
    ci_high: float | None
    p_value: float
    interval: str | None
    higher_is_better: bool | None

    @property
    def n(self) -> int:
        return self.candidate.n

    @property
    def within_noise(self) -> bool:
        """The paired CI contains 0 (or there is none): the data cannot tell the two models apart."""
        return self.ci_low is None or self.ci_high is None or self.ci_low <= 0 <= self.ci_high

    @property
    def verdict(self) -> str:
        """same, noise, better, worse, or changed (beyond noise, in a direction that is neither)."""
        if self.difference == 0:
            return "same"
        if self.within_noise:
            return "noise"
        if self.higher_is_better is None:
            return "changed"
        return "better" if (self.difference > 0) == self.higher_is_better else "worse"

    @property
    def loss(self) -> float | None:
        """How much worse the candidate is, in the kind's direction (negative: better); None without one."""
        if self.higher_is_better is None:
            return None
        return -self.difference if self.higher_is_better else self.difference

    def row(self) -> dict[str, Any]:
        """The change as the templates show it: plain text, already formatted."""
        points = "n/a" if self.ci_low is None else (f"[{self.ci_low * 100:+.1f}, {self.ci_high * 100:+.1f}]")
        return {"area": self.area, "key": self.key, "label": self.label, "baseline": self.baseline, "n": self.n,
                "code": None if self.area == HALLUCINATION else self.key,
                "candidate": self.candidate.text(), "reference": self.reference.text(),
                "difference": f"{self.difference * 100 + 0.0:+.1f}", "ci": points, "p_value": self.p_value,
                "interval": self.interval or "none", "verdict": self.verdict,
                "direction": {True: "higher is better", False: "lower is better", None: "no direction"}[
                    self.higher_is_better]}


def _paired(area: str, key: str, label: str, phrase: str, unit: str, baseline: str, cand: dict[str, float],
            base: dict[str, float], higher_is_better: bool | None, confidence: float) -> Change | None:
    """``cand`` and ``base``: unit -> 0/1 for one kind; None when no unit is shared."""
    comparison = paired_comparison(cand, base, task=area, metric=key, baseline_name=baseline,
                                   higher_is_better=True if higher_is_better is None else higher_is_better,
                                   confidence=confidence)
    if comparison is None:
        return None
    shared = sorted(set(cand) & set(base))
    return Change(area=area, key=key, label=label, phrase=phrase, unit=unit, baseline=baseline,
                  candidate=wilson(int(sum(cand[k] for k in shared)), len(shared), confidence),
                  reference=wilson(int(sum(base[k] for k in shared)), len(shared), confidence),
                  difference=comparison.mean_difference, ci_low=comparison.ci_low, ci_high=comparison.ci_high,
                  p_value=comparison.p_value, interval=comparison.interval, higher_is_better=higher_is_better)


# --- instruction following ------------------------------------------------------------------------------------


def family(instruction: str) -> str:
    """An IFEval instruction id's family: ``length_constraints:number_words`` -> ``length_constraints``."""
    return instruction.split(":", 1)[0]


def instruction_label(key: str, level: str) -> str:
    labels = TYPE_LABELS if level == TYPE else FAMILY_LABELS
    return labels.get(key, f"{key.replace('_', ' ')} instructions")


def _unit(result: CheckedInstruction) -> str:
    return f"{result.task}\x1f{result.item}\x1f{result.index}"


def instruction_units(results: Iterable[CheckedInstruction], level: str = TYPE,
                      check: str = "strict") -> dict[str, dict[str, float]]:
    """Type (or family) -> unit -> 1.0 followed / 0.0 not, by IFEval's strict or lenient check (a unit without a
    lenient result is left out of the lenient profile)."""
    out: dict[str, dict[str, float]] = {}
    for result in results:
        followed = result.strict if check == "strict" else result.loose
        if followed is None:
            continue
        key = result.instruction if level == TYPE else family(result.instruction)
        out.setdefault(key, {})[_unit(result)] = float(followed)
    return out


def instruction_rates(per_model: dict[str, list[CheckedInstruction]], level: str = TYPE, check: str = "strict",
                      confidence: float = CONFIDENCE) -> dict[str, dict[str, Rate]]:
    """Model -> type (or family) -> its pass rate over all its own units, with a Wilson interval."""
    return {model: {key: wilson(int(sum(units.values())), len(units), confidence)
                    for key, units in sorted(instruction_units(results, level, check).items())}
            for model, results in per_model.items()}


def instruction_changes(per_model: dict[str, list[CheckedInstruction]], candidate: str, baselines: Sequence[str],
                        level: str = TYPE, check: str = "strict", confidence: float = CONFIDENCE) -> list[Change]:
    """The candidate against each baseline per instruction type (or family), paired on shared units; per baseline
    (in the order given), sorted by change: the largest loss first, the largest gain last."""
    cand = instruction_units(per_model.get(candidate, []), level, check)
    changes = []
    for baseline in baselines:
        base = instruction_units(per_model.get(baseline, []), level, check)
        found = [_paired(level, key, instruction_label(key, level), f"Follows {instruction_label(key, level)}",
                         "instructions", baseline, cand[key], base.get(key, {}), True, confidence)
                 for key in sorted(cand)]
        changes += sorted((c for c in found if c is not None), key=lambda c: (c.difference, c.key))
    return changes


# --- hallucination outcomes -----------------------------------------------------------------------------------


def answerable(sample: AuditSample) -> bool:
    """An unanswerable closed-book question has no true answer (a false premise); every other has one."""
    return not (sample.suite == "closed_book" and sample.group == "unanswerable")


def outcome_kind(sample: AuditSample) -> str:
    """A key of :data:`OUTCOME_KINDS`, from the flags and scores the hallucination audit wrote on the row
    (lexical matching): empty, else correct, else hallucinated (a wrong claim, or a false premise accepted on an
    unanswerable question), else declined, else other."""
    flags = sample.flags
    if flags.get("empty") or not sample.output.strip():
        return "empty"
    if sample.scores.get("correct") == 1.0:
        return "correct"
    if flags.get("hallucination"):
        return "wrong_claim" if answerable(sample) else "false_premise"
    if flags.get("refusal"):
        return "declined"
    return "other"


def _applies(kind: OutcomeKind, sample: AuditSample) -> bool:
    return kind.over == "all" or (kind.over == "answerable") == answerable(sample)


def answers(samples: Iterable[AuditSample]) -> list[AuditSample]:
    """The rows that are a model's own answer to a question (closed book, HaluEval QA)."""
    return [s for s in samples if s.audit == "hallucination" and s.suite in ANSWER_SUITES]


def _answer_key(sample: AuditSample) -> str:
    return f"{sample.suite}\x1f{sample.item_id}\x1f{sample.sample}"


def outcome_indicators(samples: Iterable[AuditSample], model: str) -> dict[str, dict[str, float]]:
    """Outcome kind -> question -> 1.0 when ``model``'s answer had that outcome, over the questions the kind
    applies to."""
    out: dict[str, dict[str, float]] = {kind: {} for kind in OUTCOME_KINDS}
    for sample in answers(samples):
        if sample.model != model:
            continue
        found = outcome_kind(sample)
        for key, kind in OUTCOME_KINDS.items():
            if _applies(kind, sample):
                out[key][_answer_key(sample)] = float(found == key)
    return out


def outcome_rates(samples: Sequence[AuditSample], models: Sequence[str],
                  confidence: float = CONFIDENCE) -> dict[str, dict[str, Rate]]:
    """Model -> outcome kind -> its rate over the questions the kind applies to, with a Wilson interval."""
    out = {}
    for model in models:
        indicators = outcome_indicators(samples, model)
        out[model] = {kind: wilson(int(sum(v.values())), len(v), confidence) for kind, v in indicators.items()}
    return out


def hallucination_changes(samples: Sequence[AuditSample], candidate: str, baselines: Sequence[str],
                          confidence: float = CONFIDENCE) -> list[Change]:
    """The candidate against each baseline per outcome kind, paired by question, in :data:`OUTCOME_KINDS` order."""
    cand = outcome_indicators(samples, candidate)
    changes = []
    for baseline in baselines:
        base = outcome_indicators(samples, baseline)
        for key, kind in OUTCOME_KINDS.items():
            change = _paired(HALLUCINATION, key, kind.label, kind.phrase, kind.unit, baseline, cand[key], base[key],
                             kind.higher_is_better, confidence)
            if change is not None:
                changes.append(change)
    return changes


# --- review flags ---------------------------------------------------------------------------------------------


def review_flags(flag_rates: dict[str, float], labels: int, confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """Each reviewer flag (the review record's ``flag_rates``: shares of its ``labels`` current labels) as a count
    with a Wilson interval, the most frequent first."""
    rows = []
    for flag, share in flag_rates.items():
        rate = wilson(round(share * labels), labels, confidence)
        rows.append({"flag": flag, "label": flag.replace("_", " "), "rate": rate.text(), "value": share})
    return sorted(rows, key=lambda r: (-r["value"], r["flag"]))


# --- examples and sentences -----------------------------------------------------------------------------------


def cut(text: Any, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` as a string of at most ``limit`` characters, an ellipsis marking a cut."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def largest_regressions(changes: Iterable[Change], area: str, k: int) -> list[Change]:
    """The ``k`` changes of ``area`` in which the candidate lost most (beyond noise or not), one per kind (its
    worst baseline); a change with no direction or no loss is none."""
    worst: dict[str, Change] = {}
    for change in changes:
        if change.area != area or change.loss is None or change.loss <= 0:
            continue
        if change.key not in worst or change.loss > worst[change.key].loss:
            worst[change.key] = change
    return sorted(worst.values(), key=lambda c: (-c.loss, c.within_noise, c.key))[:k]


def instruction_examples(per_model: dict[str, list[CheckedInstruction]], change: Change, candidate: str,
                         per_change: int = 2, check: str = "strict", limit: int = EXAMPLE_CHARS) -> list[dict[str, Any]]:
    """Instructions of ``change``'s kind the candidate failed and its baseline followed, in item order."""
    def keyed(model: str) -> dict[str, CheckedInstruction]:
        return {_unit(r): r for r in per_model.get(model, [])
                if (r.instruction if change.area == TYPE else family(r.instruction)) == change.key}

    def followed(r: CheckedInstruction) -> bool | None:
        return r.strict if check == "strict" else r.loose

    mine, theirs = keyed(candidate), keyed(change.baseline)
    lost = [unit for unit in sorted(mine) if unit in theirs and followed(mine[unit]) is False
            and followed(theirs[unit]) is True]
    return [{"area": change.area, "label": change.label, "baseline": change.baseline,
             "detail": mine[unit].instruction, "item": mine[unit].item, "prompt": cut(mine[unit].prompt, limit),
             "candidate_output": cut(mine[unit].response, limit), "baseline_output": cut(theirs[unit].response, limit),
             "candidate_outcome": "did not follow it", "baseline_outcome": "followed it"}
            for unit in lost[:per_change]]


def hallucination_examples(samples: Sequence[AuditSample], change: Change, candidate: str, per_change: int = 2,
                           limit: int = EXAMPLE_CHARS) -> list[dict[str, Any]]:
    """Questions on which the candidate's answer had ``change``'s outcome and the baseline's did not (for a kind
    where higher is better: the baseline's had it and the candidate's did not), in question order."""
    rows = {(s.model, _answer_key(s)): s for s in answers(samples)}
    bad_is_having = change.higher_is_better is False
    found = []
    for (model, key), mine in sorted(rows.items()):
        theirs = rows.get((change.baseline, key))
        if model != candidate or theirs is None or not _applies(OUTCOME_KINDS[change.key], mine):
            continue
        has_mine, has_theirs = outcome_kind(mine) == change.key, outcome_kind(theirs) == change.key
        if (has_mine and not has_theirs) if bad_is_having else (has_theirs and not has_mine):
            found.append({"area": change.area, "label": change.label, "baseline": change.baseline,
                          "detail": f"{mine.suite} {mine.item_id}", "item": mine.item_id,
                          "prompt": cut(mine.prompt, limit), "candidate_output": cut(mine.output, limit),
                          "baseline_output": cut(theirs.output, limit),
                          "candidate_outcome": OUTCOME_KINDS[outcome_kind(mine)].label,
                          "baseline_outcome": OUTCOME_KINDS[outcome_kind(theirs)].label,
                          "reference": cut(mine.reference or "none (no true answer)", limit)})
        if len(found) >= per_change:
            break
    return found


def sentence(change: Change) -> str:
    """One plain sentence: ``Follows length limits less often: 42% of instructions, 12 points fewer than base-a
    (within noise).``"""
    share = amount(change.candidate.value, "rate")
    if change.difference == 0:
        return f"{change.phrase} as often as {change.baseline}: {share} of {change.unit}."
    more = change.difference > 0
    note = {"noise": "within noise", "better": "beyond noise: better", "worse": "beyond noise: worse",
            "changed": "beyond noise"}[change.verdict]
    return (f"{change.phrase} {'more' if more else 'less'} often: {share} of {change.unit}, "
            f"{difference(change.difference, 'rate')} {'more' if more else 'fewer'} than {change.baseline} ({note}).")


def top_changes(changes: Iterable[Change], k: int = 3, areas: Sequence[str] = (FAMILY, HALLUCINATION)) -> list[Change]:
    """The ``k`` firmest changes, one per kind (its firmest against any baseline): changes beyond noise first,
    then by the paired test's p-value, then by size; a kind the two models do equally often is no change.
    Instruction families rather than types: a family pools its types' items, so its estimate is firmer, and a
    large difference on three items is less of a change than a smaller one on thirty. Correct answers are left
    out: fewer of them is the same change as more of a mistake kind, on the same questions."""
    ranked = sorted((c for c in changes if c.area in areas and c.difference != 0
                     and not (c.area == HALLUCINATION and c.key == "correct")),
                    key=lambda c: (c.within_noise, c.p_value, -abs(c.difference), -c.n, c.area, c.key, c.baseline))
    chosen: list[Change] = []
    for change in ranked:
        if all((c.area, c.key) != (change.area, change.key) for c in chosen):
            chosen.append(change)
        if len(chosen) == k:
            break
    return chosen


def headline_sentences(changes: Iterable[Change], k: int = 3) -> list[str]:
    """The sentences of :func:`top_changes`, for the report's summary."""
    return [sentence(c) for c in top_changes(changes, k)]
