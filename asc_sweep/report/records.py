"""Runs as the report reads them, from either backend."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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

    def metric(self, name: str) -> float | None:
        """A finite summary value of a finished run, else None."""
        if not self.done:
            return None
        value = self.summary.get(name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            return None
        return float(value)

    def cell(self, factors: Sequence[str]) -> tuple[Any, ...]:
        return tuple(hashable(self.params.get(f)) for f in factors)


def hashable(value: Any) -> Any:
    """A knob value usable as a dict key (lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def from_local(backend: Any, sweep_id: str) -> list[RunRecord]:
    """Runs of a sweep in the local store, with their stored per-epoch history."""
    return [
        RunRecord(
            run.name, dict(run.params), run.state, dict(run.summary or {}), backend.history(run.id)
        )
        for run in backend.runs(sweep_id)
    ]


class WandbRun(Protocol):
    """The attributes of the W&B SDK's public ``wandb.apis.public.Run`` that the report uses."""

    name: str
    state: str
    config: Mapping[str, Any]
    summary: Mapping[str, Any]

    def history(self, *args: Any, **kwargs: Any) -> Any: ...


WANDB_STATES = {
    "finished": "finished",
    "running": "running",
    "crashed": "failed",
    "failed": "failed",
    "killed": "failed",
}


def from_wandb(runs: Iterable[WandbRun], knobs: Iterable[str]) -> list[RunRecord]:
    """W&B runs (``wandb.Api().sweep(path).runs``) as records: config knobs, summary, history."""
    keys = set(knobs)
    out = []
    for run in runs:
        params = {k: v for k, v in dict(run.config).items() if k in keys}
        history = run.history(pandas=False)
        rows = [dict(h) for h in history if "epoch" in h]
        summary = {k: v for k, v in dict(run.summary).items() if not k.startswith("_")}
        out.append(
            RunRecord(run.name, params, WANDB_STATES.get(run.state, run.state), summary, rows)
        )
    return out


def swept_factors(records: Sequence[RunRecord]) -> list[str]:
    """Knobs that take more than one value across runs, fold and seed aside, in spec order."""
    names: list[str] = []
    for r in records:
        names += [k for k in r.params if k not in names]
    return [
        k
        for k in names
        if k not in CELL_EXCLUDED and len({repr(r.params.get(k)) for r in records}) > 1
    ]
