"""The bridge to W&B's open-source sweep engine (the ``sweeps`` package).

The engine is pure: the next configuration and the runs to stop early are functions of
(spec, runs). This module is the only place that builds the engine's ``SweepRun`` objects.
``sweeps`` was written for pydantic 1; under pydantic 2 its models ignore field names that
have aliases, so runs are built by alias (``sampledHistory``, ``summaryMetrics``) and checked,
so observed metrics and history always reach the engine.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

# Our run states -> the engine's. An early-terminated run ("stopped") ran to a valid end.
ENGINE_STATE = {
    "pending": "pending",
    "running": "running",
    "finished": "finished",
    "stopped": "finished",
    "failed": "failed",
}


def _import_sweeps() -> ModuleType:
    with warnings.catch_warnings():
        # pydantic 2 warns about the engine's pydantic-1 style model config.
        warnings.simplefilter("ignore")
        import sweeps.config.schema

        import sweeps
    return sweeps


def warm_up() -> None:
    """Import the engine's search modules, which it imports on first use: scipy.stats and
    scikit-learn, about a second. A store calls this before it takes the sweep's lock, so
    that no agent's first claim holds every other agent up for that second."""
    _import_sweeps()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps.bayes_search
        import sweeps.grid_search
        import sweeps.random_search  # noqa: F401


def sweeps_schema() -> ModuleType:
    """The engine's schema module (validator, parameter filling)."""
    return _import_sweeps().config.schema


@dataclass(frozen=True)
class EngineRun:
    """What the engine needs to know of one run."""

    name: str
    state: str
    params: Mapping[str, Any]
    history: Sequence[Mapping[str, Any]] = field(default_factory=list)
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedRun:
    """A run already built as the engine's record (:func:`prepare`), for a caller that passes
    the same unchanging run again and again: a store's ended runs, whose records would
    otherwise be built anew for every decision."""

    name: str
    record: Any


def prepare(run: EngineRun) -> PreparedRun:
    """The engine's record of a run that no longer changes (the engine alters only the records
    of running runs, where it notes why it stopped one)."""
    return PreparedRun(run.name, to_sweep_run(run))


def _records(runs: Sequence[EngineRun | PreparedRun]) -> list[Any]:
    return [run.record if isinstance(run, PreparedRun) else to_sweep_run(run) for run in runs]


def to_sweep_run(run: EngineRun) -> Any:
    """Build the engine's ``SweepRun``; raises if history or summary did not reach it."""
    sweeps = _import_sweeps()
    summary = _numbers(run.summary)
    sweep_run = sweeps.SweepRun(
        name=run.name,
        state=ENGINE_STATE[run.state],
        config={k: {"value": v} for k, v in run.params.items()},
        sampledHistory=[_numbers(h) for h in run.history],
        summaryMetrics=summary,
    )
    if len(sweep_run.history) != len(run.history) or len(sweep_run.summary_metrics or {}) != len(
        summary
    ):
        raise RuntimeError(
            "the installed sweeps/pydantic combination drops run history; "
            "metrics would not reach the sweep engine"
        )
    return sweep_run


# Beyond this the Gaussian process's squares of the metric overflow to NaN.
MAX_METRIC = 1e150


def _numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a history row or summary the engine can use: it compares what it reads
    and its Gaussian process squares it, so a NaN (a run that diverged), an infinity, a text or
    a 1e308 left in would fail every later claim of a bayes sweep. A run left without its
    metric counts as the worst (bayes) or as not having logged it yet (hyperband, which drops
    NaN itself)."""
    return {
        k: v
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= MAX_METRIC
    }


def _params(sweep_run: Any) -> dict[str, Any]:
    return {k: _plain(v["value"]) for k, v in sweep_run.config.items()}


def _in_spec_order(spec: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` in the order the spec lists its parameters (the engine sorts them by name),
    so that a run's knobs, and the report's factors, read as the spec was written."""
    order = list(spec.get("parameters") or {})
    return {
        k: params[k]
        for k in sorted(params, key=lambda k: (order.index(k) if k in order else len(order), k))
    }


def _plain(value: Any) -> Any:
    """numpy scalars -> Python values, so configs serialise and compare cleanly."""
    return value.item() if isinstance(value, np.generic) else value


def suggest(
    spec: Mapping[str, Any], runs: Sequence[EngineRun | PreparedRun], seed: int
) -> dict[str, Any] | None:
    """The next configuration from the engine, or None when the search space is exhausted.

    The engine draws from numpy's and Python's global generators; they are seeded from ``seed`` and restored
    afterwards, so a suggestion is reproducible from (spec, runs, seed) and the caller's own
    random state is untouched.
    """
    sweeps = _import_sweeps()
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % (2**32))
    random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = sweeps.next_run(dict(spec), _records(runs))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return None if result is None else _in_spec_order(spec, _params(result))


def grid(spec: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """Every configuration of a grid sweep in the engine's order, at most ``limit``."""
    sweeps = _import_sweeps()
    suggestions = sweeps.next_runs(dict(spec), [], n=limit)
    return [_in_spec_order(spec, _params(s)) for s in suggestions if s is not None]


# The knobs that decide which clips a run trains on and is validated on. Hyperband draws its
# thresholds among the runs alike in these: what a run can reach depends on its fold as much
# as on anything a sweep compares (one recipe's test accuracy: 0.52 to 0.69 over the 4 folds
# of the field scenes), so thresholds drawn over every fold stop the runs of the hard folds
# for their fold, and the report's cells then lack those folds. The seed too, where the spec
# lists its values: it picks which training groups validate (on the field scenes, one
# configuration's best validation accuracy on one fold read 0.59, 0.83 and 0.50 over three
# seeds). Not where a search draws it from a range: each run would be alone in its group.
SAME_DATA = ("dataset", "data_root", "fold", "val_fraction", "seed")


def same_data(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``SAME_DATA`` knobs hyperband groups runs by under ``spec``: all of them, but the
    seed where a search draws it from a range (a value per run). A grid enumerates a range:
    its seeds are listed."""
    seed = (spec.get("parameters") or {}).get("seed")
    drawn = (
        spec.get("method") in ("random", "bayes")
        and isinstance(seed, Mapping)
        and "value" not in seed
        and "values" not in seed
    )
    return tuple(k for k in SAME_DATA if not (drawn and k == "seed"))


def pooled_by_hyperband(spec: Mapping[str, Any]) -> list[str]:
    """The ``SAME_DATA`` knobs a spec with early termination sweeps: those over which a
    controller that draws its thresholds over every run (W&B's) compares runs on other
    data."""
    if not spec.get("early_terminate"):
        return []
    params = spec.get("parameters") or {}

    def swept(p: Any) -> bool:
        if not isinstance(p, Mapping) or "value" in p:
            return False
        values = p.get("values")
        return not isinstance(values, list) or len({repr(v) for v in values}) > 1

    return [k for k in same_data(spec) if swept(params.get(k))]


def runs_to_stop(spec: Mapping[str, Any], runs: Sequence[EngineRun | PreparedRun]) -> list[str]:
    """Names of running runs that the spec's ``early_terminate`` (hyperband) would stop: each
    judged against the runs on the same data (``same_data``: its fold, dataset and listed
    seed)."""
    if not spec.get("early_terminate"):
        return []
    sweeps = _import_sweeps()
    keys = same_data(spec)
    groups: dict[tuple[str, ...], list[EngineRun | PreparedRun]] = {}
    for run in runs:
        params = run.params if isinstance(run, EngineRun) else _params(run.record)
        groups.setdefault(tuple(repr(params.get(k)) for k in keys), []).append(run)
    stopped = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for group in groups.values():
            # Hyperband stops only running runs: a group without one has nothing to decide.
            if any(isinstance(r, EngineRun) and r.state == "running" for r in group):
                stopped += sweeps.stop_runs(dict(spec), _records(group))
    return [str(r.name) for r in stopped]
