"""What every sweep backend provides: the controller interface, the store interface that
asc-sweep's own agents claim work from, and the frozen records they return.

* :class:`Controller` is one sweep, wherever it lives (a local SQLite store, W&B): what the
  CLI, the launcher and the report need of it. A backend is one implementation of it plus a
  :class:`Backend` entry in ``backends.registry`` (how to create a sweep and open one by
  reference); nothing above this layer names a backend.
* :class:`SweepStore` is the claim/lease API of stores whose runs asc-sweep's agents execute
  (the local store; a shared SQL store would be another). W&B's controller hands runs to
  W&B's own agents instead, so its ``Controller.store`` is None.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from asc_sweep.errors import AscSweepError
from asc_sweep.report.records import RunRecord

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
        """Runs that speak for a configuration: every run but the failed ones since retried."""
        return sum(self[state] for state in RUN_STATES)

    @property
    def retried(self) -> int:
        """Failed runs whose configuration was queued again (``retry``): on record, not counted."""
        return self["retried"]

    @property
    def done(self) -> int:
        return self["finished"] + self["stopped"] + self["failed"]

    def outstanding(self, total: int | None) -> int:
        """Runs still to do: pending ones, plus those random and bayes have not created yet."""
        return self["pending"] if total is None else max(0, total - self.done - self["running"])


class SweepStore(Protocol):
    """A sweep store that hands runs to asc-sweep's agents by compare-and-set on a lease token.

    One instance per thread: :meth:`reopen` gives another connection to the same store.
    """

    @property
    def location(self) -> str: ...

    def reopen(self) -> SweepStore: ...

    def close(self) -> None: ...

    def get_sweep(self, sweep_id: str | None = None) -> Sweep: ...

    def claim(self, sweep_id: str, agent: str) -> Claim: ...

    def heartbeat(self, run_id: int, token: str) -> bool: ...

    def log(self, run_id: int, token: str, step: int, metrics: Mapping[str, Any]) -> bool: ...

    def finish(self, run_id: int, token: str, summary: Mapping[str, Any]) -> Run: ...

    def fail(self, run_id: int, token: str, error: str) -> Run: ...

    def requeue(self, run_id: int, token: str, reason: str) -> Run: ...

    def failed_attempts(self, run: Run) -> list[str]: ...

    def runs(self, sweep_id: str, states: Sequence[str] | None = None) -> list[Run]: ...

    def history(self, run_id: int) -> list[dict[str, Any]]: ...

    def counts(self, sweep_id: str) -> SweepCounts: ...

    def end_times(self, sweep_id: str) -> list[float]: ...


@dataclass(frozen=True)
class Failure:
    """A failed run, for ``status``: its name and the last line of its error."""

    run: str
    error: str


class Controller(ABC):
    """One sweep, wherever it lives: its progress, its runs for the report, how agents join it."""

    #: What a user types to name this sweep again (a local id, or ENTITY/PROJECT/ID).
    ref: str
    #: The sweep's id alone, for folder names (logs, checkpoints, reports).
    key: str
    #: How the sweep is called in titles ("sweep", "W&B sweep").
    label: str = "sweep"
    name: str | None
    method: str
    #: Where the sweep is kept, in words (a store file, a W&B project).
    location: str
    #: Where agent logs and run checkpoints go on this host.
    work_dir: Path
    #: The claim API when asc-sweep's own agents execute the runs; None when the controller
    #: has agents of its own (W&B), started with :meth:`run_hosted_agent`.
    store: SweepStore | None = None

    @property
    @abstractmethod
    def total(self) -> int | None:
        """How many runs the sweep will have in all, when known."""

    @abstractmethod
    def counts(self) -> SweepCounts: ...

    @abstractmethod
    def state(self) -> str:
        """``running`` or ``finished`` (or the controller's own word for it)."""

    def is_done(self) -> bool:
        return self.state() == "finished"

    @abstractmethod
    def records(self) -> list[RunRecord]:
        """Every run with its knobs, state, summary and per-epoch history, for the report."""

    def expected_folds(self) -> list[Any] | None:
        """The folds the spec sweeps, so the report can flag configurations missing some."""
        return None

    def sampled_knobs(self) -> list[str]:
        """The knobs the spec draws from a range (``sweep.spec.sampled_knobs``)."""
        return []

    def environments(self) -> dict[str, dict[str, int]] | None:
        """The environment fields on which the runs that ended so far differ, each value with
        its runs (``asc_sweep.sweep.environment``); None where the controller cannot tell
        without reading every run (the report does)."""
        return None

    def failures(self, limit: int = 10) -> list[Failure]:
        return []

    def retried_failures(self) -> list[Failure]:
        """Failed runs whose configurations ran again (``retry``): left out of ``records``."""
        return []

    def ended_since(self, started_at: float) -> int:
        """Runs that ended since ``started_at`` (for throughput)."""
        return 0

    def running_by_agent(self) -> dict[str, str]:
        """Agent name -> the run it holds, where the controller knows."""
        return {}

    def agent_args(self) -> list[str]:
        """The arguments of ``asc-sweep agent`` that join this sweep from this host."""
        return [self.ref]

    def agent_env(self) -> dict[str, str]:
        """Environment the launcher adds for its agents (secrets go here, never in
        :meth:`agent_args`: a command line is visible to every user of the host)."""
        return {}

    def done_message(self, exit_codes: Sequence[int | None]) -> str | None:
        """What to say once every agent has exited, if the sweep is done; else None."""
        return f"sweep {self.ref} is done" if self.is_done() else None

    def wandb_project(self) -> tuple[str | None, str]:
        """(entity, project) where this sweep's runs and report go on W&B."""
        return os.environ.get("WANDB_ENTITY"), os.environ.get("WANDB_PROJECT", "asc-sweep")

    def start_hint(self) -> str:
        """How to start agents on this sweep, for the user."""
        return f"asc-sweep launch {self.ref} --agents N"

    def retry(self, runs: Sequence[str] | None = None) -> list[str]:
        """Queue a fresh attempt of the failed runs (all, or those named); their new names."""
        raise AscSweepError(
            f"{self.label} {self.ref}: `retry` works on sweeps in asc-sweep's own stores (an "
            "SQLite file, PostgreSQL); this sweep's controller decides which runs it has"
        )

    def check_agents(self, tracking: str) -> None:  # noqa: B027 - most backends take any
        """Raise if agents cannot join this sweep from here with ``--tracking tracking``."""

    def run_hosted_agent(self, *, count: int | None, function: str | None, tracking: str) -> None:
        """Run the controller's own agent in this process (only where ``store`` is None)."""
        raise NotImplementedError(f"{type(self).__name__} runs asc-sweep's agents")

    def close(self) -> None:  # noqa: B027 - most controllers hold nothing to close
        """Release the controller's connection, if it holds one."""


@dataclass(frozen=True)
class CreateOptions:
    """Everything ``create`` may be told; each backend reads what concerns it."""

    store: str | None = None
    lease_seconds: float = 60.0
    max_attempts: int = 3
    seed: int | None = None
    project: str = "asc-sweep"
    entity: str | None = None


class Backend(Protocol):
    """How to create a sweep on a backend, and how to recognise and open one by reference."""

    name: str

    def create(self, spec: Any, options: CreateOptions) -> Controller: ...

    def claims(self, ref: str | None, store: str | None) -> bool:
        """Whether this backend owns sweep reference ``ref`` (or store location ``store``)."""
        ...

    def open(self, ref: str | None, store: str | None) -> Controller: ...
