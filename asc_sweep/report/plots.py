"""The report's plots (matplotlib, no display), one per finding: forest plots of every effect
and interaction contrast, critical-difference diagrams, heat maps of each pair of factors,
scatter plots of knobs sampled from a range, per-class accuracy, confusion matrices,
validation curves, and accuracy against latency. Each is named after the section it goes
with."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from asc_sweep.report.cv import Ranking
from asc_sweep.report.findings import replicates
from asc_sweep.report.stats import (
    ClassTable,
    Curve,
    Effect,
    Interaction,
    Pivot,
    ReportData,
    SampledKnob,
)

WIDTH = 7.5  # inches at 110 dpi: 825 px, half of a 1280 px page with room to spare


def draw_plots(data: ReportData, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    every = [e for effects in data.effects.values() for e in effects if not math.isnan(e.mean)]
    if every:
        paths.append(forest(every, data.metric, folder / "forest.png"))
    for factor, ranking in data.rankings.items():
        paths.append(cd_diagram(factor, ranking, folder / f"cd-{_slug(factor)}.png"))
    found = [i for pair in data.interactions.values() for i in pair if not math.isnan(i.mean)]
    if found:
        paths.append(interaction_forest(found, data.metric, folder / "interactions.png"))
    for k in data.sampled:
        if k.points:
            paths.append(scatter(k, data.metric, folder / f"sampled-{_slug(k.knob)}.png"))
    for p in data.pivots:
        paths.append(
            heat_map(
                p, data.metric, folder / f"pivot-{_slug(p.row_factor)}-{_slug(p.col_factor)}.png"
            )
        )
    for t in data.class_tables:
        paths.append(class_bars(t, folder / f"classes-{_slug(t.factor or 'all')}.png"))
    for level, (classes, matrix) in data.confusions.items():
        title = f"{data.confusion_factor}={level}" if data.confusion_factor else "all runs"
        paths.append(
            confusion(classes, matrix, title, folder / f"confusion-{_slug(str(level))}.png")
        )
    for factor, curves in data.curve_sets.items():
        if any(c.mean for c in curves):
            paths.append(curve_plot(factor, curves, folder / f"convergence-{_slug(factor)}.png"))
    if data.costs:
        paths.append(cost(data, folder / "cost.png"))
    return paths


def forest(effects: list[Effect], metric: str, path: Path) -> Path:
    """Every level against its reference: mean difference and 95% interval, one row each."""
    rows = [(f"{e.factor}={e.level} vs {e.reference} (n={e.n})", e.mean, e.ci_low, e.ci_high)
            for e in effects]  # fmt: skip
    test = (
        "paired t over seeds" if effects and effects[0].unit == "seed" else "corrected t over folds"
    )
    return _intervals(rows, f"Δ {metric} (95% CI, {test})", "Main effects", path)


def interaction_forest(found: list[Interaction], metric: str, path: Path) -> Path:
    """Every interaction contrast: how much a level's effect changes with the other factor's
    level, with its 95% interval; zero is no interaction."""
    rows = [(f"{i.factor}={i.level} vs {i.reference}\nx {i.other}={i.held} vs {i.held_reference} "
             f"(n={i.n})", i.mean, i.ci_low, i.ci_high) for i in found]  # fmt: skip
    xlabel = f"change of the effect on {metric} (95% CI)"
    return _intervals(rows, xlabel, "Interactions", path, row_inches=0.6)


def _intervals(rows: list[tuple[str, float, float, float]], xlabel: str, title: str,
               path: Path, row_inches: float = 0.45) -> Path:  # fmt: skip
    """A forest plot: one row per (label, mean, low, high); a point where there is no interval."""
    fig, ax = plt.subplots(figsize=(WIDTH, 1.0 + row_inches * len(rows)))
    ys = np.arange(len(rows))[::-1]
    for y, (_, mean, low, high) in zip(ys, rows, strict=True):
        lo = low if not math.isnan(low) else mean
        hi = high if not math.isnan(high) else mean
        ax.plot([lo, hi], [y, y], color="tab:blue", lw=2)
        ax.plot(mean, y, "o", color="tab:blue")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(ys, [label for label, *_ in rows], fontsize=8)
    ax.set(xlabel=xlabel, title=title)
    return _save(fig, path)


def cd_diagram(factor: str, r: Ranking, path: Path) -> Path:
    """Demšar's critical-difference diagram: mean ranks on an axis, the CD as a bar."""
    k = len(r.levels)
    fig, ax = plt.subplots(figsize=(WIDTH, 1.2 + 0.3 * k))
    ax.set_xlim(1, k)
    ax.set_ylim(0, k + 1.5)
    ax.invert_xaxis()  # rank 1 (best) on the right, as Demšar draws it
    ax.axhline(k + 0.5, color="black", lw=1)
    order = sorted(zip(r.ranks, r.levels, strict=True), key=lambda x: x[0])
    for i, (rank, level) in enumerate(order):
        y = k - i
        ax.plot([rank, rank], [y, k + 0.5], color="black", lw=0.8)
        ax.text(rank, y - 0.1, f"{level} ({rank:.2f})", ha="center", va="top", fontsize=8)
    if not math.isnan(r.critical_difference):
        ax.plot([1, 1 + r.critical_difference], [k + 1.1, k + 1.1], color="tab:red", lw=3)
        ax.text(1 + r.critical_difference / 2, k + 1.25, f"CD = {r.critical_difference:.2f}",
                ha="center", fontsize=8, color="tab:red")  # fmt: skip
    ax.set_yticks([])
    ax.set(xlabel=f"mean rank over {replicates(r)} (1 = best)", title=f"Ranking of {factor}")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return _save(fig, path)


def scatter(k: SampledKnob, metric: str, path: Path) -> Path:
    """A sampled knob's value against the metric, one point per run (a log axis where the
    values are positive and span more than two decades, as learning rates do)."""
    xs, ys = zip(*k.points, strict=True)
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 3.2))
    ax.plot(xs, ys, "o", color="tab:blue", alpha=0.6, markersize=4)
    if min(xs) > 0 and max(xs) / min(xs) > 100:
        ax.set_xscale("log")
    rho = "" if math.isnan(k.rho) else f" (Spearman's rho {k.rho:+.2f})"
    label = f"{metric} vs its fold's mean" if k.centred else metric
    ax.set(xlabel=k.knob, ylabel=label, title=f"{metric} against {k.knob}{rho}")
    return _save(fig, path)


def heat_map(p: Pivot, metric: str, path: Path) -> Path:
    values = np.asarray(p.values, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(min(WIDTH, 2 + 1.1 * len(p.cols)), 1.5 + 0.5 * len(p.rows)))
    image = ax.imshow(values, cmap="viridis" if p.higher_is_better else "viridis_r", aspect="auto")
    ax.set_xticks(range(len(p.cols)), [str(c) for c in p.cols], fontsize=8)
    ax.set_yticks(range(len(p.rows)), [str(r) for r in p.rows], fontsize=8)
    for i in range(len(p.rows)):
        for j in range(len(p.cols)):
            if not math.isnan(values[i, j]):
                mark = " *" if p.best[i] == j else ""
                ax.text(j, i, f"{values[i, j]:.3f}{mark}", ha="center", va="center", fontsize=8,
                        color="white")  # fmt: skip
    ax.set(
        xlabel=p.col_factor, ylabel=p.row_factor, title=f"{metric}: {p.row_factor} x {p.col_factor}"
    )
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _save(fig, path)


def class_bars(t: ClassTable, path: Path) -> Path:
    """Per-class accuracy, one bar per level: which classes a level loses."""
    values = np.asarray(t.values, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    width = 0.8 / max(1, len(t.levels))
    x = np.arange(len(t.classes))
    for j, level in enumerate(t.levels):
        label = f"{t.factor}={level}" if t.factor else str(level)
        ax.bar(x + j * width - 0.4 + width / 2, values[:, j], width, label=label)
    ax.set_xticks(x, t.classes, rotation=30, ha="right", fontsize=8)
    ax.set(
        ylabel="test accuracy",
        ylim=(0, 1),
        title="Per-class accuracy" + (f" by {t.factor}" if t.factor else ""),
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion(classes: list[str], matrix: np.ndarray, title: str, path: Path) -> Path:
    size = min(WIDTH, 2.5 + 0.45 * len(classes))
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set(xlabel="predicted", ylabel="truth", title=f"Confusion, {title} (summed over folds)")
    return _save(fig, path)


def curve_plot(factor: str, curves: list[Curve], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(WIDTH, 3.5))
    for curve in curves:
        epochs = range(1, len(curve.mean) + 1)
        ax.plot(epochs, curve.mean, label=f"{factor}={curve.level}")
        lo = [m - s for m, s in zip(curve.mean, curve.std, strict=True)]
        hi = [m + s for m, s in zip(curve.mean, curve.std, strict=True)]
        ax.fill_between(epochs, lo, hi, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="validation accuracy",
           title=f"Validation accuracy by {factor} (mean ± std over runs)")  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


def cost(data: ReportData, path: Path) -> Path:
    """Accuracy against latency; labels offset and numbered in a legend so none overlap."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    for i, p in enumerate(data.costs, start=1):
        ax.scatter(p.latency_ms, p.accuracy, color="tab:red" if p.pareto else "tab:blue", zorder=3)
        ax.annotate(str(i), (p.latency_ms, p.accuracy), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)  # fmt: skip
    front = [p for p in data.costs if p.pareto]
    ax.plot([p.latency_ms for p in front], [p.accuracy for p in front], color="tab:red", lw=1,
            label="Pareto front")  # fmt: skip
    key = "\n".join(f"{i}: " + ", ".join(f"{k}={v}" for k, v in p.label.items())
                    for i, p in enumerate(data.costs, start=1))  # fmt: skip
    ax.text(1.02, 1.0, key, transform=ax.transAxes, va="top", fontsize=7, family="monospace")
    ax.set(xlabel="inference latency per clip (ms, batch 1)", ylabel=data.metric,
           title="Accuracy against latency")  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)
