"""The agent: claim a configuration, run it, report the result; repeat until the sweep is done.

While a run executes, a heartbeat thread renews its lease, so a dead agent's run goes back
to the queue once the lease expires. SIGTERM or SIGINT stops the current run, puts it back in
the queue at once (no attempt spent) and ends the agent with exit code 0. A run that raises is
recorded as failed with its error, and the agent goes on to the next; a usage or environment
error (``AscSweepError`` with exit code 2, e.g. a missing dataset folder) instead puts the run
back and ends the agent with exit code 2, since every other run would fail the same way.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from rich.console import Console

from .backends import LocalBackend
from .errors import AscSweepError, LeaseLost, RunFunctionError

DEFAULT_FUNCTION = "asc_sweep.train:run_for_agent"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class AgentStopping(BaseException):
    """Raised inside the run function when the agent gets SIGTERM/SIGINT.

    A ``BaseException``, so that a run function's ``except Exception`` does not swallow it.
    """


class RunFunction(Protocol):
    """What an agent executes for each configuration: params in, summary metrics out.

    ``context`` is a :class:`RunContext` under a local agent and a ``WandbRunContext`` under
    W&B's: both have ``run_name``, ``sweep_id``, ``run_dir``, ``log`` and ``should_stop``.
    """

    def __call__(self, params: dict[str, Any], context: Any) -> Mapping[str, Any] | None: ...


@dataclass(kw_only=True)
class StopRequest:
    """The stop flag of a run context: set from another thread (heartbeat, signal handler),
    read by the run between epochs."""

    stop_reason: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def should_stop(self) -> bool:
        """True when the run should end now (early termination, a lost lease, a stop signal)."""
        return self._stop.is_set()

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()


@dataclass
class RunContext(StopRequest):
    """Handed to the run function: who the run is, and a way to report per-epoch metrics."""

    run_id: int
    run_name: str
    sweep_id: str
    attempt: int
    agent: str
    _backend: LocalBackend = field(repr=False)
    _token: str = field(repr=False)
    step: int = 0
    run_dir: Path | None = None  # where the run keeps its checkpoint (resumed when requeued)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Store one history step (an epoch). Early termination may set :attr:`should_stop`."""
        self.step = self.step if step is None else step
        try:
            if self._backend.log(self.run_id, self._token, self.step, metrics):
                self.request_stop("early termination (hyperband)")
        except LeaseLost:
            self.request_stop("lease lost")
        self.step += 1


class Heartbeat(threading.Thread):
    """Renews a run's lease every ``interval`` seconds from its own store connection."""

    def __init__(self, store: Path, context: RunContext, interval: float) -> None:
        super().__init__(name=f"heartbeat-{context.run_id}", daemon=True)
        self.store, self.context, self.interval = store, context, interval
        self.done = threading.Event()

    def run(self) -> None:
        backend = LocalBackend(self.store)
        try:
            while not self.done.wait(self.interval):
                try:
                    if backend.heartbeat(self.context.run_id, self.context._token):
                        self.context.request_stop("early termination (hyperband)")
                except LeaseLost:
                    self.context.request_stop("lease lost")
                    return
        finally:
            backend.close()


def load_run_function(spec: str) -> RunFunction:
    """Import ``package.module:callable``.

    Raises:
        RunFunctionError: the module or attribute cannot be found.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RunFunctionError(f"--function {spec!r}: write it as package.module:callable")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if spec == DEFAULT_FUNCTION:
            raise RunFunctionError(
                "the built-in trainer (asc_sweep.train) is not part of this version; "
                "pass --function package.module:callable"
            ) from None
        raise RunFunctionError(f"--function {spec!r}: cannot import {exc.name!r}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RunFunctionError(f"--function {spec!r}: {module_name} has no callable {attr!r}")
    return fn


def agent_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        store: str | Path,
        sweep_id: str,
        run_fn: RunFunction | Callable[..., Any],
        *,
        count: int | None = None,
        poll_seconds: float = 1.0,
        console: Console | None = None,
        name: str | None = None,
    ) -> None:
        self.store = Path(store)
        self.backend = LocalBackend(self.store)
        self.sweep = self.backend.get_sweep(sweep_id)
        self.run_fn = run_fn
        self.count = count
        self.poll_seconds = poll_seconds
        self.console = console or Console(stderr=True)
        self.name = name or agent_name()
        self.stats = AgentStats()
        self._stopping = threading.Event()
        self._in_run = False

    # --- signals ---------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping.set()
        if self._in_run:
            self._in_run = False
            raise AgentStopping(signal.Signals(signum).name)

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> AgentStats:
        """Claim and run until the sweep is done, ``count`` runs ended, or a signal arrives."""
        self._install_signals()
        sweep_id = self.sweep.id
        self.console.print(f"agent {self.name} working on sweep {sweep_id} ({self.store})")
        while not self._stopping.is_set():
            if self.count is not None and self.stats.runs >= self.count:
                break
            claim = self.backend.claim(sweep_id, self.name)
            if claim.status == "done":
                self.console.print(f"sweep {sweep_id} is done")
                break
            if claim.status == "wait":
                self._stopping.wait(self.poll_seconds)
                continue
            assert claim.run is not None and claim.token is not None
            self._execute(
                claim.run.id, claim.run.name, claim.run.params, claim.run.attempts, claim.token
            )
        return self.stats

    def _execute(
        self, run_id: int, run_name: str, params: dict[str, Any], attempt: int, token: str
    ) -> None:
        ctx = RunContext(
            run_id=run_id,
            run_name=run_name,
            sweep_id=self.sweep.id,
            attempt=attempt,
            agent=self.name,
            _backend=self.backend,
            _token=token,
            run_dir=self.store.resolve().parent / "asc-sweep-runs" / self.sweep.id / run_name,
        )
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        self.console.print(f"[bold]{run_name}[/] attempt {attempt}: {shown}")
        heartbeat = Heartbeat(self.store, ctx, interval=min(10.0, self.sweep.lease_seconds / 3))
        heartbeat.start()
        try:
            self._in_run = True
            try:
                if self._stopping.is_set():  # the signal came between claim and start
                    raise AgentStopping("signal")
                summary = self.run_fn(dict(params), ctx)
            finally:
                self._in_run = False
        except AgentStopping as stop:
            heartbeat.done.set()
            reason = f"agent stopped by {stop}"
            self._settle(lambda: self.backend.requeue(run_id, token, reason))
            self.stats.requeued += 1
            self.console.print(f"{run_name} back in the queue ({reason})")
            return
        except Exception as exc:
            heartbeat.done.set()
            if isinstance(exc, AscSweepError) and exc.exit_code == 2:
                # A usage or environment problem (a missing dataset folder, a clip that cannot
                # be decoded, no GPU): every run here would fail the same way, and failed runs
                # are final. Put the run back and stop this agent; the sweep stays intact.
                reason = f"agent stopped: {exc}"
                self._settle(lambda: self.backend.requeue(run_id, token, reason))
                self.stats.requeued += 1
                raise
            error = _describe(exc)
            self._settle(lambda: self.backend.fail(run_id, token, error))
            self.stats.failed += 1
            self.console.print(f"[red]{run_name} failed[/]: {error.splitlines()[-1]}")
            return
        finally:
            heartbeat.done.set()
            heartbeat.join()
        if ctx.stop_reason == "lease lost":
            self.stats.lost += 1
            self.console.print(
                f"[yellow]{run_name}: lease lost; result dropped (another agent has it)[/]"
            )
            return
        run = self._settle(lambda: self.backend.finish(run_id, token, dict(summary or {})))
        if run is not None and run.state == "stopped":
            self.stats.stopped += 1
            self.console.print(f"{run_name} stopped early ({ctx.stop_reason})")
        elif run is not None:
            self.stats.finished += 1
            self.console.print(f"{run_name} finished {_brief(run.summary or {})}")

    def _settle(self, update: Callable[[], Any]) -> Any:
        """Apply a final update; a lost lease means another agent owns the run now."""
        try:
            return update()
        except LeaseLost as exc:
            self.stats.lost += 1
            self.console.print(f"[yellow]{exc}; result dropped[/]")
            return None


def _describe(exc: BaseException) -> str:
    """The error kept with a failed run: the last frames of the traceback and the message."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3)
    return "".join(frames).strip()


def _brief(summary: Mapping[str, Any]) -> str:
    items = [f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float)][:4]
    return " ".join(items)
