"""The release policy: a YAML list of rules over registered metrics, each with a severity.

    schema_version: 1
    rules:
      - name: if-not-worse-than-baselines
        type: non_inferiority          # candidate - baseline, paired CI, oriented by the metric's direction
        metric: bench.nift_if.prompt_level_strict_acc
        margin: 0.10                   # the oriented lower CI bound must be above -margin
        severity: block
      - {name: toxicity-ceiling, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}
      - {name: reviewed, type: review_quorum, min_items: 20, min_reviewers: 2}

Rule types: ``threshold`` (at least ``value`` for higher-is-better metrics, at most for lower-is-better),
``non_inferiority``, ``ceiling`` and ``floor`` (explicit bounds; the metric's declared direction must
agree), ``review_quorum``, ``approval_rate``, ``min_agreement``, ``judge_agreement``. ``judge_on: ci`` judges a
bound rule on the pessimistic end of the value's CI instead of the point value.

``judge_agreement`` checks the judge against people before its numbers count: it requires the review record's
judge-human agreement on the blind pairs (``review.judge_agreement``, with ties by default) to reach ``min`` over
at least ``min_items`` pairs. Until it does, every rule on a judge-based metric (names starting with one of
``applies_to``, by default ``bench.pairwise.`` and ``bench.mt_bench.``) is held: *pending* while too few pairs
are labelled, *inconclusive* when the judge agrees with the reviewers less than ``min``; either way the decision
is PENDING_REVIEW, never PROMOTE on a judge nobody has checked::

      - {name: judge-checked, type: judge_agreement, min: 0.6, min_items: 20}

A rule's metric must be one the stages declare (the :class:`harness.core.metrics.MetricCatalogue` the caller
passes); its direction is the one the record holding its values declares.

Every metric rule (and ``approval_rate``) may set ``inconclusive: true``: where the CI straddles the bound the
outcome is then *inconclusive*, with the further items that would decide it at ``power`` (see
:func:`harness.gate.rules.needed_items`), instead of a pass or fail on noise. A policy must have at least one
``block`` rule unless it sets ``allow_no_block_rules: true``: an all-warn policy promotes anything. A block rule
judges the candidate: one naming another ``model:`` (a baseline's value) is refused, whatever the opt-in, since a
number the candidate cannot change would decide its release; as a warn rule it is reported. For the same
reason a block rule that cannot fail is refused under the same opt-in: a bound every value in the metric's
declared range meets (a ceiling of 1 or a floor of 0 on a rate, a margin of 1 on a difference of rates, an
approval minimum of 0) blocks nothing. A metric's range comes from its spec (:attr:`MetricSpec.value_range`):
from the catalogue when the policy is loaded, and again from the record that reports it when it is judged
(``bench.*`` metrics are declared only there).

A policy is a gate's contract, so its values are taken as written: a quoted ``"0.2"`` or ``"yes"`` where a number
or a boolean is meant is refused, not converted (an integer is a number: ``max: 1`` is fine). Rule names are
printed on one line of the decision, the report and the CI summary: a name must be unique, non-blank, at most
:data:`MAX_RULE_NAME_CHARS` characters and free of control characters (a newline in one could forge a line).
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator

from harness.core.config import Section, UniqueKeyLoader, yaml_error_line
from harness.core.errors import ConfigError
from harness.core.metrics import MetricCatalogue, MetricSpec
from harness.core.records import sha256_bytes
from harness.core.store import unprintable_at

Severity = Literal["block", "warn"]

#: Longest rule name: it heads a line of the gate's output and a row of the report's scorecard.
MAX_RULE_NAME_CHARS = 100


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a rule, or None."""
    if not name.strip():
        return "a rule name must not be empty or blank"
    if len(name) > MAX_RULE_NAME_CHARS:
        return f"a rule name is at most {MAX_RULE_NAME_CHARS} characters; this one has {len(name)}"
    if (where := unprintable_at(name)) is not None:
        return (f"a rule name must not contain a control character ({where}); it is printed on one line of the "
                "decision and the report")
    return None


def _description_problem(text: str) -> str | None:
    """Why ``text`` cannot be a rule's or the policy's description, or None: it is copied into the decision record
    and shown to whoever reads it, so it may break lines (YAML's ``|``) but hold no other control character (an
    ANSI escape would restyle a terminal that prints it, U+202E would show its words reversed)."""
    if (where := unprintable_at(text, allowed="\n\t")) is not None:
        return f"a description must not contain a control character ({where}); line breaks and tabs are fine"
    return None


class _PolicySection(Section):
    """Strict: a quoted number or boolean is refused, not converted; an int is still accepted as a float. NaN and
    infinity pass the model to be refused by the policy's own check, which names the bound (``max nan``)."""

    model_config = ConfigDict(strict=True, allow_inf_nan=True)

    @field_validator("description", check_fields=False)  # a rule's and the policy's
    @classmethod
    def _printable_description(cls, text: str | None) -> str | None:
        if text is not None and (problem := _description_problem(text)):
            raise ValueError(problem)
        return text


class _Rule(_PolicySection):
    name: str = Field(description=f"Unique rule name, quoted in the decision and the report: non-blank, at most "
                                  f"{MAX_RULE_NAME_CHARS} characters, no control characters.")
    severity: Severity = Field("block", description="block: a failure rejects; warn: a failure is reported only.")
    description: str | None = Field(None, description="Why the rule exists, for the report.")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        if problem := _name_problem(name):
            raise ValueError(problem)
        return name


class _Inconclusive(_PolicySection):
    """The inconclusive option, shared by every rule judged on a value with a CI."""

    inconclusive: bool = Field(False, description="true: where the CI straddles the bound, the outcome is "
                                                  "'inconclusive' (it passes only when the whole CI is on the "
                                                  "passing side, fails only when the whole CI is on the failing "
                                                  "side) and states the further items that would decide it.")
    power: float = Field(0.8, description="Power at which `needed_items` would decide an inconclusive rule, "
                                          "in (0, 1).")


class _MetricRule(_Rule, _Inconclusive):
    metric: str = Field(description="Metric name a stage declares, e.g. bench.nift_if.prompt_level_strict_acc.")
    attribute: str | None = Field(None, description="Scorer attribute (toxicity); None = the first attribute of "
                                                    "the scorer the record declares (its `scorer.attributes`), "
                                                    "never the order the values are stored in.")
    model: str | None = Field(None, description="Model whose value is judged; None = the candidate. Only for a "
                                                "warn rule: a block rule judges the candidate.")


class ThresholdRule(_MetricRule):
    type: Literal["threshold"]
    value: float = Field(description="At least this (higher-is-better metric) or at most this (lower-is-better).")
    judge_on: Literal["value", "ci"] = Field("value", description="ci: judge the pessimistic CI bound instead.")


class CeilingRule(_MetricRule):
    type: Literal["ceiling"]
    max: float = Field(description="The metric must be at most this; only for lower-is-better metrics.")
    judge_on: Literal["value", "ci"] = Field("value", description="ci: the upper CI bound must be at most max.")


class FloorRule(_MetricRule):
    type: Literal["floor"]
    min: float = Field(description="The metric must be at least this; only for higher-is-better metrics.")
    judge_on: Literal["value", "ci"] = Field("value", description="ci: the lower CI bound must be at least min.")


class NonInferiorityRule(_MetricRule):
    type: Literal["non_inferiority"]
    baseline: str | None = Field(None, description="Baseline name; None = every baseline of gate.baselines.")
    margin: float = Field(description="Allowed loss, in the metric's units, >= 0. Passes when the lower bound of "
                                      "the paired CI of (candidate - baseline), oriented so that higher is better, "
                                      "is above -margin.")


class ReviewQuorumRule(_Rule):
    type: Literal["review_quorum"]
    min_items: int | None = Field(None, description="At least this many of the candidate's items must have a "
                                                    "quorum (give min_items or min_share).")
    min_share: float | None = Field(None, description="At least this share (0..1] of the candidate's queued items "
                                                      "must have a quorum; 1.0 = every item.")
    min_reviewers: int = Field(description="An item has a quorum when this many distinct reviewers labelled it.")


class ApprovalRateRule(_Rule, _Inconclusive):
    type: Literal["approval_rate"]
    min: float = Field(description="Share of reviewer labels accepting the output, 0..1.")
    judge_on: Literal["value", "ci"] = Field("value", description="ci: the lower CI bound must be at least min.")


#: Items labelled by two or more reviewers before kappa/alpha is judged: below about 20 its 95% CI spans
#: more than +-0.3 around a moderate kappa, so a bound on it would judge noise.
MIN_AGREEMENT_ITEMS = 20


class MinAgreementRule(_Rule):
    type: Literal["min_agreement"]
    min: float = Field(description="Inter-reviewer agreement (kappa or alpha), -1..1.")
    min_items: int = Field(MIN_AGREEMENT_ITEMS, description="Items labelled by at least two reviewers needed "
                                                            "before agreement is judged; pending below it.")


#: Metric name prefixes of the judge-based metrics: the pairwise judge, MT-Bench grading, AlpacaEval and the arena.
JUDGE_BASED_PREFIXES = ("bench.pairwise.", "bench.mt_bench.", "bench.alpaca_eval.", "bench.arena.")
#: The review record's metric behind each ``judge_agreement`` statistic.
JUDGE_AGREEMENT_METRICS = {"with_ties": "review.judge_agreement",
                           "without_ties": "review.judge_agreement_without_ties", "kappa": "review.judge_kappa"}


class JudgeAgreementRule(_Rule):
    type: Literal["judge_agreement"]
    min: float = Field(description="Minimum judge-human agreement: a share of agreeing votes (0..1) for "
                                   "with_ties/without_ties, Cohen's kappa (-1..1) for kappa.")
    statistic: Literal["with_ties", "without_ties", "kappa"] = Field(
        "with_ties", description="with_ties: review.judge_agreement (a tie is a third outcome, MT-Bench's setup "
                                 "with ties); without_ties: review.judge_agreement_without_ties; kappa: "
                                 "review.judge_kappa.")
    min_items: int = Field(MIN_AGREEMENT_ITEMS, description="Blind pairs the statistic is computed on (judged by "
                                                            "the judge and with a reviewers' majority; for "
                                                            "without_ties, also not a tie by the judge), needed "
                                                            "before agreement is judged; pending below it.")
    judge_on: Literal["value", "ci"] = Field("value", description="ci: the lower Wilson bound of the share must be "
                                                                  "at least min (not for kappa, which has no CI).")
    applies_to: list[str] = Field(default_factory=lambda: list(JUDGE_BASED_PREFIXES),
                                  description="Metric name prefixes of the judge-based rules this rule holds back "
                                              "until it passes.")

    @property
    def metric(self) -> str:
        return JUDGE_AGREEMENT_METRICS[self.statistic]


Rule = Annotated[ThresholdRule | CeilingRule | FloorRule | NonInferiorityRule | ReviewQuorumRule | ApprovalRateRule
                 | MinAgreementRule | JudgeAgreementRule, Field(discriminator="type")]


class GatePolicy(_PolicySection):
    """A parsed policy file. ``source``/``sha256``/``lines`` say where it came from, for errors and the record."""

    schema_version: Literal[1] = Field(1, description="Policy format version.")
    description: str | None = Field(None, description="What this policy is for.")
    rules: list[Rule] = Field(min_length=1, description="Rules, judged in order.")
    allow_no_block_rules: bool = Field(False, description="true: accept a policy whose every rule is a warn rule "
                                                          "(which promotes any candidate).")
    source: str = Field("<inline>", exclude=True)
    sha256: str = Field("", exclude=True)
    lines: list[int | None] = Field(default_factory=list, exclude=True,
                                    description="1-based line of each rule in the file, in the order of `rules`.")

    def _line(self, index: int) -> int | None:
        return self.lines[index] if index < len(self.lines) else None

    def where(self, rule: _Rule) -> str:
        """``file:line: rule 'name'`` for error messages."""
        index = next((i for i, r in enumerate(self.rules) if r.name == rule.name), len(self.lines))
        line = self._line(index)
        return f"{self.source}{f':{line}' if line else ''}: rule {rule.name!r}"

    def check_static(self) -> None:
        """A rule name used twice; thresholds that no metric could meet, whatever the records say; a policy with
        nothing that blocks."""
        first: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.name in first:
                line, earlier = self._line(index), self._line(first[rule.name])
                raise ConfigError(f"{self.source}{f':{line}' if line else ''}: rule name {rule.name!r} is used "
                                  f"again{f' (first on line {earlier})' if earlier else ''}; rule names must be "
                                  f"unique")
            first[rule.name] = index
        if not self.allow_no_block_rules and not any(r.severity == "block" for r in self.rules):
            raise ConfigError(f"{self.source}: no rule has severity block, so this policy would PROMOTE any "
                              f"candidate, failing or unreviewed; make a rule block, or set "
                              f"`allow_no_block_rules: true` at the top level if that is meant")
        for rule in self.rules:
            problem = None
            infinite = [f"{k} {v}" for k, v in rule.model_dump().items()
                        if isinstance(v, float) and not math.isfinite(v)]
            if infinite:
                problem = f"{', '.join(infinite)}: a bound must be a finite number"
            elif isinstance(rule, ReviewQuorumRule):
                if (rule.min_items is None) == (rule.min_share is None):
                    problem = "give exactly one of min_items and min_share"
                elif rule.min_share is not None and not 0 < rule.min_share <= 1:
                    problem = f"min_share is a share of the queued items, in (0, 1]; {rule.min_share} is impossible"
                elif rule.min_items is not None and rule.min_items < 1:
                    problem = f"min_items must be at least 1, got {rule.min_items}"
                elif rule.min_reviewers < 1:
                    problem = f"min_reviewers must be at least 1, got {rule.min_reviewers}"
            elif isinstance(rule, ApprovalRateRule) and not 0 <= rule.min <= 1:
                problem = f"an approval rate lies in 0..1; min {rule.min} is impossible"
            elif isinstance(rule, MinAgreementRule) and not -1 <= rule.min <= 1:
                problem = f"agreement (kappa/alpha) lies in -1..1; min {rule.min} is impossible"
            elif isinstance(rule, MinAgreementRule) and rule.min_items < 2:
                problem = f"min_items: agreement needs at least 2 doubly labelled items, got {rule.min_items}"
            elif isinstance(rule, JudgeAgreementRule):
                low = -1 if rule.statistic == "kappa" else 0
                if not low <= rule.min <= 1:
                    problem = (f"{rule.statistic} lies in {low}..1; min {rule.min} is impossible")
                elif rule.min_items < 1:
                    problem = f"min_items must be at least 1, got {rule.min_items}"
                elif rule.statistic == "kappa" and rule.judge_on == "ci":
                    problem = "judge_on: ci needs a share (with_ties or without_ties); kappa has no CI"
                elif not rule.applies_to or not all(p.strip() for p in rule.applies_to):
                    problem = "applies_to: name at least one metric prefix, e.g. bench.pairwise."
            elif isinstance(rule, NonInferiorityRule) and rule.margin < 0:
                problem = f"margin is an allowed loss and must be >= 0, got {rule.margin}"
            elif isinstance(rule, _MetricRule) and rule.model is not None and rule.severity == "block":
                problem = (f"a block rule judges the candidate, but `model: {rule.model}` names the model whose "
                           f"value it judges: another model's number would decide the candidate's release (as the "
                           f"only block rule, it would promote any candidate); drop `model:` (the candidate is the "
                           f"default) or make the rule `severity: warn`")
            if problem is None and isinstance(rule, _Inconclusive) and not 0 < rule.power < 1:
                problem = f"power is a probability in (0, 1); {rule.power} is impossible"
            if problem:
                raise ConfigError(f"{self.where(rule)}: {problem}")
            self._refuse_vacuous(rule, _review_rule_vacuous(rule))

    def check_metrics(self, catalogue: MetricCatalogue) -> None:
        """Every metric a rule names must be one a stage declares (a typo is caught before any record is read),
        and a bound on a metric the catalogue declares exactly must be one its values can meet and fail."""
        for rule in self.rules:
            if isinstance(rule, _MetricRule | JudgeAgreementRule):
                try:
                    catalogue.check(rule.metric)
                except ConfigError as exc:
                    raise ConfigError(f"{self.where(rule)}: {exc}") from None
            if isinstance(rule, JudgeAgreementRule):
                self._check_applies_to(rule, catalogue)
            spec = catalogue.get(rule.metric) if isinstance(rule, _MetricRule) else None
            if spec is not None:
                self.check_bound(rule, spec)

    def _check_applies_to(self, rule: JudgeAgreementRule, catalogue: MetricCatalogue) -> None:
        """Each prefix must name judge-based metrics: within a known judge's family (``bench.pairwise.``, ...)
        or the start of a declared metric. A typo (``bench.pairwse.``) would hold no rule, so a judge-based
        rule would decide on a judge nobody checked."""
        for prefix in rule.applies_to:
            declared = any(name.startswith(prefix) for name in catalogue.specs)
            if not (prefix.startswith(JUDGE_BASED_PREFIXES) or declared):
                close = difflib.get_close_matches(prefix, JUDGE_BASED_PREFIXES, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{self.where(rule)}: applies_to {prefix!r} names no judge-based metric{hint}; "
                                  f"known: {', '.join(JUDGE_BASED_PREFIXES)} or the start of a declared metric")

    def check_bound(self, rule: _MetricRule, spec: MetricSpec) -> None:
        """The rule's bound against the range of values ``spec`` declares: refused when no value could meet it,
        or (a block rule, unless ``allow_no_block_rules``) when every value meets it, so that it cannot fail."""
        low, high = spec.value_range
        where = f"{rule.metric} is a {spec.unit} ({low:g}..{high:g})"
        if isinstance(rule, NonInferiorityRule):
            if rule.margin > high - low:
                raise ConfigError(f"{self.where(rule)}: {where}; a margin of {rule.margin} allows any loss and is "
                                  f"impossible to fail")
            self._refuse_vacuous(rule, f"{where}, so no candidate loses more than {high - low:g} and a margin of "
                                       f"{rule.margin} allows any loss" if rule.margin >= high - low else None)
            return
        bound = {CeilingRule: "max", FloorRule: "min", ThresholdRule: "value"}[type(rule)]
        value = getattr(rule, bound)
        if not low <= value <= high:
            raise ConfigError(f"{self.where(rule)}: {where}; the bound {value} is impossible")
        upper = isinstance(rule, CeilingRule) or (isinstance(rule, ThresholdRule) and not spec.higher_is_better)
        if isinstance(rule, CeilingRule | FloorRule) and upper == spec.higher_is_better:
            return  # a bound against the metric's direction, refused as such when judged
        if upper and value >= high:
            self._refuse_vacuous(rule, f"{where}, so every value is at most {bound} {value}")
        elif not upper and value <= low:
            self._refuse_vacuous(rule, f"{where}, so every value is at least {bound} {value}")

    def _refuse_vacuous(self, rule: _Rule, why: str | None) -> None:
        if why is not None and rule.severity == "block" and not self.allow_no_block_rules:
            raise ConfigError(f"{self.where(rule)}: a block rule that cannot fail: {why}; it would pass any "
                              f"candidate: tighten the bound, make it `severity: warn`, or set "
                              f"`allow_no_block_rules: true` at the top level if a policy that may block nothing "
                              f"is meant")


def _review_rule_vacuous(rule: _Rule) -> str | None:
    """Why every possible value meets a review rule's minimum (their ranges are fixed), or None."""
    if isinstance(rule, ApprovalRateRule) and rule.min <= 0:
        return f"an approval rate is at least 0, and min is {rule.min}"
    if isinstance(rule, MinAgreementRule) and rule.min <= -1:
        return f"agreement (kappa/alpha) is at least -1, and min is {rule.min}"
    if isinstance(rule, JudgeAgreementRule):
        low = -1 if rule.statistic == "kappa" else 0
        if rule.min <= low:
            return f"{rule.statistic} is at least {low}, and min is {rule.min}"
    return None


class _PolicyLoader(UniqueKeyLoader):
    """:class:`UniqueKeyLoader` that also reads ``1e-3`` and ``2E+5`` as numbers, as YAML 1.2 does. PyYAML follows
    YAML 1.1, which wants a dot and a signed exponent (``1.0e-3``) and gives a string otherwise: the strict policy
    models would refuse a bound written the usual way. Only unquoted scalars are resolved, so ``"1e-3"`` stays a
    string."""


_PolicyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _policy_lines(text: str) -> tuple[dict[str, int], list[int]]:
    """1-based lines of the top-level keys and of each entry of ``rules`` (by position, whatever its name, which
    may be missing, repeated or not a string), so errors can point at them."""
    try:
        root = yaml.compose(text, Loader=_PolicyLoader)
    except yaml.YAMLError:
        return {}, []
    keys: dict[str, int] = {}
    rules: list[int] = []
    if not isinstance(root, yaml.MappingNode):
        return keys, rules
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode):
            keys.setdefault(key.value, key.start_mark.line + 1)
            if key.value == "rules" and isinstance(value, yaml.SequenceNode):
                rules = [item.start_mark.line + 1 for item in value.value]
    return keys, rules


#: Field errors quoted in one refusal; the rest are counted.
_MAX_PROBLEMS = 5


def _problem(err: dict, raw: dict, key_lines: dict[str, int], rule_lines: list[int]) -> str:
    """One pydantic error as ``line N: rule 'name': field: message``. The rule is quoted by name only when its name
    is a valid one (an invalid name may be a list, a newline or 200,000 characters); by position otherwise."""
    loc, msg = list(err["loc"]), err["msg"]
    if err["type"] == "value_error":
        msg = str(err["ctx"]["error"])
    elif err["type"] in {"float_type", "int_type", "bool_type"} and isinstance(err["input"], str):
        shown = err["input"] if len(err["input"]) <= 40 else err["input"][:40] + "..."
        msg += f", not the string {shown!r} (write numbers and booleans without quotes)"
    rules = raw.get("rules")
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int) and isinstance(rules, list) \
            and loc[1] < len(rules):
        entry = rules[loc[1]]
        name = entry.get("name") if isinstance(entry, dict) else None
        label = repr(name) if isinstance(name, str) and _name_problem(name) is None else f"#{loc[1] + 1}"
        line = rule_lines[loc[1]] if loc[1] < len(rule_lines) else None
        parts = [f"line {line}" if line else "", f"rule {label}", ".".join(str(p) for p in loc[3:] or loc[2:])]
    else:
        line = key_lines.get(loc[0]) if loc and isinstance(loc[0], str) else None
        parts = [f"line {line}" if line else "", ".".join(str(p) for p in loc)]
    return ": ".join([p for p in parts if p] + [msg])


def load_policy(path: str | Path, catalogue: MetricCatalogue) -> GatePolicy:
    """Read and validate a policy file against the metrics in ``catalogue``. Errors name the file, the line of
    the rule and the field."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a policy file (gate.policy names a YAML file)")
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: policy file not found (gate.policy)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file ({exc.strerror or exc})") from None
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw_bytes[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: the policy is not UTF-8 (byte 0x{raw_bytes[exc.start]:02x} at offset "
                          f"{exc.start})") from None
    try:
        raw = yaml.load(text, Loader=_PolicyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_line(exc, path, text)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a `rules:` list")
    key_lines, rule_lines = _policy_lines(text)
    try:
        policy = GatePolicy.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(err, raw, key_lines, rule_lines) for err in exc.errors()]
        more = len(problems) - _MAX_PROBLEMS
        shown = "; ".join(problems[:_MAX_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")
        raise ConfigError(f"{path}: invalid policy: {shown}") from None
    policy.source, policy.sha256, policy.lines = str(path), sha256_bytes(raw_bytes), rule_lines
    policy.check_static()
    policy.check_metrics(catalogue)
    return policy
