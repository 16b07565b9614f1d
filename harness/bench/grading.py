"""Single-answer grading in the style of MT-Bench (Zheng et al. 2023, "Judging LLM-as-a-judge with MT-Bench and
Chatbot Arena"): a judge rates each answer on its own, 1 to 10.

* Every turn is a judgement. The first turn is graded on its own; the second turn of a two-turn question is
  graded with the first exchange shown as its context (the model answered it as a conversation).
* A question that carries reference answers (MT-Bench's math, reasoning and coding questions) is graded against
  them, with the reference template of that turn.
* The judge writes its rating as ``[[n]]`` (n from 1 to 10). A reply with no such rating, with two different
  ones, or with one outside 1-10 is *unparseable*: counted and reported, never a default score.
* A local judge too small to keep that form (the embedded 135M model wrote no parseable rating in 36 tries)
  can be read *constrained* instead: its turn starts with ``Rating: [[`` and the rating is whichever of
  ``1]]`` .. ``10]]`` it finds most likely (:data:`RATING_CHOICES`). It then writes no justification, every
  reply parses by construction, and the record says which replies were read this way (``constrained``) and how
  sure the judge was (the chosen rating's probability among the ten).

A question's score is the mean of its turns' ratings, and only a question whose every turn was rated has one
(otherwise a question would silently become a one-turn question for one model and not the other). The overall
score and each category's are means over questions with a percentile-bootstrap CI over questions; on MT-Bench
(80 questions, all two turns) that overall mean is FastChat's mean over all judgements. Candidate and baseline
are compared question by question (a paired bootstrap: ratings are a scale, not a proportion).

The judge's instructions are nift-gate's own wording (``harness/assets/judges/single_grading.jsonl``), after the
published structure of FastChat's ``single-v1``, ``single-math-v1`` and their multi-turn variants.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harness.bench.pairwise import Question
from harness.core.errors import InputError
from harness.core.generation import ChoiceConstraint
from harness.core.generation_cache import GenerationUsage
from harness.core.stats import (
    PairedComparison,
    bootstrap_mean_ci,
    paired_comparison,
)
from harness.core.store import numbered_jsonl, read_bytes

#: The comparison's "task" name; its metrics are ``score`` and each category, hence bench.mt_bench.<metric>.
MT_BENCH = "mt_bench"
OVERALL = "score"
#: Categories whose questions MT-Bench grades against a reference answer.
REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
#: The four templates a judge-prompt file must hold: (turns shown, graded against a reference) -> name.
TEMPLATE_NAMES = {(1, False): "single", (1, True): "single-reference", (2, False): "multi-turn",
                  (2, True): "multi-turn-reference"}

WEAK_GRADER_NOTE = ("weak judge: a 135M-parameter model grading answers; its ratings are close to noise and only "
                    "exercise the pipeline")
#: The lowest and highest rating: a question's score (the mean of its turns') lies within them too.
RATING_BOUNDS = (1.0, 10.0)
#: The constrained reading of a rating: the judge's turn starts with the prefix, the rating is the likeliest option.
RATING_CHOICES = ChoiceConstraint(prefix="Rating: [[", options=tuple(f"{n}]]" for n in range(1, 11)))
CONSTRAINED_NOTE = ("ratings constrained: the judge's reply starts with 'Rating: [[' and its rating is the most "
                    "likely of 1..10, with no justification written; every such reply parses, so the parse rate "
                    "says nothing of the judge's quality")
#: How the ratings were read: every reply written, every one constrained, or some of each.
RatingMethod = Literal["written", "constrained", "mixed", "none"]

_RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


def parse_rating(reply: str) -> float | None:
    """The judge's ``[[n]]`` rating, or None (unparseable) when the reply has none, two different ones, or one
    outside 1-10. A repeated identical rating ("Rating: [[7]] ... [[7]]") is one rating."""
    found = {float(m.group(1)) for m in _RATING.finditer(reply)}
    if len(found) != 1:
        return None
    rating = found.pop()
    return rating if RATING_BOUNDS[0] <= rating <= RATING_BOUNDS[1] else None


def template_fields(name: str) -> list[str]:
    """The fields :func:`grading_prompt` formats template ``name`` with: question, answer and reference of each
    turn it shows."""
    shown = next(turns for (turns, _), n in TEMPLATE_NAMES.items() if n == name)
    return [f"{kind}_{i}" for i in range(1, shown + 1) for kind in ("question", "answer", "reference")]


def _check_template(where: str, name: str, template: str) -> None:
    """Refuse a template :func:`grading_prompt` could not format, naming the field or brace at fault; unchecked,
    the KeyError would come at grading time, after every answer was generated."""
    fields = template_fields(name)
    try:
        used = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:  # a lone brace: JSON in a template must be written {{ }}
        raise InputError(f"{where}: template {name!r} is not a format string ({exc}); write a literal brace "
                         "as {{ or }}") from None
    for field in used:
        if field not in fields:  # also {answer_1.upper} or {answer_1[0]}: the template wants the text itself
            raise InputError(f"{where}: template {name!r} uses unknown field {{{field}}}; it can use "
                             f"{', '.join('{' + f + '}' for f in fields)} (a literal brace is written {{{{ or }}}})")
    # what parsing lets through: a conversion or format spec a string does not have ({answer_1!z},
    # {answer_1:d}), or a field inside a format spec ({answer_1:{width}})
    try:
        template.format(**dict.fromkeys(fields, ""))
    except (IndexError, KeyError, ValueError) as exc:
        raise InputError(f"{where}: template {name!r} cannot be formatted ({type(exc).__name__}: {exc})") from None


def load_judge_prompts(path: Path, read: Callable[[Path], bytes] | None = None) -> dict[str, str]:
    """The grading templates of a JSONL file (``name``, ``template`` rows), by name; all four of
    :data:`TEMPLATE_NAMES` are required, each at most once, and each may use only the fields it is formatted
    with (:func:`template_fields`). ``read`` gives the file's bytes (a stage passes ``StageRun.read``)."""
    templates, lines = {}, {}
    data = read(path) if read is not None else read_bytes(path, "judge prompt file")
    for line, row in numbered_jsonl(data, path):
        name, template = row.get("name"), row.get("template")
        if not isinstance(name, str) or not isinstance(template, str):
            raise InputError(f"{path}:{line}: a judge prompt needs 'name' and 'template' (strings)")
        if name in lines:
            raise InputError(f"{path}:{line}: judge prompt {name!r} is defined again (first on line {lines[name]})")
        if name in TEMPLATE_NAMES.values():  # a template of another name is never formatted
            _check_template(f"{path}:{line}", name, template)
        templates[name], lines[name] = template, line
    if missing := [n for n in TEMPLATE_NAMES.values() if n not in templates]:
        raise InputError(f"{path}: judge prompts missing: {', '.join(missing)}")
    return templates


class GradedAnswer(BaseModel):
    """One model's answer to one question, every turn rated: a row of ``mt_bench.jsonl``."""

    model: str
    question_id: str
    category: str | None = None
    turns: list[str] = Field(description="The user turns asked, in order.")
    answers: list[str] = Field(description="The model's answer to each turn (the second saw the first).")
    reference: list[str] = Field(default_factory=list, description="Reference answers the judge graded against.")
    templates: list[str] = Field(description="The judge template of each turn (single, single-reference, "
                                             "multi-turn, multi-turn-reference).")
    judge_replies: list[str] = Field(description="The judge's raw reply for each turn.")
    ratings: list[float | None] = Field(description="Each turn's rating, 1-10; None where the reply was "
                                                    "unparseable.")
    score: float | None = Field(description="Mean of the turns' ratings; None unless every turn was rated.")
    constrained: list[bool] = Field(default_factory=list, description="Per turn: the rating was the likeliest of "
                                                                      "1..10 after 'Rating: [[' (no justification "
                                                                      "written), not parsed from a written reply.")
    rating_probabilities: list[float | None] = Field(
        default_factory=list, description="Per turn, for a constrained rating: the chosen rating's probability "
                                          "among the ten (0.1 is a judge with no preference); None when written.")


class ScoreSummary(BaseModel):
    """A mean rating over questions (or over the questions' turn t) with its CI."""

    mean: float | None = Field(description="Mean rating, 1-10; None without a rated question.")
    n: int = Field(description="Questions behind the mean.")
    ci_low: float | None = None
    ci_high: float | None = None
    interval: str | None = Field(None, description="'bootstrap-bca' (BCa bootstrap resampling questions), or "
                                                   "'constant-bounded' when every question has the same score "
                                                   "(the share of other scores bounded, on the 1-10 scale); None "
                                                   "below MIN_BOOTSTRAP_ITEMS (10) questions.")


class ModelGrades(BaseModel):
    """One model's MT-Bench scores."""

    model: str
    overall: ScoreSummary = Field(description="Mean over questions of the question's score.")
    per_turn: dict[str, ScoreSummary] = Field(description="'1', '2' -> mean rating of that turn over the "
                                                          "questions that have it rated.")
    per_category: dict[str, ScoreSummary] = Field(description="Category -> mean of its questions' scores.")
    judgements: int = Field(description="Turns sent to the judge.")
    unparseable: int = Field(description="Judge replies without a usable [[n]] rating (never a default score).")
    unscored_questions: int = Field(description="Questions without a score because a turn's rating was "
                                                "unparseable.")


class MtBenchResult(BaseModel):
    """Single-answer grading of the candidate and every baseline (``BenchRecord.mt_bench``)."""

    judge: str = Field(description="The judge model.")
    judge_backend: str
    note: str = Field("", description="A warning about the judge (the embedded one is weak; ratings read "
                                      "constrained), else empty.")
    rating_method: RatingMethod = Field("written", description="How the ratings were read: 'written' (parsed from "
                                                               "the judge's reply), 'constrained' (the likeliest of "
                                                               "1..10), 'mixed', or 'none' (nothing graded).")
    mean_rating_probability: float | None = Field(None, description="Constrained ratings: the mean probability of "
                                                                    "the chosen rating (0.1: no preference at all).")
    judge_usage: GenerationUsage | None = Field(None, description="The grading judge's calls, cache hits, tokens "
                                                                  "and estimated cost (None for an injected judge).")
    questions: int = Field(description="Questions asked (of every model).")
    reference_graded: int = Field(description="Questions graded against reference answers.")
    missing_reference: list[str] = Field(default_factory=list, description="Ids of math/reasoning/coding questions "
                                                                           "without a reference: graded as open "
                                                                           "questions, which MT-Bench does not do.")
    models: list[ModelGrades] = Field(description="Candidate first, then each baseline.")
    comparisons: list[PairedComparison] = Field(
        default_factory=list, description="Candidate vs each baseline over the questions both have a score for: "
                                          "metric 'score' (overall) and one per category; published as "
                                          "bench.mt_bench.<metric>.")


def _template(question: Question, turn: int) -> str:
    """The template for ``turn`` (0-based): multi-turn from the second turn on; a reference one where the
    question has a reference for every turn shown."""
    shown = turn + 1
    graded_against = len(question.reference) >= shown and all(r.strip() for r in question.reference[:shown])
    return TEMPLATE_NAMES[(min(shown, 2), graded_against)]


def grading_prompt(templates: dict[str, str], question: Question, answers: list[str], turn: int) -> tuple[str, str]:
    """(template name, the judge's prompt) for one turn of one model's answer."""
    name = _template(question, turn)
    fields = {}
    for i in range(turn + 1):
        fields[f"question_{i + 1}"] = question.turns[i]
        fields[f"answer_{i + 1}"] = answers[i]
        fields[f"reference_{i + 1}"] = question.reference[i] if i < len(question.reference) else ""
    return name, templates[name].format(**fields)


def grade(judge, templates: dict[str, str], questions: list[Question], answers: dict[str, dict[str, list[str]]],
          max_new_tokens: int, seed: int, constrained: bool = False) -> list[GradedAnswer]:
    """Every turn of every model's answers rated by ``judge`` in one batch (``answers``: model -> question id ->
    the answer to each turn); ``constrained`` asks for the likeliest of :data:`RATING_CHOICES` instead of a
    written reply (a reply is recorded as constrained only where the judge says it ranked the options)."""
    from harness.core.generation import GenerationRequest

    requests, names = [], {}
    for model, by_question in answers.items():
        for q in questions:
            for turn in range(len(q.turns)):
                name, prompt = grading_prompt(templates, q, by_question[q.id], turn)
                key = f"{model}|{q.id}|turn{turn + 1}"
                names[key] = name
                requests.append(GenerationRequest(key=key, prompt=prompt, max_new_tokens=max_new_tokens,
                                                  choices=RATING_CHOICES if constrained else None))
    replies = {g.key: g for g in judge.generate(requests, seed=seed)}
    rows = []
    for model, by_question in answers.items():
        for q in questions:
            keys = [f"{model}|{q.id}|turn{t + 1}" for t in range(len(q.turns))]
            ratings = [parse_rating(replies[k].text) for k in keys]
            rated = None if None in ratings else sum(ratings) / len(ratings)
            ranked = [replies[k].choice_probabilities for k in keys]
            rows.append(GradedAnswer(
                model=model, question_id=q.id, category=q.category, turns=list(q.turns), answers=by_question[q.id],
                reference=list(q.reference), templates=[names[k] for k in keys],
                judge_replies=[replies[k].text for k in keys], ratings=ratings, score=rated,
                constrained=[p is not None for p in ranked],
                rating_probabilities=[None if p is None else p[replies[k].text.removeprefix(RATING_CHOICES.prefix)]
                                      for k, p in zip(keys, ranked)]))
    return rows


def rating_method(rows: list[GradedAnswer]) -> tuple[RatingMethod, float | None]:
    """How the replies of ``rows`` were read, and the mean probability of the constrained ratings."""
    flags = [c for r in rows for c in r.constrained] or [False] * sum(len(r.ratings) for r in rows)
    chosen = [p for r in rows for p in r.rating_probabilities if p is not None]
    method = "none" if not flags else "constrained" if all(flags) else "mixed" if any(flags) else "written"
    return method, (sum(chosen) / len(chosen) if chosen else None)


def _summary(values: list[float], iterations: int, confidence: float, seed: int) -> ScoreSummary:
    interval = bootstrap_mean_ci(values, iterations, confidence, seed, RATING_BOUNDS)
    return ScoreSummary(mean=sum(values) / len(values) if values else None, n=len(values), ci_low=interval.low,
                        ci_high=interval.high, interval=interval.method)


def summarise(rows: list[GradedAnswer], model: str, iterations: int, confidence: float, seed: int) -> ModelGrades:
    """One model's overall, per-turn and per-category scores from its graded answers."""
    mine = [r for r in rows if r.model == model]
    scored = [r for r in mine if r.score is not None]
    turns = sorted({t for r in mine for t in range(len(r.ratings))})
    categories = sorted({r.category for r in scored if r.category is not None})
    return ModelGrades(
        model=model, overall=_summary([r.score for r in scored], iterations, confidence, seed),
        per_turn={str(t + 1): _summary([r.ratings[t] for r in mine if len(r.ratings) > t and r.ratings[t] is not None],
                                       iterations, confidence, seed) for t in turns},
        per_category={c: _summary([r.score for r in scored if r.category == c], iterations, confidence, seed)
                      for c in categories},
        judgements=sum(len(r.ratings) for r in mine), unparseable=sum(r.ratings.count(None) for r in mine),
        unscored_questions=len(mine) - len(scored))


def compare_grades(rows: list[GradedAnswer], candidate: str, baseline: str, iterations: int, confidence: float,
                   seed: int) -> list[PairedComparison]:
    """Candidate vs ``baseline`` by question: overall (metric 'score') and per category, over the questions
    both have a score for; none for a category without such a question."""
    def scores(model: str, category: str | None = None) -> dict[str, float]:
        return {r.question_id: r.score for r in rows if r.model == model and r.score is not None
                and (category is None or r.category == category)}

    categories = sorted({r.category for r in rows if r.category is not None})
    comparisons = []
    for metric, category in [(OVERALL, None)] + [(c, c) for c in categories]:
        comparison = paired_comparison(scores(candidate, category), scores(baseline, category), task=MT_BENCH,
                                       metric=metric, baseline_name=baseline, higher_is_better=True,
                                       iterations=iterations, confidence=confidence, seed=seed, continuous=True,
                                       bounds=RATING_BOUNDS)
        if comparison is not None:
            comparisons.append(comparison)
    return comparisons


def check_categories(questions: list[Question], path: str) -> None:
    """A category named 'score' would publish the same metric as the overall score: refused."""
    if any(q.category == OVERALL for q in questions):
        raise InputError(f"{path}: category {OVERALL!r} is reserved for the overall MT-Bench score; rename it")
