"""Judge-based numbers: arena ratings, AlpacaEval win rates, MT-Bench scores and pairwise win rates, each with what
stands next to it -- the judge, whether the judge is itself one of the models (self-preference), how consistent
its verdicts were when the answers swapped places, how long each model's answers were -- and what every judge
cost (tokens, calls, cache hits, USD at the configured prices), the hallucination audit's grader included.

Read from the bench record (``harness.bench.record``) and the hallucination audit record only. The arena chart
is drawn with the report's matplotlib style (``reports.charts``): text as paths, no script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.core.store import RunStore
from reports import charts

if TYPE_CHECKING:
    from reports.build import DecidedEvidence

ORDER = 500  # among the detail, after the review: what the judges said, and how far to trust them
TITLE = "Judges: arena ratings, win rates and scores, with their caveats"

TASK_LABELS = {"pairwise": "pairwise (candidate vs each baseline)", "mt_bench": "MT-Bench single-answer grading",
               "alpaca_eval": "AlpacaEval win rate vs the reference", "arena": "arena battles (every pair)"}


def _usage(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    get = usage.get if isinstance(usage, dict) else lambda k: getattr(usage, k)
    return {"calls": get("calls"), "cache_hits": get("cache_hits"), "failed": get("failed"),
            "tokens": get("prompt_tokens") + get("completion_tokens"), "prompt_tokens": get("prompt_tokens"),
            "completion_tokens": get("completion_tokens"), "cost": get("estimated_cost_usd")}


def _judge_rows(bench) -> list[dict[str, Any]]:
    return [{"task": TASK_LABELS.get(u.task, u.task), "judge": u.judge, "backend": u.backend, "weak": u.weak,
             "note": u.note, "self_preference": ", ".join(u.self_preference), "basis": u.self_preference_basis,
             "judgements": u.judgements, "unparseable": u.unparseable, "consistency": u.position_consistency,
             "consistent": u.consistent, "position_n": u.position_n, "usage": _usage(u.usage)}
            for u in bench.judges]


def _row_caveats(use, model: str) -> dict[str, Any]:
    """What stands next to one model's judge-based number: its answers' length and whether the judge is it."""
    length = use.answer_length.get(model) if use else None
    return {"length_mean": length.mean if length else None, "length_median": length.median if length else None,
            "self": bool(use and model in use.self_preference)}


def _mt_bench(bench, uses) -> dict[str, Any] | None:
    mt = bench.mt_bench
    if mt is None:
        return None
    use = uses.get("mt_bench")
    rows = [{"model": g.model, "score": g.overall.mean, "ci_low": g.overall.ci_low, "ci_high": g.overall.ci_high,
             "n": g.overall.n, "unparseable": g.unparseable, "judgements": g.judgements, **_row_caveats(use, g.model)}
            for g in mt.models]
    return {"judge": mt.judge, "method": mt.rating_method, "sureness": mt.mean_rating_probability, "note": mt.note,
            "rows": rows}


def _pairwise(bench, uses) -> dict[str, Any] | None:
    if not bench.pairwise:
        return None
    use = uses.get("pairwise")
    rows = [{"baseline": p.baseline, "win_rate": p.win_rate, "ci_low": p.ci_low, "ci_high": p.ci_high, "n": p.n,
             "wins": p.wins, "ties": p.ties, "losses": p.losses, "unparseable": p.unparseable,
             "consistency": p.position_consistency, **_row_caveats(use, p.baseline)} for p in bench.pairwise]
    return {"judge": bench.pairwise[0].judge, "candidate": {**_row_caveats(use, bench.candidate)},
            "verdict_rule": bench.pairwise[0].verdict_rule, "rows": rows}


def _alpaca(bench, uses) -> dict[str, Any] | None:
    ae = bench.alpaca_eval
    if ae is None:
        return None
    use = uses.get("alpaca_eval")
    rows = []
    for m in ae.models:
        wr, lc = m.win_rate, m.length_controlled
        rows.append({"model": m.model, "judged": m.judged, "unparseable": m.unparseable,
                     "consistency": m.consistent / (m.judged - m.unparseable) if m.judged > m.unparseable else None,
                     "win_rate": wr.win_rate if wr else None, "wr_low": wr.ci_low if wr else None,
                     "wr_high": wr.ci_high if wr else None, "lc": lc.length_controlled_win_rate if lc else None,
                     "lc_low": lc.ci_low if lc else None, "lc_high": lc.ci_high if lc else None,
                     "length_coefficient": lc.length_coefficient if lc else None, **_row_caveats(use, m.model)})
    reference = _row_caveats(use, ae.reference)
    return {"reference": ae.reference, "source": ae.reference_source, "judge": ae.judge, "note": ae.note,
            "instructions": ae.instructions, "rows": rows, "reference_length": reference["length_mean"],
            "reference_self": reference["self"]}


def _arena(bench, uses) -> dict[str, Any] | None:
    arena = bench.arena
    if arena is None:
        return None
    use = uses.get("arena")
    ratings = arena.ratings
    rows = [] if ratings is None else [
        {"model": r.model, "rating": r.rating, "ci_low": r.ci_low, "ci_high": r.ci_high, "battles": r.battles,
         "wins": r.wins, "ties": r.ties, "losses": r.losses, "vs_anchor": r.win_rate_vs_anchor,
         **_row_caveats(use, r.model)} for r in ratings.ratings]
    return {"judge": arena.judge, "note": arena.note, "reason": arena.reason, "battles": arena.battles,
            "unparseable": arena.unparseable, "sources": arena.sources,
            "anchor": ratings.anchor if ratings else None, "questions": ratings.questions if ratings else None,
            "resampled": ratings.resampled if ratings else None, "rows": rows,
            "consistency": use.position_consistency if use else None,
            "earlier": [e.model_dump() for e in arena.earlier_candidates],
            "chart": charts.ratings(rows, ratings.anchor if ratings else None, bench.candidate)}


def _grader(evidence: DecidedEvidence) -> dict[str, Any] | None:
    """The hallucination audit's correctness grader: its usage and its agreement with the lexical matcher."""
    item = evidence.audit("hallucination")
    extra = (item.record.model_extra or {}) if item is not None else {}
    if not extra.get("grader"):
        return None
    agreement = [{"model": model, "check": check, "n": a.get("n"), "agreement": a.get("agreement"),
                  "kappa": a.get("kappa")}
                 for model, checks in (extra.get("grader_agreement") or {}).items() for check, a in checks.items()]
    grader = extra["grader"]
    return {"judge": grader.get("model"), "backend": grader.get("backend"), "note": grader.get("note", ""),
            "usage": _usage(extra.get("grader_usage")), "agreement": agreement}


def build(evidence: DecidedEvidence, store: RunStore) -> dict[str, Any] | None:
    bench = evidence.bench
    grader = _grader(evidence)
    if (bench is None or not bench.judges) and grader is None:
        return None
    uses = {u.task: u for u in bench.judges} if bench is not None else {}
    return {
        "candidate": bench.candidate if bench else evidence.candidate,
        "judges": _judge_rows(bench) if bench else [],
        "arena": _arena(bench, uses) if bench else None,
        "alpaca": _alpaca(bench, uses) if bench else None,
        "mt_bench": _mt_bench(bench, uses) if bench else None,
        "pairwise": _pairwise(bench, uses) if bench else None,
        "grader": grader,
        "weak": any(u.weak for u in uses.values()) or bool(grader and grader["note"]),
    }
