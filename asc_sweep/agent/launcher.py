"""Start and supervise N local agent processes on one host, with a view of the sweep.

Each agent is ``python -m asc_sweep agent`` in its own process, pinned to a GPU by
``CUDA_VISIBLE_DEVICES`` (round robin over ``--gpus``; several agents may share one), with its
CPU threads capped so that agents do not oversubscribe the host. An agent that dies is
restarted (its run goes back to the queue when its lease expires); the launcher exits when the
sweep is done. Progress comes from the sweep's controller, whatever its backend. On a terminal
the view is live; into a file or a pipe it is a plain line whenever the counts change.

Exit codes: 0 the sweep is done; 1 every agent stopped before it was; 2 a usage error; 130
(SIGINT) or 143 (SIGTERM) when a signal stopped an unfinished sweep, so that schedulers can
tell an interrupted job from a complete one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Literal

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from asc_sweep.agent.agent import host_name
from asc_sweep.backends.base import Controller

USAGE_ERROR = 2
PLAIN_EVERY_SECONDS = 60.0  # without a terminal: a line at least this often, and on changes


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
        return f"{host_name()}:{self.proc.pid}" if self.proc else None


def threads_per_agent(agents: int, cpus: int | None = None) -> int:
    """CPU threads each agent may use so that together they fill, not oversubscribe, the host."""
    return max(1, (cpus or os.cpu_count() or 1) // agents)


# Device files a GPU driver creates: NVIDIA (also inside containers run with its toolkit),
# NVIDIA Jetson, AMD ROCm, WSL 2. Where none exists, no CUDA (or ROCm) device can be visible,
# and the launcher answers without importing torch: its agents start 2 s sooner.
GPU_DEVICE_NODES = ("nvidia*", "nvhost*", "kfd", "dxg")


def gpu_driver_present() -> bool:
    """Whether any of :data:`GPU_DEVICE_NODES` exists under ``/dev``."""
    return any(any(Path("/dev").glob(pattern)) for pattern in GPU_DEVICE_NODES)


def visible_gpus() -> list[str]:
    """The GPUs this host lets us use, as ``CUDA_VISIBLE_DEVICES`` names them (its entries
    when it is set, else ``0..n-1``); empty on a host without CUDA."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        names = [g.strip() for g in listed.split(",") if g.strip()]
        # CUDA stops at the first invalid entry ("-1" is the usual way to hide every GPU).
        valid = []
        for name in names:
            if name.startswith("-"):
                break
            valid.append(name)
        return valid
    if not gpu_driver_present():
        return []  # no need to load torch (2 s) to learn that
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


# Agents a CPU host starts by default: one per core, but no more than this (each holds torch,
# a model and its optimiser: several hundred MB), the cores then shared out as threads.
MAX_CPU_AGENTS = 4
# More agents than this per CPU core (and beyond 64 in all) is a typo, not a plan: each is a
# process that holds torch and a fold's data.
MAX_AGENTS_PER_CORE = 8


def plan_agents(
    agents: int | None, gpus: list[str] | None, agents_per_gpu: int | None
) -> tuple[int, list[str] | None]:
    """How many agents to start and the GPUs to pin them to, round robin.

    GPUs default to every visible one; agents default to ``agents_per_gpu`` (else 1) per GPU,
    or, on a host without GPUs, one per CPU core up to ``MAX_CPU_AGENTS`` (single-thread
    agents beat one agent with every thread by 1.5x on the demo: the small models' operators
    do not split well over threads; BENCHMARKS.md, scaling). ``agents_per_gpu`` with an
    explicit ``agents`` that differs from it is refused.

    Raises:
        AscSweepError: ``agents_per_gpu`` on a host without GPUs, or a contradiction.
    """
    from asc_sweep.errors import AscSweepError

    chosen = gpus if gpus is not None else visible_gpus()
    cores = os.cpu_count() or 1
    if not chosen:
        if agents_per_gpu is not None:
            raise AscSweepError(
                "--agents-per-gpu: no GPU is visible on this host (CUDA_VISIBLE_DEVICES, or no "
                "CUDA); use --agents N"
            )
        return checked_agent_count(agents or max(1, min(MAX_CPU_AGENTS, cores)), cores), None
    per_gpu = agents_per_gpu or 1
    if agents is not None and agents_per_gpu is not None and agents != per_gpu * len(chosen):
        raise AscSweepError(
            f"--agents {agents} and --agents-per-gpu {agents_per_gpu} disagree on "
            f"{len(chosen)} GPU(s) ({','.join(chosen)}); give one of them"
        )
    return checked_agent_count(agents or per_gpu * len(chosen), cores), chosen


def checked_agent_count(agents: int, cores: int | None = None) -> int:
    """``agents``, where this host can hold them.

    Raises:
        AscSweepError: more than ``MAX_AGENTS_PER_CORE`` per CPU core (and more than 64).
    """
    from asc_sweep.errors import AscSweepError

    cores = cores or os.cpu_count() or 1
    most = max(64, MAX_AGENTS_PER_CORE * cores)
    if agents > most:
        raise AscSweepError(
            f"--agents {agents}: at most {most} on this host ({MAX_AGENTS_PER_CORE} per CPU core, "
            f"{cores} cores); each agent is a process holding torch and a fold's data"
        )
    return agents


def gpu_for(index: int, gpus: list[str] | None) -> str | None:
    """Round robin: agent ``index`` gets ``gpus[index % len(gpus)]``."""
    return gpus[index % len(gpus)] if gpus else None


class Launcher:
    """Starts, watches and restarts agents; renders the sweep's progress."""

    def __init__(
        self,
        controller: Controller,
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
        self.progress = controller
        self.function = function
        self.tracking = tracking
        self.threads = threads or threads_per_agent(agents)
        self.max_restarts = max_restarts
        self.console = console or Console(stderr=True)
        self.poll_seconds = poll_seconds
        self.log_dir = log_dir or controller.work_dir / "asc-sweep-logs" / controller.key
        self.slots = [
            AgentSlot(i, gpu_for(i, gpus), self.log_dir / f"agent-{i}.log") for i in range(agents)
        ]
        self.started_at = time.time()
        self._signal: int | None = None
        self._last_plain: tuple[tuple[int, ...], float] = ((), -float("inf"))

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
        env = {**os.environ, **self.progress.agent_env()}
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
        if self.progress.is_done():
            slot.state = "done"
            return
        if code == USAGE_ERROR:
            slot.state = "gave_up"
            self._event(
                f"{where} stopped on a usage or environment error, not restarted: "
                f"{_last_line(slot.log_path)}"
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
            if self.console.is_terminal:
                with Live(self.render(), console=self.console, refresh_per_second=2) as live:
                    self._supervise(lambda: live.update(self.render()))
            else:
                self._supervise(self._plain_line)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for slot in self.slots:
                if slot.log_file is not None:
                    slot.log_file.close()
        return self._exit_code()

    def _supervise(self, show: Callable[[], None]) -> None:
        while any(s.state == "running" for s in self.slots):
            if self._signal is not None:
                self._event("stopping: agents put their runs back in the queue")
                self._stop_all()
                break
            for slot in self.slots:
                self._check(slot)
            show()
            time.sleep(self.poll_seconds)
        show()

    def _plain_line(self) -> None:
        """Progress as one plain line, when the counts changed or a while has passed."""
        counts = self.progress.counts()
        key = tuple(counts[s] for s in ("pending", "running", "finished", "stopped", "failed"))
        now = time.monotonic()
        if key == self._last_plain[0] and now - self._last_plain[1] < PLAIN_EVERY_SECONDS:
            return
        self._last_plain = (key, now)
        total = self.progress.total
        done = counts.done
        self.console.print(
            f"{time.strftime('%H:%M:%S')} sweep {self.progress.ref}: {done}/{total or '?'} done "
            f"({counts['finished']} finished, {counts['stopped']} stopped, {counts['failed']} "
            f"failed), {counts['running']} running, {counts.outstanding(total)} pending",
            highlight=False,
            markup=False,
        )

    def _exit_code(self) -> int:
        if self._signal is not None:
            if self.progress.is_done():
                return 0
            self.console.print(
                f"sweep {self.progress.ref} is not done; start agents again to go on",
                highlight=False,
            )
            return 128 + self._signal
        codes = [slot.proc.returncode if slot.proc else None for slot in self.slots]
        done = self.progress.done_message(codes)
        if done:
            self.console.print(f"{done}; agent logs in {self.log_dir}")
            return 0
        self.console.print(
            f"[red]all agents stopped before sweep {self.progress.ref} was done; "
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
        title = f"sweep {progress.ref}" + (f" ({progress.name})" if progress.name else "")
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
