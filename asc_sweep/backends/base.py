"""What every sweep backend provides, and the frozen records it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RunState = Literal["pending", "running", "finished", "stopped", "failed"]
RUN_STATES: tuple[RunState, ...] = ("pending", "running", "finished", "stopped", "failed")
TERMINAL_STATES: tuple[RunState, ...] = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class Sweep:
    """A registered sweep."""

    id: str
    name: str | None
    spec: dict[str, Any]
    method: str
    seed: int
    lease_seconds: float
    max_attempts: int
    run_cap: int | None
    grid_size: int | None
    created_at: float
    state: Literal["running", "finished"]
    exhausted: bool

    @property
    def total(self) -> int | None:
        """How many runs the sweep will have in all, when that is known."""
        if self.grid_size is not None:
            return min(self.grid_size, self.run_cap) if self.run_cap else self.grid_size
        return self.run_cap


@dataclass(frozen=True)
class Run:
    """One configuration of a sweep, and what became of it."""

    id: int
    sweep_id: str
    number: int
    params: dict[str, Any]
    config_hash: str
    state: RunState
    attempts: int
    agent: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    lease_expires: float | None
    should_stop: bool
    summary: dict[str, Any] | None
    error: str | None

    @property
    def name(self) -> str:
        return f"{self.sweep_id}-{self.number:04d}"


@dataclass(frozen=True)
class Claim:
    """The answer to an agent asking for work.

    ``status`` is ``claimed`` (``run`` and ``token`` are set), ``wait`` (nothing to hand out now,
    but runs are in flight and may come back to the queue) or ``done`` (the sweep is over).
    """

    status: Literal["claimed", "wait", "done"]
    run: Run | None = None
    token: str | None = None


@dataclass(frozen=True)
class SweepCounts:
    """How many runs of a sweep are in each state."""

    by_state: Mapping[str, int] = field(default_factory=dict)

    def __getitem__(self, state: str) -> int:
        return int(self.by_state.get(state, 0))

    @property
    def created(self) -> int:
        return sum(self.by_state.values())

    @property
    def done(self) -> int:
        return self["finished"] + self["stopped"] + self["failed"]

    def outstanding(self, total: int | None) -> int:
        """Runs still to do: pending ones, plus those random and bayes have not created yet."""
        return self["pending"] if total is None else max(0, total - self.done - self["running"])


class Backend(Protocol):
    """A sweep store and controller. Runs are handed out by compare-and-set on a lease token."""

    def create_sweep(
        self,
        spec: Mapping[str, Any],
        *,
        lease_seconds: float = ...,
        max_attempts: int = ...,
        seed: int | None = ...,
    ) -> Sweep: ...

    def get_sweep(self, sweep_id: str | None = None) -> Sweep: ...

    def list_sweeps(self) -> list[Sweep]: ...

    def claim(self, sweep_id: str, agent: str) -> Claim: ...

    def heartbeat(self, run_id: int, token: str) -> bool: ...

    def log(self, run_id: int, token: str, step: int, metrics: Mapping[str, Any]) -> bool: ...

    def finish(self, run_id: int, token: str, summary: Mapping[str, Any]) -> Run: ...

    def fail(self, run_id: int, token: str, error: str) -> Run: ...

    def requeue(self, run_id: int, token: str, reason: str) -> Run: ...

    def runs(self, sweep_id: str, states: Sequence[str] | None = None) -> list[Run]: ...

    def history(self, run_id: int) -> list[dict[str, Any]]: ...

    def counts(self, sweep_id: str) -> SweepCounts: ...
