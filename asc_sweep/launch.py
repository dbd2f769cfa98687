"""Start and supervise N local agent processes on one host, with a live view of the sweep.

Each agent is ``python -m asc_sweep agent`` in its own process, pinned to a GPU by
``CUDA_VISIBLE_DEVICES`` (round robin over ``--gpus``; several agents may share one), with its
CPU threads capped so that agents do not oversubscribe the host. An agent that dies is
restarted (its run goes back to the queue when its lease expires); the launcher exits when the
sweep is done. The sweep is a local store's (progress read from the store) or a W&B sweep
(agents are W&B's; progress read through W&B's API every few seconds).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Literal

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .backends import LocalBackend, Sweep, SweepCounts

USAGE_ERROR = 2
WANDB_REFRESH_SECONDS = 10.0  # W&B's API is a network call: progress is read this often


class LocalProgress:
    """A local-store sweep, as the launcher sees it."""

    def __init__(self, store: Path, sweep: Sweep) -> None:
        self.store, self.sweep = store, sweep
        self.backend = LocalBackend(store)
        self.sweep_id, self.name, self.method = sweep.id, sweep.name, sweep.method
        self.log_dir = store.parent / "asc-sweep-logs" / sweep.id

    @property
    def total(self) -> int | None:
        return self.sweep.total

    def agent_args(self) -> list[str]:
        return [self.sweep_id, "--store", str(self.store)]

    def counts(self) -> SweepCounts:
        return self.backend.counts(self.sweep_id)

    def ended_since(self, started_at: float) -> int:
        return len([t for t in self.backend.end_times(self.sweep_id) if t >= started_at])

    def running_by_agent(self) -> dict[str, str]:
        return {r.agent or "": r.name for r in self.backend.runs(self.sweep_id, ["running"])}

    def finished(self) -> bool:
        return self.backend.get_sweep(self.sweep_id).state == "finished"

    def done_message(self, exit_codes: list[int | None]) -> str | None:
        """What to say when every agent has exited and the sweep is done (else None)."""
        return f"sweep {self.sweep_id} is done" if self.finished() else None


class WandbProgress:
    """A W&B sweep, as the launcher sees it: counts through W&B's API, read now and then."""

    def __init__(self, path: str, refresh_seconds: float = WANDB_REFRESH_SECONDS) -> None:
        from .backends import wandb as wandb_backend

        self.path = wandb_backend.parse_sweep_path(path)
        self.sweep_id, self.method = str(self.path), "W&B"
        self.name: str | None = None
        self.total: int | None = None
        self.log_dir = Path("asc-sweep-logs") / self.path.sweep_id
        self.refresh_seconds = refresh_seconds
        self._counts, self._state, self._read_at = SweepCounts(), "", -float("inf")
        self._done_at_start: int | None = None

    def agent_args(self) -> list[str]:
        return [self.sweep_id]

    def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self.refresh_seconds:
            return
        from .backends import wandb as wandb_backend
        from .errors import AscSweepError

        self._read_at = time.monotonic()
        try:
            api_sweep = wandb_backend.api_sweep(self.path)
            self._counts, self.total = wandb_backend.sweep_counts(api_sweep)
        except AscSweepError:
            return  # a network hiccup: keep the last figures, the agents carry on regardless
        self.method = str(api_sweep.config.get("method", "W&B"))
        self.name = api_sweep.config.get("name")
        self._state = str(getattr(api_sweep, "state", "") or "").lower()
        if self._done_at_start is None:
            self._done_at_start = self._counts.done

    def counts(self) -> SweepCounts:
        self._refresh()
        return self._counts

    def ended_since(self, started_at: float) -> int:
        return self._counts.done - (self._done_at_start or 0)

    def running_by_agent(self) -> dict[str, str]:
        return {}  # W&B knows agents by host, not by process

    def finished(self) -> bool:
        self._read_at = -float("inf")
        self._refresh()
        return self._state == "finished"

    def done_message(self, exit_codes: list[int | None]) -> str | None:
        # W&B's agents exit 0 when W&B has no more runs for them: the sweep is done.
        if all(code == 0 for code in exit_codes):
            return f"W&B sweep {self.sweep_id} has no more runs"
        return None


@dataclass
class AgentSlot:
    """One supervised agent process (restarted in place when it dies)."""

    index: int
    gpu: str | None
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    state: Literal["running", "done", "gave_up"] = "running"
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def agent_name(self) -> str | None:
        return f"{socket.gethostname()}:{self.proc.pid}" if self.proc else None


def threads_per_agent(agents: int, cpus: int | None = None) -> int:
    """CPU threads each agent may use so that together they fill, not oversubscribe, the host."""
    return max(1, (cpus or os.cpu_count() or 1) // agents)


def gpu_for(index: int, gpus: list[str] | None) -> str | None:
    """Round robin: agent ``index`` gets ``gpus[index % len(gpus)]``."""
    return gpus[index % len(gpus)] if gpus else None


class Launcher:
    """Starts, watches and restarts agents; renders the sweep's progress."""

    def __init__(
        self,
        store: str | Path | None,
        sweep: Sweep | str,
        *,
        agents: int,
        gpus: list[str] | None = None,
        function: str | None = None,
        threads: int | None = None,
        max_restarts: int = 3,
        log_dir: Path | None = None,
        console: Console | None = None,
        poll_seconds: float = 0.5,
        tracking: str | None = None,
    ) -> None:
        if agents < 1:
            raise ValueError("agents must be >= 1")
        if isinstance(sweep, str):  # a W&B sweep, ENTITY/PROJECT/SWEEP_ID
            self.progress: LocalProgress | WandbProgress = WandbProgress(sweep)
        else:
            if store is None:
                raise ValueError("a local sweep needs its store")
            self.progress = LocalProgress(Path(store).resolve(), sweep)
        self.function = function
        self.tracking = tracking
        self.threads = threads or threads_per_agent(agents)
        self.max_restarts = max_restarts
        self.console = console or Console(stderr=True)
        self.poll_seconds = poll_seconds
        self.log_dir = log_dir or self.progress.log_dir
        self.slots = [
            AgentSlot(i, gpu_for(i, gpus), self.log_dir / f"agent-{i}.log") for i in range(agents)
        ]
        self.started_at = time.time()
        self._signal: int | None = None

    # --- processes ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "asc_sweep", "agent", *self.progress.agent_args()]
        cmd += ["--threads", str(self.threads)]
        if self.function:
            cmd += ["--function", self.function]
        if self.tracking:
            cmd += ["--tracking", self.tracking]
        return cmd

    def _env(self, slot: AgentSlot) -> dict[str, str]:
        env = dict(os.environ)
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(self.threads)
        env["ASC_SWEEP_AGENT_INDEX"] = str(slot.index)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start(self, slot: AgentSlot) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if slot.log_file is None:
            slot.log_file = open(slot.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        slot.proc = subprocess.Popen(
            self._command(), env=self._env(slot), stdout=slot.log_file, stderr=subprocess.STDOUT
        )
        slot.state = "running"

    def _check(self, slot: AgentSlot) -> None:
        """React to an agent that exited: done, or restart, or give up."""
        if slot.state != "running" or slot.proc is None:
            return
        code = slot.proc.poll()
        if code is None:
            return
        where = f"agent {slot.index}" + (f" (GPU {slot.gpu})" if slot.gpu is not None else "")
        if code == 0 or self._signal is not None:
            slot.state = "done"
            return
        if self.progress.finished():
            slot.state = "done"
            return
        if code == USAGE_ERROR:
            slot.state = "gave_up"
            self._event(
                f"{where} stopped on a usage error, not restarted: {_last_line(slot.log_path)}"
            )
            return
        if slot.restarts >= self.max_restarts:
            slot.state = "gave_up"
            self._event(f"{where} died (exit {code}) {slot.restarts + 1} times; not restarting it")
            return
        slot.restarts += 1
        self._event(
            f"{where} died (exit {code}); restarting it ({slot.restarts}/{self.max_restarts})"
        )
        self._start(slot)

    def _event(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        # Printed above the live view (rich keeps the view at the bottom), never wrapped away.
        self.console.print(line, style="yellow", highlight=False, markup=False)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signal = signum

    def _stop_all(self, timeout: float = 30.0) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        for slot in self.slots:
            if slot.proc is None:
                continue
            try:
                slot.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                slot.proc.wait()
            slot.state = "done"

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until the sweep is done. Returns the exit code for the CLI."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for slot in self.slots:
                self._start(slot)
            with Live(
                self.render(), console=self.console, refresh_per_second=2, transient=False
            ) as live:
                while any(s.state == "running" for s in self.slots):
                    if self._signal is not None:
                        self._event("stopping: agents put their runs back in the queue")
                        live.update(self.render())
                        self._stop_all()
                        break
                    for slot in self.slots:
                        self._check(slot)
                    live.update(self.render())
                    time.sleep(self.poll_seconds)
                live.update(self.render())
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for slot in self.slots:
                if slot.log_file is not None:
                    slot.log_file.close()
        return self._exit_code()

    def _exit_code(self) -> int:
        if self._signal == signal.SIGINT:
            return 130
        if self._signal is not None:
            return 0
        codes = [slot.proc.returncode if slot.proc else None for slot in self.slots]
        done = self.progress.done_message(codes)
        if done:
            self.console.print(f"{done}; agent logs in {self.log_dir}")
            return 0
        self.console.print(
            f"[red]all agents stopped before sweep {self.progress.sweep_id} was done; "
            f"logs in {self.log_dir}[/]"
        )
        return 1

    # --- the view ----------------------------------------------------------------------------

    def render(self) -> Group:
        progress = self.progress
        counts = progress.counts()
        total = progress.total
        elapsed = max(1e-6, time.time() - self.started_at)
        rate = progress.ended_since(self.started_at) / elapsed  # runs per second since launch
        remaining = None if total is None else max(0, total - counts.done)
        eta = "-" if remaining is None or rate == 0 else _duration(remaining / rate)

        head = Table.grid(padding=(0, 2))
        title = f"sweep {progress.sweep_id}" + (f" ({progress.name})" if progress.name else "")
        head.add_row(
            Text(title, style="bold"), f"{progress.method}", f"elapsed {_duration(elapsed)}"
        )
        states = Table(box=None, padding=(0, 1))
        for col in (
            "pending",
            "running",
            "finished",
            "stopped",
            "failed",
            "total",
            "per min",
            "ETA",
        ):
            states.add_column(col, justify="right")
        pending = counts.outstanding(total)
        states.add_row(
            str(pending),
            str(counts["running"]),
            str(counts["finished"]),
            str(counts["stopped"]),
            str(counts["failed"]),
            "-" if total is None else str(total),
            f"{rate * 60:.1f}",
            eta,
        )
        agents = Table(box=None, padding=(0, 2))
        for col in ("agent", "gpu", "pid", "state", "restarts", "run"):
            agents.add_column(col)
        running = progress.running_by_agent()
        for slot in self.slots:
            agents.add_row(
                str(slot.index),
                "-" if slot.gpu is None else slot.gpu,
                str(slot.proc.pid) if slot.proc else "-",
                slot.state,
                str(slot.restarts),
                running.get(slot.agent_name or "", "-"),
            )
        return Group(head, states, agents)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"
