"""What a run shares with whoever runs it: one stop flag with a reason, and the run context.

A stop is never an exception raised into the run from outside (a signal handler, a heartbeat
thread). Whoever decides sets the flag; the trainer reads it at every batch boundary and acts
by its kind:

* an *abort* (``signal``: the agent is stopping; ``lease_lost``: another agent owns the run now)
  ends the run at once and writes nothing more: no checkpoint, no test evaluation, no tracker
  finish as the owner. The trainer raises :class:`RunInterrupted` from its own code;
* an *early stop* (``early_termination``: hyperband on the local store; ``wandb``: W&B's
  controller or its UI) ends training, evaluates the best epoch on the test split and records
  the run as ``stopped``, with the reason.

A patience stop is no stop at all in this sense: the trainer decides it itself, and the run
finishes normally with ``end_reason`` saying why it ended before ``epochs``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

StopKind = Literal["signal", "lease_lost", "early_termination", "wandb"]
ABORTS: tuple[StopKind, ...] = ("signal", "lease_lost")


class StopFlag:
    """Set once, from any thread (a signal handler, the heartbeat), read by the run.

    The first request wins: a lease lost after a signal stays a signal stop.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._why: tuple[StopKind, str] | None = None

    def request(self, kind: StopKind, reason: str) -> None:
        # No lock: a signal handler runs on the main thread between bytecodes and must never
        # wait for one. A race between two requesters keeps one whole (kind, reason) pair.
        if self._why is None:
            self._why = (kind, reason)
            self._event.set()

    @property
    def kind(self) -> StopKind | None:
        return self._why[0] if self._why else None

    @property
    def reason(self) -> str | None:
        return self._why[1] if self._why else None

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    @property
    def aborts(self) -> bool:
        """True when the run must end without writing anything more."""
        return self.kind in ABORTS

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


class RunInterrupted(Exception):
    """Raised by the trainer (never by a signal handler) when an abort stops the run.

    Nothing was written after the stop: the run's last checkpoint is the last complete epoch.
    """

    def __init__(self, kind: StopKind, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class RunContext(Protocol):
    """What a run function is handed by an agent (local store or W&B).

    ``log`` stores one epoch's metrics where the controller reads them (early termination
    decides on them); ``stop`` is the run's stop flag; ``run_dir`` is where the run keeps its
    checkpoint (a requeued run resumes from it).
    """

    run_name: str
    sweep_id: str
    attempt: int
    stop: StopFlag

    @property
    def run_dir(self) -> Path | None: ...

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, replay: bool = False
    ) -> None:
        """Store one epoch. ``replay``: an epoch restored from a checkpoint, stored again so
        the history stays whole, not news to announce."""
        ...


class StopAware:
    """The stop flag's older names, for run functions written against them."""

    stop: StopFlag

    @property
    def should_stop(self) -> bool:
        return self.stop.is_set

    @property
    def stop_reason(self) -> str | None:
        return self.stop.reason


class StandaloneContext(StopAware):
    """The context of a run outside any sweep (``asc-sweep train``): nothing stores, nothing stops."""

    def __init__(self, run_name: str = "run", run_dir: Path | None = None) -> None:
        self.run_name, self.sweep_id, self.attempt = run_name, "", 1
        self.stop = StopFlag()
        self._run_dir = run_dir

    @property
    def run_dir(self) -> Path | None:
        return self._run_dir

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, replay: bool = False
    ) -> None:
        pass
