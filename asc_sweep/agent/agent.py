"""The agent: claim a configuration, run it, report the result; repeat until the sweep is done.

One owner per run. A run is the agent's while its lease holds; a heartbeat thread renews the
lease. Every way a run can end goes through one stop flag (``run.context.StopFlag``):

* SIGTERM or SIGINT sets the flag (kind ``signal``); the run ends at the next batch boundary
  with nothing written, goes back to the queue at once (no attempt spent), and the agent exits
  0. A second signal ends the process at once (the lease then puts the run back).
* A lost lease (the heartbeat or a store write finds the run is no longer this agent's) sets
  the flag (kind ``lease_lost``); the agent drops the run without writing anything more.
* Early termination (hyperband) sets the flag (kind ``early_termination``); the run evaluates
  its best epoch and is recorded ``stopped``.

A run that raises is recorded as failed with its error, and the agent goes on to the next; a
usage or environment error (``AscSweepError`` with exit code 2, e.g. a missing dataset folder
or ``device: cuda`` on a host without a GPU) instead puts the run back and ends the agent with
exit code 2, since every other run would fail the same way. The signal handler raises nothing:
store transactions are never interrupted half-way.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from asc_sweep.agent.functions import RunFunction
from asc_sweep.backends.base import Run, SweepStore
from asc_sweep.errors import AscSweepError, LeaseLost, StoreError
from asc_sweep.run.context import RunInterrupted, StopAware, StopFlag

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
STORE_ERRORS = (sqlite3.OperationalError, sqlite3.DatabaseError, StoreError, OSError)


@dataclass
class AgentRunContext(StopAware):
    """Handed to the run function by a local agent (``run.context.RunContext``)."""

    run_id: int
    run_name: str
    sweep_id: str
    attempt: int
    agent: str
    run_dir: Path | None
    _store: SweepStore = field(repr=False)
    _token: str = field(repr=False)
    _console: Console | None = field(default=None, repr=False)
    stop: StopFlag = field(default_factory=StopFlag)
    _next_step: int = field(default=0, repr=False)
    _replayed: int = field(default=0, repr=False)

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, replay: bool = False
    ) -> None:
        """Store one history step (an epoch; without ``step``, the one after the last). Sets
        the stop flag on early termination or when the run is no longer this agent's. Replayed
        epochs (restored from a checkpoint) are stored again but not printed again."""
        step = self._next_step if step is None else step
        self._next_step = step + 1
        stored = storable(metrics, "the metrics logged")
        self.heed(lambda: self._store.log(self.run_id, self._token, step, stored))
        if self._console is None or "epoch" not in metrics:
            return
        if replay:
            self._replayed = step + 1
            return
        if self._replayed:
            self._console.print(f"{self.run_name} resumed after epoch {self._replayed}",
                                highlight=False)  # fmt: skip
            self._replayed = 0
        self._console.print(f"{self.run_name} {epoch_line(metrics)}", highlight=False)

    def heed(self, store_call: Callable[[], bool]) -> bool:
        """Make a store call that says whether the run should stop (a log, a heartbeat) and set
        the stop flag by its answer. Returns False once the lease is found lost."""
        try:
            if store_call():
                self.stop.request("early_termination", "early termination (hyperband)")
        except LeaseLost as exc:
            self.stop.request("lease_lost", f"lease lost: {exc}")
            return False
        return True


def epoch_line(metrics: Mapping[str, Any]) -> str:
    """``epoch 3: train loss 0.812 acc 0.701 | val loss 0.903 acc 0.650 | 2.1 s``."""
    parts = [f"epoch {metrics['epoch']}:"]
    for part in ("train", "val"):
        figures = [
            f"{name} {metrics[f'{part}/{key}']:.3f}"
            for key, name in (("loss", "loss"), ("accuracy", "acc"))
            if isinstance(metrics.get(f"{part}/{key}"), (int, float))
        ]
        if figures:
            parts.append(f"{part} {' '.join(figures)}")
    if isinstance(metrics.get("time/epoch_seconds"), (int, float)):
        parts.append(f"{metrics['time/epoch_seconds']:.1f} s")
    return parts[0] + " " + " | ".join(parts[1:])


class Heartbeat:
    """Renews a run's lease every ``interval`` seconds from its own store connection.

    A context manager: the thread stops on every exit path. A store error (a busy or briefly
    unreachable store) is reported once and retried at the next beat; the thread only ends
    when the run ends or its lease is found lost.
    """

    def __init__(
        self, store: SweepStore, context: AgentRunContext, interval: float, console: Console
    ) -> None:
        self.store, self.context, self.interval, self.console = store, context, interval, console
        self.done = threading.Event()
        self.errors = 0
        self.thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{context.run_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _beat(self) -> None:
        ctx = self.context
        store: SweepStore | None = None
        try:
            while not self.done.wait(self.interval):
                try:
                    # Its own connection, opened here and tried again at the next beat if it
                    # cannot be: a server that takes no more connections for now is one more
                    # store error to retry, not the end of the heartbeats.
                    store = store or self.store.reopen()
                    if not ctx.heed(partial(store.heartbeat, ctx.run_id, ctx._token)):
                        return
                except STORE_ERRORS as exc:
                    self.errors += 1
                    if self.errors == 1:
                        self.console.print(
                            f"[yellow]{self.context.run_name}: heartbeat failed ({exc}); "
                            f"retrying every {self.interval:.0f} s[/]",
                            highlight=False,
                        )
                    continue
                if self.errors:
                    self.console.print(
                        f"{self.context.run_name}: heartbeat back after {self.errors} failures",
                        highlight=False,
                    )
                    self.errors = 0
        finally:
            if store is not None:
                store.close()


def host_name() -> str:
    """This host's name in agent names: ``$ASC_SWEEP_HOST`` (say, a cluster node's name for an
    agent in a container, whose own host name is a random id), else the host name."""
    return os.environ.get("ASC_SWEEP_HOST") or socket.gethostname()


def agent_name() -> str:
    return f"{host_name()}:{os.getpid()}"


def set_threads(threads: int | None) -> None:
    """Cap the CPU threads the run's numeric libraries use (several agents share a host)."""
    if not threads:
        return
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@dataclass
class AgentStats:
    """What one agent did. ``stopped``: runs a controller stopped (hyperband), recorded as
    ``stopped``; a run that ended on patience is ``finished``."""

    finished: int = 0
    failed: int = 0
    stopped: int = 0
    requeued: int = 0
    lost: int = 0

    @property
    def runs(self) -> int:
        return self.finished + self.failed + self.stopped + self.lost


class Agent:
    """Runs configurations of one sweep from one store until the sweep is done."""

    def __init__(
        self,
        store: SweepStore,
        sweep_id: str,
        run_fn: RunFunction | Callable[..., Any],
        *,
        runs_dir: Path | None = None,
        count: int | None = None,
        poll_seconds: float = 1.0,
        console: Console | None = None,
        name: str | None = None,
    ) -> None:
        self.store = store
        self.sweep = store.get_sweep(sweep_id)
        self.run_fn = run_fn
        self.runs_dir = runs_dir
        self.count = count
        self.poll_seconds = poll_seconds
        self.console = console or Console(stderr=True)
        self.name = name or agent_name()
        self.stats = AgentStats()
        self._stopping = StopFlag()
        self._current: AgentRunContext | None = None

    # --- signals: set flags, nothing else ---------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._stopping.is_set:  # a second signal: end now; the lease puts the run back
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self._stopping.request("signal", f"agent stopped by {name}")
        current = self._current
        if current is not None:
            current.stop.request("signal", f"agent stopped by {name}")

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> AgentStats:
        """Claim and run until the sweep is done, ``count`` runs ended, or a signal arrives."""
        previous = self._install_signals()
        try:
            self._loop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self.stats

    def _loop(self) -> None:
        sweep_id = self.sweep.id
        self.console.print(f"agent {self.name} working on sweep {sweep_id} ({self.store.location})")
        while not self._stopping.is_set:
            if self.count is not None and self.stats.runs >= self.count:
                break
            claim = self.store.claim(sweep_id, self.name)
            if claim.status == "done":
                self.console.print(f"sweep {sweep_id} is done")
                break
            if claim.status == "wait":
                self._stopping.wait(self.poll_seconds)
                continue
            assert claim.run is not None and claim.token is not None
            self._execute(claim.run, claim.token)

    def _execute(self, run: Run, token: str) -> None:
        self._adopt_failed_attempt(run)
        ctx = AgentRunContext(
            run_id=run.id,
            run_name=run.name,
            sweep_id=self.sweep.id,
            attempt=run.attempts,
            agent=self.name,
            run_dir=None if self.runs_dir is None else self.runs_dir / run.name,
            _store=self.store,
            _token=token,
            _console=self.console,
        )
        if self._stopping.is_set:  # the signal came between the claim and here
            ctx.stop.request("signal", self._stopping.reason or "agent stopping")
        shown = " ".join(f"{k}={v}" for k, v in run.params.items())
        self.console.print(f"[bold]{run.name}[/] attempt {run.attempts}: {shown}")
        self._current = ctx
        interval = min(10.0, self.sweep.lease_seconds / 3)
        error: BaseException | None = None
        summary: Mapping[str, Any] | None = None
        try:
            with Heartbeat(self.store, ctx, interval, self.console):
                if not ctx.stop.is_set:
                    summary = run_summary(self.run_fn(dict(run.params), ctx))
        except RunInterrupted:
            pass  # the stop flag says why
        except Exception as exc:
            error = exc
        finally:
            self._current = None
        self._settle(run, token, ctx, summary, error)

    def _adopt_failed_attempt(self, run: Run) -> None:
        """A retried configuration resumes from the last checkpoint its failed attempt left on
        this host (a GPU out of memory in epoch 38 of 40 costs that epoch, not 38): the
        failed run's folder becomes the new run's. Elsewhere the run starts afresh."""
        if self.runs_dir is None or (self.runs_dir / run.name).exists():
            return
        try:
            earlier = self.store.failed_attempts(run)
        except STORE_ERRORS as exc:  # no store, no adoption: the run starts afresh
            self.console.print(f"[yellow]{run.name}: earlier attempts unknown ({exc})[/]")
            return
        # A run's folder exists once it wrote a checkpoint (one of another configuration, or
        # an unreadable one, is ignored at resume: the run then starts afresh).
        for name in earlier:
            if (self.runs_dir / name).is_dir():
                try:
                    os.replace(self.runs_dir / name, self.runs_dir / run.name)
                except OSError:
                    return
                self.console.print(f"{run.name} takes over the checkpoint of {name}")
                return

    def _settle(
        self,
        run: Run,
        token: str,
        ctx: AgentRunContext,
        summary: Mapping[str, Any] | None,
        error: BaseException | None,
    ) -> None:
        """The run's one final write, by its owner, decided by the stop flag first."""
        if ctx.stop.kind == "lease_lost":  # not ours any more: write nothing at all
            self.stats.lost += 1
            self.console.print(f"[yellow]{run.name}: {ctx.stop.reason}; result dropped[/]")
            return
        if ctx.stop.kind == "signal":
            if self._write(lambda: self.store.requeue(run.id, token, ctx.stop.reason or "")):
                self.stats.requeued += 1
                self.console.print(f"{run.name} back in the queue ({ctx.stop.reason})")
            return
        if isinstance(error, AscSweepError) and error.exit_code == 2:
            # A usage or environment problem (a missing dataset folder, a clip that cannot be
            # decoded, no GPU): every run here would fail the same way, and failed runs are
            # final. Put the run back and stop this agent; the sweep stays intact.
            reason = f"agent stopped: {error}"
            if self._write(lambda: self.store.requeue(run.id, token, reason)):
                self.stats.requeued += 1
            raise error
        if error is not None:
            message = describe(error)
            if self._write(lambda: self.store.fail(run.id, token, message)):
                self.stats.failed += 1
                self.console.print(f"[red]{run.name} failed[/]: {message.splitlines()[-1]}")
            return
        ended = self._write(lambda: self.store.finish(run.id, token, dict(summary or {})))
        if ended is None:
            return
        if ctx.run_dir is not None:  # the run is over and was ours: its checkpoint goes
            shutil.rmtree(ctx.run_dir, ignore_errors=True)
        if ended.state == "stopped":
            self.stats.stopped += 1
            self.console.print(f"{run.name} stopped by the controller ({ctx.stop.reason})")
        else:
            self.stats.finished += 1
            self.console.print(f"{run.name} finished {brief(ended.summary or {})}")

    def _write(self, update: Callable[[], Run]) -> Run | None:
        """A final update; a lost lease means another agent owns the run now."""
        try:
            return update()
        except LeaseLost as exc:
            self.stats.lost += 1
            self.console.print(f"[yellow]{exc}; result dropped[/]")
            return None


def run_summary(returned: Any) -> dict[str, Any]:
    """What a run function returned, as a store holds it (None: an empty summary).

    Raises:
        TypeError: not a mapping, or holding a value no store can keep (the run fails with it).
    """
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        raise TypeError(
            f"the run function returned a {type(returned).__name__}; it must return a mapping "
            "of summary values (or None)"
        )
    summary: dict[str, Any] = storable(returned, "the summary returned")
    return summary


def storable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays and torch tensors through their
    ``tolist``, tuples and sets as lists, mapping keys as text (NaN and infinities stay: the
    report and the engine leave them out).

    Raises:
        TypeError: naming where the value sits and its type, for anything else.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): storable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return [storable(v, where) for v in sorted(value, key=repr)]
    to_list = getattr(value, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(to_list):
        return storable(to_list(), where)
    kind = type(value).__name__
    raise TypeError(
        f"{where}: {'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind}, which no store can hold; "
        "use numbers, text, booleans, None, and lists and mappings of them"
    )


def describe(exc: BaseException) -> str:
    """The error kept with a failed run: the last frames of the traceback and the message."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
    return "".join(frames).strip()


def brief(summary: Mapping[str, Any]) -> str:
    items = [f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float)][:4]
    return " ".join(items)
