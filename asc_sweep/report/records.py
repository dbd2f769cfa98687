"""Runs as the report reads them, from either backend."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asc_sweep.sweep.environment import of_run

CELL_EXCLUDED = ("fold", "seed")
DONE_STATES = ("finished", "stopped")


@dataclass(frozen=True)
class RunRecord:
    """One run: its knobs, its state, its summary metrics and its per-epoch history."""

    name: str
    params: Mapping[str, Any]
    state: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    history: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

    def exclusion(self, include_stopped: bool = False) -> str | None:
        """Why this run is left out of cross-fold means and tests, or None when it counts.

        Only finished runs count by default: a run a controller stopped (hyperband) trained
        for fewer epochs than its peers by design, so it is shown apart; so is a run whose
        stored history is shorter than the epochs it reports having run.
        """
        if self.state == "stopped" and not include_stopped:
            return "stopped by the controller"
        if not self.done:
            return self.state
        ran = self.summary.get("epochs_run")
        epochs = [h for h in self.history if "epoch" in h]
        if epochs and isinstance(ran, int) and len(epochs) < ran:
            return f"history incomplete ({len(epochs)} of {ran} epochs)"
        return None

    def metric(self, name: str) -> float | None:
        """A finite summary value of a finished run, else None."""
        return finite(self.summary.get(name)) if self.done else None

    @functools.cached_property
    def environment(self) -> dict[str, str]:
        """What of its host can move a run's figures where its knobs and seeds do not
        (``asc_sweep.sweep.environment``); empty for a run that recorded none."""
        return of_run(self.summary.get("environment"))

    def cell(self, factors: Sequence[str]) -> tuple[Any, ...]:
        return tuple(hashable(self.params.get(f)) for f in factors)


def finite(value: Any) -> float | None:
    """``value`` as a float where it is a finite number (not a bool), else None: summaries
    and histories may hold anything a run function logged."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def environments_differ(a: RunRecord, b: RunRecord) -> bool:
    """Whether two runs recorded different environments (a field both recorded differs)."""
    x, y = a.environment, b.environment
    return any(x[k] != y[k] for k in x.keys() & y.keys())


class FrozenDict(dict[Any, Any]):
    """A mapping knob value (W&B's nested parameters) as a dict key: hashed by its items,
    printed as written."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((repr(k), v) for k, v in self.items())))


def hashable(value: Any) -> Any:
    """A knob value usable as a dict key (lists become tuples, mappings ``FrozenDict``)."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return FrozenDict({k: hashable(v) for k, v in value.items()})
    return value


def swept_factors(records: Sequence[RunRecord]) -> list[str]:
    """Knobs that take more than one value across runs, fold and seed aside, in the order the
    runs list them (the spec's, for runs of asc-sweep's stores)."""
    names: list[str] = []
    for r in records:
        names += [k for k in r.params if k not in names]
    return [
        k
        for k in names
        if k not in CELL_EXCLUDED and len({repr(r.params.get(k)) for r in records}) > 1
    ]
