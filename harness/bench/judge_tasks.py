"""The bench's judge tasks, run after lm-eval: the pairwise judge, MT-Bench grading, AlpacaEval win rates and the
arena ratings, each with its :class:`~harness.bench.judges.JudgeUse` (judge, self-preference, position
consistency, answer lengths, usage).

Every model answers each suite's questions once per answer length (a suite sharing questions and length with
another reuses its answers); every judge is loaded once and put behind the runs home's generation cache, with a
usage count of its own per task, so a re-run or a new candidate never re-judges an unchanged pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from harness.bench.alpaca_eval import AlpacaEvalResult, judge_against_reference
from harness.bench.arena import (
    ArenaBattle,
    ArenaResult,
    EarlierCandidate,
    battles_of,
    question_key,
    rate,
)
from harness.bench.config import BenchConfig
from harness.bench.grading import (
    CONSTRAINED_NOTE,
    REFERENCE_CATEGORIES,
    WEAK_GRADER_NOTE,
    MtBenchResult,
    compare_grades,
    grade,
    rating_method,
    summarise,
)
from harness.bench.judges import (
    JudgeTask,
    JudgeUse,
    answer_lengths,
    is_weak,
    self_preference,
)
from harness.bench.pairwise import (
    PairwiseItem,
    PairwiseResult,
    Question,
    answer,
    judge_pair,
)
from harness.core.generation import GeneratorConfig
from harness.core.log import get_logger
from harness.core.models import ResolvedModel
from harness.core.records import config_hash

WEAK_JUDGE_NOTE = ("weak judge: a 135M-parameter model judging answers; its verdicts are close to chance and only "
                   "exercise the pipeline")

log = get_logger("bench")


@dataclass
class EarlierAnswers:
    """Another candidate of this run whose stored pairwise answers may join the arena."""

    entry: EarlierCandidate
    spec: str = ""
    model: ResolvedModel | None = None
    answers: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class JudgeOutcome:
    """Everything the judge tasks add to the bench record, and the rows of their files."""

    pairwise: list[PairwiseResult] = field(default_factory=list)
    pairwise_items: list[PairwiseItem] = field(default_factory=list)
    judge_info: dict[str, Any] | None = None
    judge_usage: Any = None
    mt_bench: MtBenchResult | None = None
    graded: list = field(default_factory=list)
    alpaca_eval: AlpacaEvalResult | None = None
    alpaca_rows: list = field(default_factory=list)
    arena: ArenaResult | None = None
    battles: list[ArenaBattle] = field(default_factory=list)
    judges: list[JudgeUse] = field(default_factory=list)


class Answers:
    """Each model's answers, made on first request: one model loaded at a time, never asked a question twice at
    the same length."""

    def __init__(self, config: BenchConfig, resolved: dict[str, ResolvedModel], generators: dict[str, Any] | None):
        self.config, self.resolved, self.generators = config, resolved, dict(generators or {})
        self.known: dict[tuple[str, str, tuple[str, ...], int], list[str]] = {}

    def prepare(self, names: list[str], suites: list[tuple[list[Question], int]]) -> None:
        """Answer every suite (questions, answer length) with each model in turn, each model loaded once."""
        for name in names:
            model = None
            for questions, max_new_tokens in suites:
                todo = self._todo(name, questions, max_new_tokens)
                if todo:
                    model = model or self.generators.get(name) or self._generator(name)
                    self._answer(name, model, todo, max_new_tokens)
            del model  # free it before the next one loads

    def of(self, name: str, questions: list[Question], max_new_tokens: int) -> dict[str, list[str]]:
        """``name``'s answer to every turn of every question (question id -> answers)."""
        if todo := self._todo(name, questions, max_new_tokens):
            self._answer(name, self.generators.get(name) or self._generator(name), todo, max_new_tokens)
        return {q.id: self.known[(name, q.id, tuple(q.turns), max_new_tokens)] for q in questions}

    def _todo(self, name: str, questions: list[Question], max_new_tokens: int) -> list[Question]:
        return [q for q in questions if (name, q.id, tuple(q.turns), max_new_tokens) not in self.known]

    def _answer(self, name: str, model, todo: list[Question], max_new_tokens: int) -> None:
        made = answer(model, todo, max_new_tokens, self.config.seed)
        self.known.update({(name, q.id, tuple(q.turns), max_new_tokens): made[q.id] for q in todo})

    def _generator(self, name: str):
        from harness.core.generation import make_generator

        # a model's own settings, greedy: not the judge's (an endpoint judge must not be asked for our answers)
        return make_generator(GeneratorConfig(
            backend="vllm" if self.config.backend == "vllm" else "transformers", model=self.resolved[name].path,
            temperature=0.0, repetition_penalty=1.0, threads=self.config.threads))


class Judges:
    """Each configured judge loaded once; every task gets its own cached wrapper (its own usage count). Judges
    injected by tests (task -> judge) are used as they are."""

    def __init__(self, home: Path, injected: dict[str, Any]):
        self.home, self.injected = home, injected
        self.loaded: dict[str, Any] = {}

    def get(self, task: JudgeTask, config: GeneratorConfig):
        if self.injected.get(task) is not None:
            return self.injected[task]
        from harness.core.generation import make_generator
        from harness.core.generation_cache import CachedGenerator, GenerationCache

        key = config_hash(config.model_dump())
        if key not in self.loaded:
            self.loaded[key] = make_generator(config)
        return CachedGenerator(self.loaded[key], GenerationCache.at_home(self.home) if config.cache else None)


def constrained_rating(config: BenchConfig) -> bool:
    """Whether MT-Bench ratings are read constrained (``mt_bench.rating``; auto: a local transformers judge)."""
    rating = config.mt_bench.rating
    return rating == "constrained" or (rating == "auto" and config.grading_judge().backend == "transformers")


def _use(task: JudgeTask, config: GeneratorConfig, judge: Any, sha256: str | None,
         models: dict[str, tuple[str, ResolvedModel]], answers: dict[str, dict[str, list[str]]], *, judgements: int,
         unparseable: int, consistent: int | None = None, position_n: int | None = None, note: str = "") -> JudgeUse:
    same, basis = self_preference(config, sha256, models)
    weak = is_weak(config)
    notes = [n for n in (WEAK_JUDGE_NOTE if weak and task != "mt_bench" else "", note) if n]
    if same:
        notes.append(f"self-preference: the judge is also {', '.join(same)} ({basis}); its numbers about "
                     f"{'that model' if len(same) == 1 else 'those models'} may favour its own answers")
    return JudgeUse(task=task, judge=config.model, backend=config.backend, weak=weak, note="; ".join(notes),
                    self_preference=same, self_preference_basis=basis, judgements=judgements,
                    unparseable=unparseable, consistent=consistent,
                    position_consistency=None if not position_n else consistent / position_n, position_n=position_n,
                    answer_length=answer_lengths(answers), usage=getattr(judge, "usage", None))


def _consistency(items: list[PairwiseItem]) -> tuple[int, int]:
    parsed = [i for i in items if i.outcome != "unparseable"]
    return sum(1 for i in parsed if i.consistent), len(parsed)


def run_judge_tasks(config: BenchConfig, names: list[str], specs: dict[str, str], resolved: dict[str, ResolvedModel],
                    home: Path, *, pairwise_questions: list[Question] | None, grading: tuple | None,
                    alpaca: tuple | None, earlier: list[EarlierAnswers], judge_shas: dict[str, str | None],
                    generators: dict[str, Any] | None, injected: dict[str, Any]) -> JudgeOutcome:
    """Every enabled judge task over the candidate (``names[0]``) and the baselines."""
    answers, judges, out = Answers(config, resolved, generators), Judges(home, injected), JudgeOutcome()
    models = {name: (specs[name], resolved[name]) for name in names}
    sha = lambda cfg: judge_shas.get(config_hash(cfg.model_dump()))
    stats = (config.bootstrap_iterations, config.confidence, config.seed)
    pw = config.pairwise
    suites = [(pairwise_questions, pw.max_new_tokens)] if pairwise_questions is not None else []
    suites += [(grading[0], config.mt_bench.max_new_tokens)] if grading is not None else []
    suites += [(alpaca[0], config.alpaca_eval.max_new_tokens)] if alpaca is not None else []
    answers.prepare(names, suites)  # the AlpacaEval reference baseline's own answers are among them
    if pairwise_questions is not None:
        judge = judges.get("pairwise", pw.judge)
        seen = {n: answers.of(n, pairwise_questions, pw.max_new_tokens) for n in names}
        for baseline in names[1:]:
            result, items = judge_pair(judge, pairwise_questions, seen[names[0]], seen[baseline], baseline,
                                       pw.judge.model, pw.judge.max_new_tokens, *stats, pw.verdict_rule)
            out.pairwise.append(result)
            out.pairwise_items.extend(items)
        weak = is_weak(pw.judge)
        out.judge_info = {"model": pw.judge.model, "backend": pw.judge.backend, "note": WEAK_JUDGE_NOTE if weak else ""}
        out.judge_usage = getattr(judge, "usage", None)
        out.judges.append(_use("pairwise", pw.judge, judge, sha(pw.judge), models, seen,
                               judgements=2 * len(out.pairwise_items),
                               unparseable=sum(1 for i in out.pairwise_items if i.outcome == "unparseable"),
                               consistent=_consistency(out.pairwise_items)[0],
                               position_n=_consistency(out.pairwise_items)[1]))
    if grading is not None:
        _mt_bench(config, names, grading, answers, judges, models, sha, out)
    if alpaca is not None:
        _alpaca_eval(config, names, alpaca, answers, judges, models, sha, out)
    if config.arena.enabled and pairwise_questions is not None:
        _arena(config, names, pairwise_questions, earlier, answers, judges, models, sha, out)
    return out


def _mt_bench(config: BenchConfig, names: list[str], grading: tuple, answers: Answers, judges: Judges,
              models: dict, sha, out: JudgeOutcome) -> None:
    """Every model answers (reusing answers at the same length), the judge grades every turn, and the candidate
    is compared with each baseline question by question."""
    questions, templates = grading
    mt, judge_config = config.mt_bench, config.grading_judge()
    seen = {n: answers.of(n, questions, mt.max_new_tokens) for n in names}
    grader = judges.get("mt_bench", judge_config)
    rows = grade(grader, templates, questions, seen, mt.judge_max_new_tokens, config.seed,
                 constrained=constrained_rating(config))
    stats = (config.bootstrap_iterations, config.confidence, config.seed)
    grades = [summarise(rows, name, *stats) for name in names]
    for g in grades:
        if g.unparseable:
            log.warning(f"MT-Bench: {g.unparseable} of {g.judgements} judge replies for {g.model} had no [[1-10]] "
                        f"rating; {g.unscored_questions} questions left unscored")
    method, sureness = rating_method(rows)
    note = "; ".join(n for n in (WEAK_GRADER_NOTE if is_weak(judge_config) else "",
                                 CONSTRAINED_NOTE if method in ("constrained", "mixed") else "") if n)
    missing = [q.id for q in questions if q.category in REFERENCE_CATEGORIES and not q.reference]
    out.mt_bench = MtBenchResult(
        judge=judge_config.model, judge_backend=judge_config.backend, questions=len(questions), note=note,
        rating_method=method, mean_rating_probability=sureness, judge_usage=getattr(grader, "usage", None),
        reference_graded=sum(1 for q in questions if q.reference), missing_reference=missing, models=grades,
        comparisons=[c for b in names[1:] for c in compare_grades(rows, names[0], b, *stats)])
    out.graded = rows
    out.judges.append(_use("mt_bench", judge_config, grader, sha(judge_config), models, seen,
                           judgements=sum(g.judgements for g in grades), unparseable=sum(g.unparseable for g in grades),
                           note=note))


def _alpaca_eval(config: BenchConfig, names: list[str], alpaca: tuple, answers: Answers, judges: Judges,
                 models: dict, sha, out: JudgeOutcome) -> None:
    """Each judged model against the reference: win rates, length-controlled win rates and the candidate's
    paired comparisons."""
    questions, reference_name, source, file_answers = alpaca
    ae, judge_config, pw = config.alpaca_eval, config.alpaca_eval_judge(), config.pairwise
    judged = [n for n in names if n != reference_name]
    seen = {n: answers.of(n, questions, ae.max_new_tokens) for n in judged}
    reference = file_answers if file_answers is not None else answers.of(reference_name, questions,
                                                                         ae.max_new_tokens)
    judge = judges.get("alpaca_eval", judge_config)
    results, rows, comparisons, differences = judge_against_reference(
        judge, questions, seen, reference, reference_name, judge_config.model, judge_config.max_new_tokens,
        pw.verdict_rule, config.bootstrap_iterations, config.confidence, config.seed, ae.inverse_regularization)
    weak = is_weak(judge_config)
    out.alpaca_eval = AlpacaEvalResult(
        reference=reference_name, reference_source=source, judge=judge_config.model,
        judge_backend=judge_config.backend, note=WEAK_JUDGE_NOTE if weak else "", verdict_rule=pw.verdict_rule,
        instructions=len(questions), models=results, comparisons=comparisons, lc_differences=differences)
    out.alpaca_rows = rows
    parsed = [r for r in rows if r.outcome != "unparseable"]
    lengths = {**seen, reference_name: reference}
    use = _use("alpaca_eval", judge_config, judge, sha(judge_config), models, lengths, judgements=2 * len(rows),
               unparseable=len(rows) - len(parsed), consistent=sum(1 for r in parsed if r.consistent),
               position_n=len(parsed))
    if source == "file" and judge_config.model == reference_name:  # the judge wrote the reference answers
        use.self_preference.append(reference_name)
        use.self_preference_basis = use.self_preference_basis or "same model name"
        flag = f"self-preference: the judge is also the reference {reference_name} (same model name)"
        use.note = "; ".join(n for n in (use.note, flag) if n)
    out.judges.append(use)


def _arena(config: BenchConfig, names: list[str], questions: list[Question], earlier: list[EarlierAnswers],
           answers: Answers, judges: Judges, models: dict, sha, out: JudgeOutcome) -> None:
    """Every pair of models judged on the pairwise questions (the candidate's pairs are the pairwise judge's
    verdicts), the AlpacaEval verdicts of the same judge, and Bradley-Terry ratings over all of them."""
    pw, arena = config.pairwise, config.arena
    joined = [e for e in earlier if e.entry.included]
    seen = {n: answers.of(n, questions, pw.max_new_tokens) for n in names}
    seen.update({e.entry.name: e.answers for e in joined})
    everyone = names + [e.entry.name for e in joined]
    judge = judges.get("arena", pw.judge)
    battles = [b for baseline in names[1:]
               for b in battles_of([i for i in out.pairwise_items if i.baseline == baseline], names[0], "pairwise")]
    stats = (config.bootstrap_iterations, config.confidence, config.seed)
    asked: list[PairwiseItem] = []
    for a, b in combinations(everyone, 2):
        if a == names[0] and b in names[1:]:
            continue  # the pairwise judge's verdicts, already in
        _, items = judge_pair(judge, questions, seen[a], seen[b], b, pw.judge.model, pw.judge.max_new_tokens,
                              *stats, pw.verdict_rule)
        asked.extend(items)
        battles += battles_of(items, a, "pairwise")
    if out.alpaca_eval is not None and config.alpaca_eval_judge() == pw.judge:
        battles += [ArenaBattle(question_id=r.question_id, question=question_key(r.turns), source="alpaca_eval",
                                model_a=r.model, model_b=r.reference, verdict_a_first=r.verdict_model_first,
                                verdict_b_first=r.verdict_reference_first,
                                winner={"win": "a", "loss": "b", "tie": "tie"}.get(r.outcome, "unparseable"),
                                consistent=r.consistent) for r in out.alpaca_rows]
    anchor = arena.anchor or names[1]
    ratings, fitted, reason = rate(battles, names[0], anchor, iterations=config.bootstrap_iterations,
                                   confidence=config.confidence, seed=config.seed,
                                   inverse_regularization=arena.inverse_regularization)
    rated = sorted({m for b in fitted for m in (b.model_a, b.model_b)}, key=lambda m: (m not in everyone, m))
    weak = is_weak(pw.judge)
    out.arena = ArenaResult(
        judge=pw.judge.model, judge_backend=pw.judge.backend, note=WEAK_JUDGE_NOTE if weak else "",
        models=[m for m in everyone if m in rated] + [m for m in rated if m not in everyone],
        earlier_candidates=[e.entry for e in earlier], battles=len(fitted),
        unparseable=sum(1 for b in battles if b.winner == "unparseable"),
        sources={s: sum(1 for b in fitted if b.source == s) for s in sorted({b.source for b in fitted})},
        ratings=ratings, reason=reason)
    out.battles = battles
    everyone_models = {**models, **{e.entry.name: (e.spec, e.model) for e in joined if e.model is not None}}
    pairs = out.pairwise_items + asked
    consistent, parsed = _consistency(pairs)
    out.judges.append(_use("arena", pw.judge, judge, sha(pw.judge), everyone_models, seen,
                           judgements=2 * len(pairs), unparseable=len(pairs) - parsed, consistent=consistent,
                           position_n=parsed, note=reason))
