"""The report's statistics: cross-fold cells, paired main effects, interactions, convergence, cost."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from asc_sweep.report.records import CELL_EXCLUDED, RunRecord, hashable


@dataclass(frozen=True)
class Cell:
    """One configuration (every knob but fold and seed) over its folds."""

    params: dict[str, Any]
    values: dict[str, list[float]]  # metric -> values of the finished folds
    folds: list[Any]
    missing: list[str]  # e.g. "fold 3 failed", "fold 4 pending"

    def mean(self, metric: str) -> float:
        v = self.values.get(metric, [])
        return statistics.fmean(v) if v else math.nan

    def std(self, metric: str) -> float:
        v = self.values.get(metric, [])
        return statistics.stdev(v) if len(v) > 1 else (0.0 if v else math.nan)

    def n(self, metric: str) -> int:
        return len(self.values.get(metric, []))


def cells(
    records: Sequence[RunRecord],
    metrics: Sequence[str],
    expected_folds: Sequence[Any] | None = None,
) -> list[Cell]:
    """Group runs into configurations; folds that failed, are unfinished or were never run are
    listed as missing, never averaged."""
    groups: dict[tuple[tuple[str, str], ...], list[RunRecord]] = {}
    for r in records:
        key = tuple(sorted((k, repr(v)) for k, v in r.params.items() if k not in CELL_EXCLUDED))
        groups.setdefault(key, []).append(r)
    all_folds = (
        sorted({r.params.get("fold") for r in records}, key=_order)
        if expected_folds is None
        else list(expected_folds)
    )
    out = []
    for members in groups.values():
        done = [r for r in members if r.done]
        missing = [f"fold {r.params.get('fold')} {r.state}" for r in members if not r.done]
        present = {r.params.get("fold") for r in members}
        missing += [f"fold {f} not run" for f in all_folds if f not in present]
        values = {m: [v for r in done if (v := r.metric(m)) is not None] for m in metrics}
        params = {k: v for k, v in members[0].params.items() if k not in CELL_EXCLUDED}
        out.append(
            Cell(params, values, sorted((r.params.get("fold") for r in done), key=_order), missing)
        )
    return sorted(out, key=lambda c: [_order(v) for v in c.params.values()])


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


@dataclass(frozen=True)
class Effect:
    """One level of a factor against the reference level, paired over matched runs."""

    factor: str
    level: Any
    reference: Any
    metric: str
    diffs: list[float]
    mean: float
    ci_low: float
    ci_high: float
    p_t: float
    p_wilcoxon: float
    p_t_holm: float = math.nan
    p_wilcoxon_holm: float = math.nan

    @property
    def n(self) -> int:
        return len(self.diffs)


def paired_differences(
    records: Sequence[RunRecord], factor: str, level: Any, reference: Any, metric: str
) -> list[float]:
    """metric(level) - metric(reference) over runs that match in every other knob, fold included."""
    others = sorted({k for r in records for k in r.params if k != factor})
    by_key: dict[tuple[Any, ...], dict[str, float]] = {}
    for r in records:
        value = r.metric(metric)
        if value is None:
            continue
        side = (
            "level"
            if r.params.get(factor) == level
            else "reference"
            if r.params.get(factor) == reference
            else None
        )
        if side is not None:
            by_key.setdefault(r.cell(others), {})[side] = value
    return [pair["level"] - pair["reference"] for pair in by_key.values() if len(pair) == 2]


def paired_test(diffs: Sequence[float]) -> tuple[float, float, float, float, float]:
    """(mean, 95% CI low, high, paired t-test p, Wilcoxon signed-rank p) of differences."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) == 0:
        return (math.nan,) * 5
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan, math.nan, math.nan
    sd = float(d.std(ddof=1))
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
        return mean, mean, mean, p, (1.0 if mean == 0 else math.nan)
    half = float(stats.t.ppf(0.975, len(d) - 1)) * sd / math.sqrt(len(d))
    p_t = float(stats.ttest_1samp(d, 0.0).pvalue)
    p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return mean, mean - half, mean + half, p_t, p_w


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    valid = [(p, i) for i, p in enumerate(pvalues) if not math.isnan(p)]
    valid.sort()
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    m = len(valid)
    for rank, (p, i) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def main_effects(
    records: Sequence[RunRecord], factor: str, metric: str, reference: Any | None = None
) -> list[Effect]:
    """Each level of ``factor`` against ``reference`` (default: the first level), Holm-corrected."""
    levels = levels_of(records, factor)
    reference = levels[0] if reference is None else reference
    effects = []
    for level in levels:
        if level == reference:
            continue
        diffs = paired_differences(records, factor, level, reference, metric)
        mean, lo, hi, p_t, p_w = paired_test(diffs)
        effects.append(Effect(factor, level, reference, metric, diffs, mean, lo, hi, p_t, p_w))
    adj_t = holm([e.p_t for e in effects])
    adj_w = holm([e.p_wilcoxon for e in effects])
    return [
        replace(e, p_t_holm=a, p_wilcoxon_holm=b)
        for e, a, b in zip(effects, adj_t, adj_w, strict=True)
    ]


def levels_of(records: Sequence[RunRecord], factor: str) -> list[Any]:
    """The levels of a factor: numbers in numeric order, anything else in the order runs first
    used it (a grid's spec order)."""
    seen: list[Any] = []
    for r in records:
        v = hashable(r.params.get(factor))
        if v not in seen:
            seen.append(v)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return sorted(seen, key=_order)
    return seen


@dataclass(frozen=True)
class Pivot:
    """Mean metric for each (row level, column level), over other factors and folds."""

    row_factor: str
    col_factor: str
    rows: list[Any]
    cols: list[Any]
    values: list[list[float]]
    best: list[int | None]  # per row, the column of the best value
    higher_is_better: bool = True


def pivot(
    records: Sequence[RunRecord], rows: str, cols: str, metric: str, higher_is_better: bool = True
) -> Pivot:
    row_levels = levels_of(records, rows)
    col_levels = levels_of(records, cols)
    table = []
    best: list[int | None] = []
    for rv in row_levels:
        line = []
        for cv in col_levels:
            vals = [v for r in records if hashable(r.params.get(rows)) == rv and hashable(r.params.get(cols)) == cv
                    and (v := r.metric(metric)) is not None]  # fmt: skip
            line.append(statistics.fmean(vals) if vals else math.nan)
        table.append(line)
        finite = [(v, j) for j, v in enumerate(line) if not math.isnan(v)]
        best.append((max(finite) if higher_is_better else min(finite))[1] if finite else None)
    return Pivot(rows, cols, row_levels, col_levels, table, best, higher_is_better)


@dataclass(frozen=True)
class Curve:
    """Mean and std of a per-epoch metric across the runs of one level."""

    level: Any
    mean: list[float]
    std: list[float]
    n: list[int]


def convergence_curves(
    records: Sequence[RunRecord], factor: str, metric: str = "val/accuracy"
) -> list[Curve]:
    levels = levels_of(records, factor)
    out = []
    for level in levels:
        series = [[h[metric] for h in r.history if metric in h] for r in records
                  if r.done and hashable(r.params.get(factor)) == level]  # fmt: skip
        series = [s for s in series if s]
        length = max((len(s) for s in series), default=0)
        mean, std, n = [], [], []
        for e in range(length):
            at = [s[e] for s in series if len(s) > e]
            mean.append(statistics.fmean(at))
            std.append(statistics.stdev(at) if len(at) > 1 else 0.0)
            n.append(len(at))
        out.append(Curve(level, mean, std, n))
    return out


@dataclass(frozen=True)
class CostPoint:
    label: dict[str, Any]
    accuracy: float
    latency_ms: float
    pareto: bool = False


def cost_points(records: Sequence[RunRecord], factors: Sequence[str], metric: str = "test/accuracy",
                latency: str = "time/inference_ms_per_clip") -> list[CostPoint]:  # fmt: skip
    """Mean accuracy against mean latency for each combination of ``factors``; Pareto front marked
    (no other point is both more accurate and faster)."""
    groups: dict[tuple[Any, ...], list[RunRecord]] = {}
    for r in records:
        if r.metric(metric) is not None and r.metric(latency) is not None:
            groups.setdefault(r.cell(factors), []).append(r)
    points = []
    for key, members in groups.items():
        acc = statistics.fmean(float(r.metric(metric) or 0.0) for r in members)
        lat = statistics.fmean(float(r.metric(latency) or 0.0) for r in members)
        points.append(CostPoint(dict(zip(factors, key, strict=True)), acc, lat))
    marked = []
    for p in points:
        dominated = any(
            q.accuracy >= p.accuracy
            and q.latency_ms <= p.latency_ms
            and (q.accuracy, q.latency_ms) != (p.accuracy, p.latency_ms)
            for q in points
        )
        marked.append(CostPoint(p.label, p.accuracy, p.latency_ms, not dominated))
    return sorted(marked, key=lambda p: p.latency_ms)


@dataclass
class ReportData:
    """Everything the renderers draw from."""

    sweep_id: str
    sweep_name: str | None
    metric: str
    higher_is_better: bool
    factors: list[str]
    records: list[RunRecord]
    cells: list[Cell]
    effects: dict[str, list[Effect]] = field(default_factory=dict)
    convergence_effects: list[Effect] = field(default_factory=list)
    pivots: list[Pivot] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    curve_factor: str | None = None
    costs: list[CostPoint] = field(default_factory=list)
    cost_factors: list[str] = field(default_factory=list)


TABLE_METRICS = (
    "test/accuracy",
    "test/macro_f1",
    "test/log_loss",
    "epochs_to_90",
    "time/inference_ms_per_clip",
    "parameters",
)
LOWER_IS_BETTER = {
    "test/log_loss",
    "epochs_to_90",
    "time/inference_ms_per_clip",
    "parameters",
    "val/loss",
}


def analyse(
    records: Sequence[RunRecord],
    *,
    sweep_id: str,
    sweep_name: str | None,
    factors: Sequence[str],
    metric: str = "test/accuracy",
    references: Mapping[str, Any] | None = None,
    expected_folds: Sequence[Any] | None = None,
) -> ReportData:
    """Compute every table of the report from the runs."""
    references = references or {}
    metrics = list(dict.fromkeys([metric, *TABLE_METRICS]))
    data = ReportData(sweep_id, sweep_name, metric, metric not in LOWER_IS_BETTER, list(factors), list(records),
                      cells(records, metrics, expected_folds))  # fmt: skip
    for f in factors:
        data.effects[f] = main_effects(records, f, metric, references.get(f))
    for i, a in enumerate(factors):
        for b in factors[i + 1 :]:
            data.pivots.append(pivot(records, a, b, metric, data.higher_is_better))
    data.curve_factor = "init" if "init" in factors else (factors[0] if factors else None)
    if data.curve_factor:
        data.curves = convergence_curves(records, data.curve_factor)
        data.convergence_effects = main_effects(
            records, data.curve_factor, "epochs_to_90", references.get(data.curve_factor)
        )
    data.cost_factors = [f for f in ("arch", "sample_rate") if f in factors] or list(factors[:1])
    data.costs = cost_points(records, data.cost_factors, metric)
    return data
