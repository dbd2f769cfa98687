"""The report's statistics: cross-fold cells, paired main effects, interactions, convergence, cost."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from asc_sweep.report.cv import (
    BayesVerdict,
    Ranking,
    corrected_t,
    correlated_bayes,
    friedman_nemenyi,
    variance,
)
from asc_sweep.report.records import (
    CELL_EXCLUDED,
    RunRecord,
    environments_differ,
    finite,
    hashable,
)
from asc_sweep.sweep import environment


@dataclass(frozen=True)
class Cell:
    """One configuration (every knob but fold and seed) over its folds."""

    params: dict[str, Any]
    values: dict[str, list[float]]  # metric -> per finished fold, the mean of its seeds
    folds: list[Any]
    missing: list[str]  # e.g. "fold 3 failed", "fold 4 pending"
    # In a search whose draws ran on different folds: the report's metric against the mean
    # of every run of the search on the same fold, averaged over this configuration's runs.
    relative: float = math.nan

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        """What ``configuration`` gives each of its runs."""
        return _knobs_key(self.params)

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
    include_stopped: bool = False,
) -> list[Cell]:
    """Group runs into configurations; folds that failed, are unfinished, were stopped by the
    controller or never run are listed as missing (with why), never averaged. A fold's value is
    the mean of its finished seeds', so that n and the spread count folds, as the tests do."""
    groups: dict[tuple[tuple[str, str], ...], list[RunRecord]] = {}
    for r in records:
        groups.setdefault(configuration(r), []).append(r)
    all_folds = (
        sorted({r.params.get("fold") for r in records}, key=_order)
        if expected_folds is None
        else list(expected_folds)
    )
    seeds = len({hashable(r.params.get("seed")) for r in records}) > 1
    # The tests' unit, decided as they decide it: on the runs that count.
    replicate = replicate_of(
        replication_unit([r for r in records if r.exclusion(include_stopped) is None])
    )

    def run(r: RunRecord) -> str:
        return f"fold {r.params.get('fold')}" + (f" seed {r.params.get('seed')}" if seeds else "")

    out = []
    for members in groups.values():
        done = [r for r in members if r.exclusion(include_stopped) is None]
        missing = [f"{run(r)} {why}" for r in members
                   if (why := r.exclusion(include_stopped)) is not None]  # fmt: skip
        present = {r.params.get("fold") for r in members}
        missing += [f"fold {f} not run" for f in all_folds if f not in present]
        missing += [f"{run(r)} finished without a finite {metrics[0]} "
                    f"({_shown(r.summary.get(metrics[0]))})"
                    for r in done if metrics and r.metric(metrics[0]) is None]  # fmt: skip
        values = {m: replicate_means(done, m, replicate) for m in metrics}
        params = {k: v for k, v in members[0].params.items() if k not in CELL_EXCLUDED}
        folds = sorted({r.params.get("fold") for r in done}, key=_order)
        out.append(Cell(params, values, folds, missing))
    return sorted(out, key=lambda c: [_order(v) for v in c.params.values()])


def configuration(r: RunRecord) -> tuple[tuple[str, str], ...]:
    """The key of a run's configuration: every knob but fold and seed."""
    return _knobs_key({k: v for k, v in r.params.items() if k not in CELL_EXCLUDED})


def _knobs_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def fold_centres(records: Sequence[RunRecord], metric: str) -> dict[Any, float]:
    """The mean ``metric`` of the runs on each fold; empty where they share one fold."""
    by_fold: dict[Any, list[float]] = {}
    for r in records:
        if (value := r.metric(metric)) is not None:
            by_fold.setdefault(fold_of(r), []).append(value)
    return {f: statistics.fmean(vs) for f, vs in by_fold.items()} if len(by_fold) > 1 else {}


def relative_to_folds(
    records: Sequence[RunRecord], metric: str
) -> dict[tuple[tuple[str, str], ...], float]:
    """Each configuration's ``metric`` against the folds it ran on: the mean, over its runs,
    of the run's value minus the mean of every run (of ``records``) on the same fold. Empty
    where the runs share one fold. A search draws each configuration on one fold, and folds
    differ more than most configurations do: ordered by the raw figure, the best of a search
    were the draws that landed on its easiest fold."""
    centre = fold_centres(records, metric)
    if not centre:
        return {}
    out: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for r in records:
        if (value := r.metric(metric)) is not None:
            out.setdefault(configuration(r), []).append(value - centre[fold_of(r)])
    return {key: statistics.fmean(vs) for key, vs in out.items()}


def replicate_means(
    runs: Sequence[RunRecord], metric: str, replicate: Callable[[RunRecord], Any] | None = None
) -> list[float]:
    """``metric`` per replicate (fold, by default), in order: the mean of its runs (a fold's
    seeds)."""
    key = replicate or fold_of
    by_rep: dict[Any, list[float]] = {}
    for r in runs:
        if (value := r.metric(metric)) is not None:
            by_rep.setdefault(key(r), []).append(value)
    return [statistics.fmean(by_rep[k]) for k in sorted(by_rep, key=_order)]


def _best_first(mean: float, higher_is_better: bool) -> tuple[bool, float]:
    """Sort key: the best mean first, configurations without one last."""
    if math.isnan(mean):
        return (True, 0.0)
    return (False, -mean if higher_is_better else mean)


def _shown(value: Any) -> str:
    """A logged value as a reader should see it: ``NaN``, ``none logged``, short text."""
    if value is None:
        return "none logged"
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:21]}..."


def _order(value: Any) -> tuple[int, float, str]:
    """Numbers in numeric order, everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


@dataclass(frozen=True)
class Effect:
    """One level of a factor against the reference level, replicated over folds.

    ``diffs`` holds one difference per fold (``replicates``): the mean of the matched
    differences (runs alike in every other knob, seeds included) within that fold (or, where
    only one fold ran, one per seed: ``unit``). The interval and ``p`` are the corrected
    resampled t-test's; ``p_t`` and ``p_wilcoxon`` are the
    plain paired tests over the same folds, kept as secondary columns; ``bayes`` is the
    correlated t-test's verdict. A simple effect holds the factors in ``within`` at one level
    each.
    """

    factor: str
    level: Any
    reference: Any
    metric: str
    diffs: list[float]
    replicates: list[Any]
    pairs: int
    mean: float
    ci_low: float
    ci_high: float
    p: float
    p_t: float
    p_wilcoxon: float
    bayes: BayesVerdict
    within: dict[str, Any] = field(default_factory=dict)
    mixed_pairs: int = 0  # pairs whose runs recorded different environments
    seed_share: float = math.nan  # of the folds' spread, the seeds' noise (``seed_share``)
    unit: str = "fold"  # what the replicates are (``replication_unit``): fold, or seed
    p_holm: float = math.nan
    p_t_holm: float = math.nan
    p_wilcoxon_holm: float = math.nan

    @property
    def n(self) -> int:
        """Replicates: folds (seeds of the one fold, where only one ran)."""
        return len(self.diffs)


def fold_of(r: RunRecord) -> Any:
    """The unit of replication of a run: its fold, whatever its seed.

    Seeds are not replicates of a fold. Every run of a fold is tested on the same clips and
    trained on nearly the same ones (a seed moves only the validation part it carves out; the
    folds are the dataset's own, never drawn again), so what the fold's split does to a
    difference is shared by all its seeds; seeds only average out the training's own noise
    within the fold. Counted as fold x seed replicates (repeated
    cross-validation, whose repetitions draw new partitions), 3 seeds over 4 folds rejected a
    true null in 15.7% of simulated sweeps where the split moves a difference more than a seed
    does; averaged within each fold first, in 4.5% (``tests/test_cv_stats.py``).
    """
    return hashable(r.params.get("fold"))


def seed_of(r: RunRecord) -> Any:
    return hashable(r.params.get("seed"))


def replication_unit(records: Sequence[RunRecord]) -> str:
    """``fold``; or ``seed`` where every run is on one fold and seeds vary. A dataset with one
    official split (TAU 2019 and 2020 development sets) has nothing else to replicate over:
    the seeds then tell a difference from the training's own noise on that split, which is
    all such a sweep can tell (not how the difference carries to other recordings)."""
    one_fold = len({fold_of(r) for r in records}) == 1
    return "seed" if one_fold and len({seed_of(r) for r in records}) > 1 else "fold"


def replicate_of(unit: str) -> Callable[[RunRecord], Any]:
    return seed_of if unit == "seed" else fold_of


def seeds_of(records: Sequence[RunRecord]) -> tuple[int, int]:
    """How many seeds a configuration ran with in a fold: (fewest, most); (1, 1) without
    swept seeds."""
    seeds: dict[tuple[Any, ...], set[Any]] = {}
    for r in records:
        key = r.cell(sorted(k for k in r.params if k != "seed"))  # the fold included
        seeds.setdefault(key, set()).add(hashable(r.params.get("seed")))
    counts = [len(s) for s in seeds.values()] or [1]
    return min(counts), max(counts)


@dataclass(frozen=True)
class Pair:
    """Two runs alike in every other knob, one at the level, one at the reference."""

    fold: Any
    seed: Any
    diff: float  # metric(level) - metric(reference)
    mixed: bool  # the two runs recorded different environments


def matched_pairs(
    records: Sequence[RunRecord],
    factor: str,
    level: Any,
    reference: Any,
    metric: str,
    within: Mapping[str, Any] | None = None,
) -> list[Pair]:
    """Every pair of runs alike in every other knob, seed included (``within`` held), in the
    runs' order: metric(level) - metric(reference), which ``by_replicate`` averages within
    each fold."""
    others = sorted({k for r in records for k in r.params if k != factor})
    within = within or {}
    by_key: dict[tuple[Any, ...], dict[str, tuple[float, RunRecord]]] = {}
    for r in records:
        value = r.metric(metric)
        if value is None or any(hashable(r.params.get(k)) != v for k, v in within.items()):
            continue
        here = hashable(r.params.get(factor))
        side = "level" if here == level else "reference" if here == reference else None
        if side is not None:
            cell = r.cell(others)
            by_key.setdefault(cell, {})[side] = (value, r)
    out = []
    for pair in by_key.values():
        if len(pair) == 2:
            (a, run_a), (b, run_b) = pair["level"], pair["reference"]
            seed = hashable(run_a.params.get("seed"))
            out.append(Pair(fold_of(run_a), seed, a - b, environments_differ(run_a, run_b)))
    return out


def by_replicate(pairs: Sequence[Pair], unit: str = "fold") -> tuple[list[Any], list[float]]:
    """The replicates (folds, or seeds: ``replication_unit``) in order, and each one's mean
    difference over its pairs."""
    groups: dict[Any, list[float]] = {}
    for p in pairs:
        groups.setdefault(p.seed if unit == "seed" else p.fold, []).append(p.diff)
    order = sorted(groups, key=_order)
    return order, [statistics.fmean(groups[k]) for k in order]


def seed_share(pairs: Sequence[Pair]) -> float:
    """How much of the spread of the folds' mean differences the seeds' own noise accounts
    for: the pooled variance between seeds within a fold (each seed's difference the mean of
    its pairs there), divided by the seeds a fold averages, over the variance of the fold
    means; at most 1. NaN without two seeds in some fold or without spread between folds.

    Where it is small, a fold's split moves the difference more than seeds do, and only more
    folds narrow the interval; where it is large, more seeds narrow it too."""
    by_seed: dict[tuple[Any, Any], list[float]] = {}
    for p in pairs:
        by_seed.setdefault((p.fold, p.seed), []).append(p.diff)
    seeds: dict[Any, list[float]] = {}
    for (fold, _), diffs in by_seed.items():
        seeds.setdefault(fold, []).append(statistics.fmean(diffs))
    within = [v for v in seeds.values() if len(v) > 1]
    dof = sum(len(v) - 1 for v in within)
    means = [statistics.fmean(v) for v in seeds.values()]
    if not dof or len(means) < 2:
        return math.nan
    pooled = sum(statistics.variance(v) * (len(v) - 1) for v in within) / dof
    between = variance(np.asarray(means))
    if between == 0.0:
        return math.nan
    per_fold = statistics.fmean(len(v) for v in seeds.values())
    return min(1.0, pooled / per_fold / between)


def paired_tests(diffs: Sequence[float]) -> tuple[float, float]:
    """Plain paired t-test and Wilcoxon signed-rank p over replicates; NaN where undefined."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) < 2 or variance(d) == 0.0:
        return math.nan, math.nan
    p_t = float(stats.ttest_1samp(d, 0.0).pvalue)
    p_w = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else math.nan
    return p_t, p_w


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


def test_train_ratio(records: Sequence[RunRecord]) -> float:
    """n_test / n_train of a fold, from the runs' clip counts (the corrected tests' term);
    1/(k-1) for k folds where runs do not record them; 0 with a single fold (no other fold's
    training set to overlap: the test over its seeds is the plain paired t)."""
    k = len({hashable(r.params.get("fold")) for r in records})
    if k < 2:
        return 0.0
    ratios = [
        test / train
        for r in records
        if (test := r.metric("data/test_clips")) is not None and test > 0
        and (train := r.metric("data/train_clips")) is not None and train > 0
    ]  # fmt: skip
    if ratios:
        return statistics.fmean(ratios)
    return 1.0 / (k - 1)


def effect(records: Sequence[RunRecord], factor: str, level: Any, reference: Any, metric: str, *,
           ratio: float, rope: float, higher_is_better: bool,
           within: Mapping[str, Any] | None = None) -> Effect:  # fmt: skip
    """One level against the reference, replicated over folds (seeds, where only one ran)."""
    pairs = matched_pairs(records, factor, level, reference, metric, within)
    unit = replication_unit(records)
    reps, diffs = by_replicate(pairs, unit)
    t = corrected_t(diffs, ratio)
    p_t, p_w = paired_tests(diffs)
    verdict = correlated_bayes(diffs, ratio, rope, higher_is_better)
    return Effect(factor, level, reference, metric, diffs, reps, len(pairs), t.mean, t.ci_low,
                  t.ci_high, t.p, p_t, p_w, verdict, dict(within or {}),
                  mixed_pairs=sum(p.mixed for p in pairs), seed_share=seed_share(pairs),
                  unit=unit)  # fmt: skip


def with_holm(effects: list[Effect]) -> list[Effect]:
    """Holm's correction across the levels of one factor (one family)."""
    adj = [holm([getattr(e, name) for e in effects]) for name in ("p", "p_t", "p_wilcoxon")]
    return [
        replace(e, p_holm=a, p_t_holm=b, p_wilcoxon_holm=c)
        for e, a, b, c in zip(effects, *adj, strict=True)
    ]


def main_effects(
    records: Sequence[RunRecord],
    factor: str,
    metric: str,
    reference: Any | None = None,
    *,
    ratio: float | None = None,
    rope: float = 0.01,
    higher_is_better: bool = True,
) -> list[Effect]:
    """Each level of ``factor`` against ``reference`` (default: the first level), Holm-corrected."""
    levels = levels_of(records, factor)
    if not levels:  # no run of the factor counts (all failed, or still running)
        return []
    reference = levels[0] if reference is None else reference
    ratio = test_train_ratio(records) if ratio is None else ratio
    return with_holm([
        effect(records, factor, level, reference, metric, ratio=ratio, rope=rope,
               higher_is_better=higher_is_better)
        for level in levels if level != reference
    ])  # fmt: skip


def simple_effects(
    records: Sequence[RunRecord],
    factor: str,
    metric: str,
    reference: Any | None = None,
    *,
    factors: Sequence[str],
    ratio: float | None = None,
    rope: float = 0.01,
    higher_is_better: bool = True,
) -> list[Effect]:
    """The effect of ``factor`` within each level of every other swept factor (e.g. He init
    per architecture); Holm-corrected within each (factor, other factor's level) family."""
    levels = levels_of(records, factor)
    if not levels:  # no run of the factor counts (all failed, or still running)
        return []
    reference = levels[0] if reference is None else reference
    ratio = test_train_ratio(records) if ratio is None else ratio
    out: list[Effect] = []
    for other in factors:
        if other == factor:
            continue
        for held in levels_of(records, other):
            out += with_holm([
                effect(records, factor, level, reference, metric, ratio=ratio, rope=rope,
                       higher_is_better=higher_is_better, within={other: held})
                for level in levels if level != reference
            ])  # fmt: skip
    return out


@dataclass(frozen=True)
class Interaction:
    """How much one level's effect changes between two levels of another factor, replicated over
    folds.

    Per fold, the 2x2 interaction contrast ``(level - reference | other=held) - (level -
    reference | other=held_reference)``: the same number as the effect of ``held`` against
    ``held_reference`` at ``level`` minus at ``reference``. The interval and ``p`` are the
    corrected resampled t-test's, ``p_holm`` Holm's across the pair of factors' contrasts.
    ``at_held`` and ``at_reference`` are the two simple effects over the same replicates.
    """

    factor: str
    level: Any
    reference: Any
    other: str
    held: Any
    held_reference: Any
    metric: str
    diffs: list[float]
    replicates: list[Any]
    at_held: float
    at_reference: float
    mean: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float = math.nan
    unit: str = "fold"  # the replicates: folds, or seeds of the one fold

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def reverses(self) -> bool:
        """The two simple effects point opposite ways (their means differ in sign)."""
        return self.at_held * self.at_reference < 0


def interactions(
    simple: Sequence[Effect], factor: str, other: str, held_reference: Any, ratio: float
) -> list[Interaction]:
    """Every level of ``factor`` (against its reference) by every level of ``other`` (against
    ``held_reference``), from ``factor``'s simple effects within ``other``'s levels: one
    contrast per replicate that both simple effects have. Holm-corrected across them all."""
    within = [e for e in simple if e.factor == factor and set(e.within) == {other}]
    out: list[Interaction] = []
    for base in within:
        if base.within[other] != held_reference:
            continue
        at_base = dict(zip(base.replicates, base.diffs, strict=True))
        for e in within:
            if e.level != base.level or e.within[other] == held_reference:
                continue
            at_held = dict(zip(e.replicates, e.diffs, strict=True))
            reps = [k for k in e.replicates if k in at_base]
            diffs = [at_held[k] - at_base[k] for k in reps]
            t = corrected_t(diffs, ratio)
            out.append(Interaction(
                factor, e.level, e.reference, other, e.within[other], held_reference, e.metric,
                diffs, reps, _mean([at_held[k] for k in reps]), _mean([at_base[k] for k in reps]),
                t.mean, t.ci_low, t.ci_high, t.p, unit=e.unit,
            ))  # fmt: skip
    adjusted = holm([i.p for i in out])
    return [replace(i, p_holm=a) for i, a in zip(out, adjusted, strict=True)]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def ranking(
    records: Sequence[RunRecord], factor: str, metric: str, higher_is_better: bool = True
) -> Ranking | None:
    """Friedman/Nemenyi over folds for a factor with three or more levels (each level's value in
    a fold: its runs' mean there, over the other knobs and seeds); None otherwise (or when no
    fold has every level)."""
    levels = levels_of(records, factor)
    if len(levels) < 3:
        return None
    unit = replication_unit(records)
    replicate = replicate_of(unit)
    by_rep: dict[Any, dict[Any, list[float]]] = {}
    for r in records:
        value = r.metric(metric)
        if value is not None:
            by_rep.setdefault(replicate(r), {}).setdefault(
                hashable(r.params.get(factor)), []
            ).append(value)
    table = [
        [statistics.fmean(row[level]) for level in levels]
        for row in by_rep.values()
        if all(level in row for level in levels)
    ]
    if len(table) < 2:
        return None
    return replace(friedman_nemenyi(levels, table, higher_is_better), unit=unit)


MAX_LEVELS = 20  # a knob with more values was sampled from a range: no level-by-level tests


def is_sampled(records: Sequence[RunRecord], factor: str, drawn: Collection[str]) -> bool:
    """A knob the spec draws from a range (``drawn``) or with more than ``MAX_LEVELS`` values:
    a value per run, so no level of it pairs with another."""
    return factor in drawn or len(levels_of(records, factor)) > MAX_LEVELS


@dataclass(frozen=True)
class SampledKnob:
    """A knob sampled from a range (``is_sampled``): each run is its own level, so nothing
    pairs; Spearman's rank correlation of its value with the metric over the runs, every
    fold pooled, each run's metric against the mean of the runs on its fold where the runs
    ran on more than one (``centred``: a fold's difficulty is not the knob's doing, and left
    in, it only adds noise to the ranks)."""

    knob: str
    levels: int
    points: list[tuple[float, float]]  # (value, metric, or metric against its fold's mean)
    rho: float
    p: float
    drawn: bool = False  # the spec draws it from a range (else: it has too many values)
    centred: bool = False  # the points' metric is against each run's fold mean

    @property
    def runs(self) -> int:
        return len(self.points)


def sampled_knob(
    records: Sequence[RunRecord], knob: str, metric: str, drawn: bool = False
) -> SampledKnob:
    runs = [
        (r, float(v), m)
        for r in records
        if isinstance(v := r.params.get(knob), (int, float)) and not isinstance(v, bool)
        and math.isfinite(v) and (m := r.metric(metric)) is not None
    ]  # fmt: skip
    centre = fold_centres([r for r, _, _ in runs], metric)
    points = [(x, m - centre.get(fold_of(r), 0.0)) for r, x, m in runs]
    rho = p = math.nan
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if len(points) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
        result = stats.spearmanr(xs, ys)
        rho, p = float(result.statistic), float(result.pvalue)
    return SampledKnob(knob, len(levels_of(records, knob)), points, rho, p, drawn, bool(centre))


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
        filled = [(v, j) for j, v in enumerate(line) if not math.isnan(v)]
        best.append((max(filled) if higher_is_better else min(filled))[1] if filled else None)
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
        # Each logged epoch in order; a value that is not a finite number leaves a gap.
        series = [[finite(h[metric]) for h in r.history if metric in h] for r in records
                  if r.done and hashable(r.params.get(factor)) == level]  # fmt: skip
        series = [s for s in series if s]
        length = max((len(s) for s in series), default=0)
        mean, std, n = [], [], []
        for e in range(length):
            at = [v for s in series if len(s) > e and (v := s[e]) is not None]
            if not at:
                break
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


@dataclass(frozen=True)
class FoldTable:
    """The metric of every configuration in every fold (the mean of its seeds there), and
    their mean."""

    replicates: list[Any]  # the folds
    rows: list[tuple[dict[str, Any], list[float]]]  # (configuration, value per fold)


def per_fold(records: Sequence[RunRecord], factors: Sequence[str], metric: str) -> FoldTable:
    replicate = replicate_of(replication_unit(records))
    reps = sorted({replicate(r) for r in records}, key=_order)
    table: dict[tuple[Any, ...], dict[Any, list[float]]] = {}
    for r in records:
        value = r.metric(metric)
        if value is not None:
            table.setdefault(r.cell(factors), {}).setdefault(replicate(r), []).append(value)
    rows = [
        (
            dict(zip(factors, key, strict=True)),
            [statistics.fmean(values[k]) if k in values else math.nan for k in reps],
        )
        for key, values in sorted(table.items(), key=lambda kv: [_order(v) for v in kv[0]])
    ]
    return FoldTable(reps, rows)


@dataclass(frozen=True)
class ClassTable:
    """Mean per-class test accuracy for each level of a factor (``factor`` None: all runs)."""

    factor: str | None
    levels: list[Any]
    classes: list[str]
    values: list[list[float]]  # [class][level]


def per_class(records: Sequence[RunRecord], factor: str | None) -> ClassTable | None:
    prefix = "test/accuracy/"
    classes = list(dict.fromkeys(k[len(prefix):] for r in records for k in r.summary
                                 if k.startswith(prefix)))  # fmt: skip
    if not classes:
        return None
    levels = levels_of(records, factor) if factor else ["all runs"]
    values = []
    for c in classes:
        row = []
        for level in levels:
            vals = [v for r in records if (factor is None or hashable(r.params.get(factor)) == level)
                    and (v := r.metric(prefix + c)) is not None]  # fmt: skip
            row.append(statistics.fmean(vals) if vals else math.nan)
        values.append(row)
    return ClassTable(factor, levels, classes, values)


def confusion_by(
    records: Sequence[RunRecord], factor: str
) -> dict[Any, tuple[list[str], np.ndarray]]:
    """Confusion matrices summed over folds (and other knobs) for each level of ``factor``."""
    out: dict[Any, tuple[list[str], np.ndarray]] = {}
    for r in records:
        matrix, classes = r.summary.get("confusion"), r.summary.get("classes", [])
        if not (r.done and _is_confusion(matrix, classes)):
            continue
        level, names = hashable(r.params.get(factor)), list(classes)
        m = np.asarray(matrix, dtype=np.int64)
        if level not in out:
            out[level] = (names, m)
        elif out[level][0] == names:  # summed only over runs of the same classes, in order
            out[level] = (names, out[level][1] + m)
    return out


def _is_confusion(matrix: Any, classes: Any) -> bool:
    """A square table of counts, one row and column per class name."""
    return (
        isinstance(classes, list)
        and all(isinstance(c, str) for c in classes)
        and isinstance(matrix, list)
        and len(matrix) == len(classes)
        and all(isinstance(row, list) and len(row) == len(classes) for row in matrix)
        and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for row in matrix for n in row
        )
    )


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
    curve_factor: str | None = None
    costs: list[CostPoint] = field(default_factory=list)
    cost_factors: list[str] = field(default_factory=list)
    simple_effects: dict[str, list[Effect]] = field(default_factory=dict)
    interactions: dict[tuple[str, str], list[Interaction]] = field(default_factory=dict)
    sampled: list[SampledKnob] = field(default_factory=list)
    rankings: dict[str, Ranking] = field(default_factory=dict)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (run, why)
    retried: list[tuple[str, str]] = field(default_factory=list)  # failed, run again: (run, why)
    # Environment fields on which the counted runs differ: field -> value -> runs; and those
    # they share (in all that recorded it): field -> value.
    environments: dict[str, dict[str, int]] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    fold_table: FoldTable | None = None
    class_tables: list[ClassTable] = field(default_factory=list)
    confusions: dict[Any, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    confusion_factor: str | None = None
    curve_factors: list[str] = field(default_factory=list)
    curve_sets: dict[str, list[Curve]] = field(default_factory=dict)

    @property
    def fold_relative(self) -> bool:
        """A search whose configurations are ordered against their folds (``Cell.relative``)."""
        return any(not math.isnan(c.relative) for c in self.cells)

    @property
    def curves(self) -> list[Curve]:
        """The validation curves of the convergence factor (init when swept)."""
        return self.curve_sets.get(self.curve_factor or "", [])

    rope: float = 0.01
    test_train_ratio: float = 0.0
    seeds: tuple[int, int] = (1, 1)  # per configuration and fold: fewest, most
    unit: str = "fold"  # what the tests replicate over (``replication_unit``)


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
    rope: float = 0.01,
    include_stopped: bool = False,
    sampled: Sequence[str] = (),
) -> ReportData:
    """Compute every table of the report from the runs.

    Means and tests use finished runs only (``include_stopped`` adds controller-stopped ones);
    the others are listed in ``excluded`` and in their cells' ``missing``. Knobs in
    ``sampled`` (drawn from a range by the spec) or with more than ``MAX_LEVELS`` values get
    a rank correlation instead of level-by-level tests.
    """
    references = references or {}
    metrics = list(dict.fromkeys([metric, *TABLE_METRICS]))
    higher = metric not in LOWER_IS_BETTER
    usable = [r for r in records if r.exclusion(include_stopped) is None]
    # Knobs a search sampled from a range take a value per run: level-by-level tests would
    # pair nothing and grow with the cube of the runs; they get a rank correlation instead.
    drawn = set(sampled)
    sampled = [f for f in factors if is_sampled(usable, f, drawn)]
    # A search's configurations are each drawn once, on one fold: none lacks the others, and
    # the best come first.
    table = cells(records, metrics, [] if sampled else expected_folds, include_stopped)
    if sampled:
        # Draws on different folds are ordered against their folds, not by the raw figure.
        relative = relative_to_folds(usable, metric)
        table = [replace(c, relative=relative.get(c.key, math.nan)) for c in table]
        table.sort(key=lambda c: _best_first(c.relative if relative else c.mean(metric), higher))
    data = ReportData(sweep_id, sweep_name, metric, higher, list(factors), list(records), table)
    data.excluded = [(r.name, why) for r in records if (why := r.exclusion(include_stopped))]
    data.rope, data.test_train_ratio = rope, test_train_ratio(usable)
    data.seeds, data.unit = seeds_of(usable), replication_unit(usable)
    counts = environment.counts(r.environment for r in usable)
    data.environments = {key: c for key, c in counts.items() if len(c) > 1}
    data.environment = {key: next(iter(c)) for key, c in counts.items() if len(c) == 1}
    ratio = data.test_train_ratio
    data.sampled = [sampled_knob(usable, f, metric, f in drawn) for f in sampled]
    factors = [f for f in factors if f not in sampled]
    for f in factors:
        data.effects[f] = main_effects(usable, f, metric, references.get(f), ratio=ratio,
                                       rope=rope, higher_is_better=higher)  # fmt: skip
        if len(factors) > 1:
            data.simple_effects[f] = simple_effects(usable, f, metric, references.get(f),
                                                    factors=factors, ratio=ratio, rope=rope,
                                                    higher_is_better=higher)  # fmt: skip
        # A ranking averages each level over the other knobs within a fold: a fair average in
        # a grid, but over a search's draws (which a bayes search steers) it is not.
        rank = None if sampled else ranking(usable, f, metric, higher)
        if rank is not None:
            data.rankings[f] = rank
    for i, a in enumerate(factors):
        for b in factors[i + 1 :]:
            data.pivots.append(pivot(usable, a, b, metric, higher))
            if held := levels_of(usable, b):
                reference = references.get(b, held[0])
                found = interactions(data.simple_effects.get(a, []), a, b, reference, ratio)
                if found:
                    data.interactions[(a, b)] = found
    data.curve_factor = "init" if "init" in factors else (factors[0] if factors else None)
    if data.curve_factor:
        data.convergence_effects = main_effects(
            usable, data.curve_factor, "epochs_to_90", references.get(data.curve_factor),
            ratio=data.test_train_ratio, rope=0.5, higher_is_better=False,
        )  # fmt: skip
    data.cost_factors = [f for f in ("arch", "sample_rate") if f in factors] or list(factors[:1])
    data.costs = cost_points(usable, data.cost_factors, metric)
    data.fold_table = per_fold(usable, data.factors, metric)
    by: list[str | None] = list(factors) or [None]  # a fold-only sweep: one table of all runs
    data.class_tables = [t for f in by if (t := per_class(usable, f))]
    data.confusion_factor = "arch" if "arch" in factors else None
    data.confusions = confusion_by(usable, data.confusion_factor or "arch")
    # Curves for the convergence factor, and per architecture too when it is swept.
    first = [data.curve_factor] if data.curve_factor else []
    data.curve_factors = list(dict.fromkeys(first + [f for f in ("init", "arch") if f in factors]))
    data.curve_sets = {f: convergence_curves(usable, f) for f in data.curve_factors}
    return data
