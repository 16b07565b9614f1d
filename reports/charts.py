"""Charts for the report, drawn with matplotlib as inline SVG: no JavaScript, no network, same bytes every time.

Text is drawn as paths (``svg.fonttype: path``), so a model name in a chart cannot inject markup; labels are
plain text, never mathtext or TeX (``text.parse_math`` off), so a name like ``$x^$`` is drawn as written instead
of failing to parse; and the SVG ids are salted with a constant so the file is byte-stable.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

_STYLE = {"svg.hashsalt": "nift-gate", "svg.fonttype": "path", "text.parse_math": False, "text.usetex": False,
          "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
PALETTE = ("#1f6feb", "#8250df", "#bf8700", "#1a7f37", "#cf222e", "#57606a")


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


def bench_deltas(rows: Sequence[dict]) -> str | None:
    """One row per (metric, baseline): candidate - baseline with its paired CI; dashed line at -margin."""
    if not rows:
        return None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
        for i, row in enumerate(reversed(rows)):
            colour = {"fail": PALETTE[4], "inconclusive": PALETTE[2]}.get(row["status"], PALETTE[0])
            low = row["difference"] - row["ci_low"] if row["ci_low"] is not None else 0
            high = row["ci_high"] - row["difference"] if row["ci_high"] is not None else 0
            ax.errorbar(row["difference"], i, xerr=[[low], [high]], fmt="o", color=colour, capsize=3)
            if row.get("margin") is not None:
                sign = -1 if row["higher_is_better"] else 1
                ax.plot([sign * row["margin"]] * 2, [i - 0.35, i + 0.35], color=PALETTE[4], linestyle="--", lw=1)
        ax.axvline(0, color="#57606a", lw=0.8)
        ax.set_yticks(range(len(rows)), [f"{r['label']} vs {r['baseline']}" for r in reversed(rows)])
        ax.set_xlabel("candidate - baseline (dot), 95% paired CI; red dashes: non-inferiority margin")
        return _svg(fig)


def ratings(rows: Sequence[dict], anchor: str | None, highlight: str) -> str | None:
    """One line per model (rows of ``model``, ``rating``, ``ci_low``, ``ci_high``, best first): its arena rating
    (dot) and bootstrap CI (bar), ``highlight`` (the candidate) in its own colour, the anchor's 1000 dashed."""
    if not rows:
        return None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
        for i, row in enumerate(reversed(rows)):
            low = row["rating"] - row["ci_low"] if row["ci_low"] is not None else 0
            high = row["ci_high"] - row["rating"] if row["ci_high"] is not None else 0
            colour = PALETTE[1] if row["model"] == highlight else PALETTE[0]
            ax.errorbar(row["rating"], i, xerr=[[low], [high]], fmt="o", color=colour, capsize=3)
        ax.axvline(1000, color="#57606a", lw=0.8, linestyle="--")
        ax.set_yticks(range(len(rows)), [r["model"] for r in reversed(rows)])
        ax.set_xlabel(f"arena rating (Elo scale; {anchor or 'the mean'} = 1000), 95% CI resampling questions")
        return _svg(fig)


def value_bars(groups: dict[str, dict[str, tuple[float, float | None, float | None]]], ylabel: str) -> str | None:
    """Grouped bars: group (metric) -> model -> (value, ci_low, ci_high)."""
    if not groups:
        return None
    models = sorted({m for per in groups.values() for m in per})
    width = 0.8 / max(1, len(models))
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 3))
        for j, model in enumerate(models):
            xs, ys, errs = [], [], [[], []]
            for i, per in enumerate(groups.values()):
                if model not in per:
                    continue
                value, low, high = per[model]
                xs.append(i + j * width)
                ys.append(value)
                errs[0].append(value - low if low is not None else 0)
                errs[1].append(high - value if high is not None else 0)
            ax.bar(xs, ys, width, yerr=errs, capsize=2, color=PALETTE[j % len(PALETTE)], label=model)
        ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(groups))], list(groups), rotation=15,
                      ha="right")
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize=8)
        return _svg(fig)


def distributions(per_model: dict[str, list[float]], xlabel: str) -> str | None:
    """Box plots of per-prompt scores, one per model."""
    per_model = {m: v for m, v in per_model.items() if v}
    if not per_model:
        return None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(per_model) + 1.2))
        ax.boxplot(list(per_model.values()), orientation="horizontal", tick_labels=list(per_model), widths=0.5)
        ax.set_xlabel(xlabel)
        return _svg(fig)


def review_outcomes(bars: dict[str, float], title: str) -> str | None:
    if not bars:
        return None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(bars) + 1.2))
        names = list(bars)
        ax.barh(range(len(names)), [bars[n] for n in names], color=PALETTE[3])
        ax.set_yticks(range(len(names)), names)
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize=9)
        return _svg(fig)


def trend(panels: Sequence[dict]) -> str | None:
    """One panel per gated metric across the registry's decisions (oldest left): the candidate's value with its CI
    (the report's own candidate drawn larger, black-edged), the rule's bound as red dashes where the rule judged
    the value itself (ceiling, floor, threshold) and, for a non-inferiority rule, each baseline's value less the
    margin as orange dashes (the rule judges the paired CI of the difference, so the dashes are a guide).

    A panel: ``{"label", "unit", "ticks": [str], "points": [{"x", "value", "ci_low", "ci_high", "current",
    "status"}], "bounds": [(x, bound)], "relative": [(x, bound)]}``."""
    panels = [p for p in panels if p["points"]]
    if not panels:
        return None
    from matplotlib.ticker import PercentFormatter

    colours = {"fail": PALETTE[4], "inconclusive": PALETTE[2], "pending": PALETTE[5]}
    with plt.rc_context(_STYLE):
        ticks = panels[0]["ticks"]
        fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.45 * len(panels) + 0.6), sharex=True, squeeze=False)
        for ax, panel in zip(axes[:, 0], panels, strict=True):
            points = panel["points"]
            xs = [p["x"] for p in points]
            ax.plot(xs, [p["value"] for p in points], color=PALETTE[0], lw=0.8, alpha=0.6)
            for p in points:
                low = p["value"] - p["ci_low"] if p.get("ci_low") is not None else 0
                high = p["ci_high"] - p["value"] if p.get("ci_high") is not None else 0
                ax.errorbar(p["x"], p["value"], yerr=[[max(0, low)], [max(0, high)]], fmt="o",
                            color=colours.get(p.get("status"), PALETTE[0]), capsize=3,
                            markersize=8 if p["current"] else 5, markeredgecolor="#1f2328" if p["current"] else None)
            for x, bound in panel.get("bounds", []):
                ax.plot([x - 0.3, x + 0.3], [bound] * 2, color=PALETTE[4], linestyle="--", lw=1.2)
            for x, bound in panel.get("relative", []):
                ax.plot([x - 0.3, x + 0.3], [bound] * 2, color=PALETTE[2], linestyle=":", lw=1.2)
            if panel.get("unit") == "rate":
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            ax.set_title(panel["label"], fontsize=9, loc="left")
        axes[-1, 0].set_xticks(range(len(ticks)), ticks, rotation=20, ha="right")
        axes[-1, 0].set_xlim(-0.6, len(ticks) - 0.4)
        fig.text(0.01, 0.0, "dot: candidate's value (95% CI); large black-edged: this report's candidate; red dashes: "
                 "the rule's bound; orange dots: baseline value less the margin", fontsize=7, color="#57606a")
        return _svg(fig)


def loss_curves(curves: Sequence[dict]) -> str | None:
    """Training loss (line) and held-out loss (dashed, dots) against the step, one colour per checkpoint; a ring
    marks the step whose weights were kept.

    A curve: ``{"label", "train": [(step, loss)], "eval": [(step, loss)], "kept": (step, loss) | None}``."""
    curves = [c for c in curves if c["train"] or c["eval"]]
    if not curves:
        return None
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7, 3))
        for i, curve in enumerate(curves):
            colour = PALETTE[i % len(PALETTE)]
            if curve["train"]:
                ax.plot(*zip(*curve["train"]), color=colour, lw=1, alpha=0.7, label=f"{curve['label']}: train")
            if curve["eval"]:
                ax.plot(*zip(*curve["eval"]), color=colour, lw=1.4, linestyle="--", marker="o", markersize=3,
                        label=f"{curve['label']}: held out")
            if curve.get("kept"):
                ax.plot(*curve["kept"], marker="o", markersize=10, markerfacecolor="none", markeredgecolor="#1f2328",
                        linestyle="none")
        ax.set_xlabel("optimizer step (ring: the step whose weights were kept)")
        ax.set_ylabel("loss per assistant token")
        ax.legend(frameon=False, fontsize=7)
        return _svg(fig)
