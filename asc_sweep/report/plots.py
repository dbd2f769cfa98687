"""The report's plots (matplotlib, no display): convergence, effects, accuracy against latency."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from asc_sweep.report.stats import ReportData


def draw_plots(data: ReportData, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if data.curves and any(c.mean for c in data.curves):
        fig, ax = plt.subplots(figsize=(7, 4))
        for curve in data.curves:
            epochs = range(1, len(curve.mean) + 1)
            ax.plot(epochs, curve.mean, label=f"{data.curve_factor}={curve.level}")
            lo = [m - s for m, s in zip(curve.mean, curve.std, strict=True)]
            hi = [m + s for m, s in zip(curve.mean, curve.std, strict=True)]
            ax.fill_between(epochs, lo, hi, alpha=0.2)
        ax.set(
            xlabel="epoch",
            ylabel="validation accuracy",
            title=f"Convergence by {data.curve_factor} (mean ± std)",
        )
        ax.legend()
        paths.append(_save(fig, folder / "convergence.png"))
    for factor, effects in data.effects.items():
        shown = [e for e in effects if not math.isnan(e.mean)]
        if not shown:
            continue
        fig, ax = plt.subplots(figsize=(6, 0.6 + 0.5 * len(shown)))
        ys = range(len(shown))
        lows = [e.mean - e.ci_low if not math.isnan(e.ci_low) else 0 for e in shown]
        highs = [e.ci_high - e.mean if not math.isnan(e.ci_high) else 0 for e in shown]
        ax.errorbar([e.mean for e in shown], list(ys), xerr=[lows, highs], fmt="o", capsize=4)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(list(ys), [f"{e.level}" for e in shown])
        ax.set(
            xlabel=f"Δ {data.metric} vs {factor}={shown[0].reference} (95% CI)",
            title=f"Main effect of {factor}",
        )
        paths.append(_save(fig, folder / f"effect-{_slug(factor)}.png"))
    if data.costs:
        fig, ax = plt.subplots(figsize=(7, 4))
        for p in data.costs:
            ax.scatter(p.latency_ms, p.accuracy, color="tab:red" if p.pareto else "tab:blue")
            ax.annotate(
                ", ".join(str(v) for v in p.label.values()), (p.latency_ms, p.accuracy), fontsize=7
            )
        front = [p for p in data.costs if p.pareto]
        ax.plot(
            [p.latency_ms for p in front],
            [p.accuracy for p in front],
            color="tab:red",
            lw=1,
            label="Pareto front",
        )
        ax.set(
            xlabel="inference latency per clip (ms, batch 1)",
            ylabel=data.metric,
            title="Accuracy against latency",
        )
        ax.legend()
        paths.append(_save(fig, folder / "cost.png"))
    return paths


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)
