"""One run lifecycle: every way a run can be stopped, lost or resumed, with real training.

Each test is a scenario that once lost or corrupted a run: resumed history cut short, an agent
that lost its lease still acting as the owner, a signal leaving a store transaction open, a
CUDA run on a CPU host failing a whole grid, a heartbeat dying silently, a report written
before its arguments were checked.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from rich.console import Console

from asc_sweep.agent.agent import Agent, AgentRunContext, Heartbeat
from asc_sweep.backends import LocalBackend
from asc_sweep.errors import StoreError
from asc_sweep.run.context import RunInterrupted, StandaloneContext, StopFlag
from asc_sweep.run.metrics import epochs_to_fraction
from asc_sweep.run.tracking import Tracker
from asc_sweep.run.train import run_for_agent, train_and_evaluate
from asc_sweep.sweep.config import RunConfig
from asc_sweep.sweep.spec import parse_spec

from .conftest import agent_env, wait_for

KNOBS = {"dataset": "synth", "sample_rate": 8000, "n_mels": 32, "arch": "dcase2017_mlp",
         "epochs": 6, "batch_size": 8, "crop_seconds": 0.5, "patience": 0, "device": "cpu",
         "val_fraction": 0.25, "lr": 0.003}  # fmt: skip


def make_sweep(store: Path, synth_root: Path, lease: float = 60.0, **overrides: Any) -> str:
    params = {
        k: {"value": v} for k, v in {**KNOBS, "data_root": str(synth_root), **overrides}.items()
    }
    params["fold"] = {"values": [1]}
    spec = {"method": "grid", "metric": {"name": "val/accuracy", "goal": "maximize"},
            "parameters": params}  # fmt: skip
    with LocalBackend(store) as backend:
        return backend.create_sweep(parse_spec(yaml.safe_dump(spec)), lease_seconds=lease).id


def agent_cmd(store: Path, sweep_id: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "asc_sweep", "agent", sweep_id, "--store", str(store),
            "--tracking", "off", "--threads", "1", "--poll-seconds", "0.1", *extra]  # fmt: skip


def history_len(store: Path, sweep_id: str) -> int:
    with LocalBackend(store) as backend:
        (run,) = backend.runs(sweep_id)
        return len(backend.history(run.id))


def test_a_resumed_runs_stored_history_is_whole_and_agrees_with_its_summary(
    synth_root: Path, store: Path
) -> None:
    """SIGTERM after epoch 3, a new agent resumes: the store holds epochs 1..6, as an
    uninterrupted run does, so hyperband and the report see the run's real curve."""
    # 20 epochs of the DCASE 2018 CNN, paced at 0.2 s an epoch, so the signal lands mid-run.
    sweep_id = make_sweep(store, synth_root, arch="dcase2018_cnn", epochs=20)
    first = subprocess.Popen(agent_cmd(store, sweep_id, "--function", "runfns:paced_trainer"),
                             env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    wait_for(lambda: history_len(store, sweep_id) >= 3, 120, "three stored epochs")
    first.send_signal(signal.SIGTERM)
    out = first.communicate(timeout=60)[0].decode()
    assert first.returncode == 0, out
    assert "back in the queue" in out
    second = subprocess.run(agent_cmd(store, sweep_id), env=agent_env(), capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert second.returncode == 0, second.stderr
    resumed_at = int(second.stderr.split(f"{sweep_id}-0001 resumed after epoch ")[1].split()[0])
    printed = [int(ln.split(" epoch ")[1].split(":")[0]) for ln in second.stderr.splitlines()
               if f"{sweep_id}-0001 epoch " in ln]  # fmt: skip
    assert printed == list(range(resumed_at + 1, 21))  # restored epochs are not printed again
    with LocalBackend(store) as backend:
        (run,) = backend.runs(sweep_id)
        history = backend.history(run.id)
    assert run.state == "finished" and run.summary is not None
    assert run.summary["resumed_from_epoch"] >= 3
    assert [h["epoch"] for h in history] == list(range(1, 21))
    assert run.summary["epochs_to_90"] == epochs_to_fraction([h["val/accuracy"] for h in history])
    # Training time and throughput count both attempts, not the last one alone.
    assert run.summary["time/train_seconds"] == pytest.approx(
        sum(h["time/epoch_seconds"] for h in history)
    )
    # The same configuration trained without interruption: the same curve, to the bit.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the agents ran (--threads 1): the same reduction order
    try:
        straight = train_and_evaluate(RunConfig.from_dict({**run.params}))
    finally:
        torch.set_num_threads(threads)
    assert [h["train/loss"] for h in history] == [h["train/loss"] for h in straight.history]
    assert run.summary["test/accuracy"] == straight.test["accuracy"]


class RecordingTracker(Tracker):
    def __init__(self) -> None:
        self.events: list[str] = []

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.events.append(f"log {step}")

    def finish(self, summary: Mapping[str, Any], **kw: Any) -> None:
        self.events.append("finish")

    def abort(self, reason: str) -> None:
        self.events.append(f"abort {reason}")


def test_an_agent_that_lost_its_lease_writes_nothing_more(
    synth_root: Path, store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """While epoch 2 is reported, the lease has expired and agent B holds the run. Agent A
    stops there: no checkpoint over B's, no test evaluation, no tracker finish, no removal of
    the checkpoint folder that is now B's."""
    sweep_id = make_sweep(store, synth_root)
    tracker = RecordingTracker()
    monkeypatch.setattr("asc_sweep.run.train.make_tracker", lambda mode: tracker)
    original_log = AgentRunContext.log
    taken: dict[str, Any] = {}

    def log_after_takeover(
        self: AgentRunContext, metrics: Mapping[str, Any], step: Any = None, **kw: Any
    ) -> None:
        if step == 1 and not taken:
            checkpoint = self.run_dir / "checkpoint.pt" if self.run_dir else None
            taken["checkpoint"] = checkpoint.read_bytes() if checkpoint else None
            with LocalBackend(store) as other:  # the lease runs out; agent B claims the run
                other._conn.execute("UPDATE runs SET lease_expires = 0")
                taken["claim"] = other.claim(sweep_id, "agent-b")
        original_log(self, metrics, step, **kw)

    monkeypatch.setattr(AgentRunContext, "log", log_after_takeover)
    evaluated: list[int] = []
    monkeypatch.setattr("asc_sweep.run.train.conclude", lambda *a, **k: evaluated.append(1))
    runs_dir = tmp_path / "runs"
    with LocalBackend(store) as backend, open(os.devnull, "w") as devnull:
        agent = Agent(backend, sweep_id, run_for_agent, runs_dir=runs_dir, count=1,
                      console=Console(file=devnull))  # fmt: skip
        stats = agent.run()
    assert stats.lost == 1 and stats.finished == 0
    assert evaluated == []  # no test evaluation by the old owner
    assert tracker.events[-1].startswith("abort lease lost") and "finish" not in tracker.events
    (run_dir,) = runs_dir.iterdir()  # B's checkpoint folder is still there, untouched
    assert (run_dir / "checkpoint.pt").read_bytes() == taken["checkpoint"]
    with LocalBackend(store) as backend:
        (run,) = backend.runs(sweep_id)
        assert run.state == "running" and run.agent == "agent-b"
        assert backend.history(run.id) == []  # A's epoch 2 never reached B's history


class SignalAfterBegin:
    """A connection that gets SIGTERM right after ``BEGIN IMMEDIATE`` of the run's first log."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn, self.armed = conn, False

    def execute(self, sql: str, *args: Any) -> Any:
        cursor = self._conn.execute(sql, *args)
        if sql == "BEGIN IMMEDIATE" and self.armed:
            self.armed = False
            signal.raise_signal(signal.SIGTERM)  # its handler runs before this line returns
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_signal_during_a_store_write_leaves_no_transaction_open(store: Path) -> None:
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec("method: grid\nparameters:\n  fold: {values: [1]}\n")
        )
    backend = LocalBackend(store)
    proxy = SignalAfterBegin(backend._conn)
    backend._conn = proxy  # type: ignore[assignment]

    def run(params: dict[str, Any], ctx: AgentRunContext) -> dict[str, Any]:
        proxy.armed = True
        ctx.log({"epoch": 1, "val/loss": 1.0})  # SIGTERM lands inside this store write
        return {} if ctx.stop.aborts else {"val/loss": 1.0}

    with open(os.devnull, "w") as devnull:
        stats = Agent(backend, sweep.id, run, console=Console(file=devnull)).run()
    assert stats.requeued == 1 and not backend._conn.in_transaction
    backend.close()
    with LocalBackend(store) as fresh:
        (row,) = fresh.runs(sweep.id)
        assert row.state == "pending" and row.attempts == 0  # back in the queue at once


def test_device_cuda_on_a_host_without_a_gpu_puts_the_run_back_and_exits_2(
    synth_root: Path, store: Path
) -> None:
    sweep_id = make_sweep(store, synth_root, device="cuda")
    env = agent_env(CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(agent_cmd(store, sweep_id), env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "device: cuda was asked for but no CUDA GPU is visible" in proc.stderr
    assert "Traceback" not in proc.stderr
    with LocalBackend(store) as backend:
        (run,) = backend.runs(sweep_id)
        assert run.state == "pending"  # not failed: the grid is intact for a host with a GPU


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this host")
def test_a_full_disk_at_a_checkpoint_puts_the_run_back_and_exits_2(
    synth_root: Path, store: Path
) -> None:
    """A checkpoint that cannot be written (here: its file leads to /dev/full, which answers
    every write with ENOSPC) is the host's problem: the run goes back to the queue with no
    attempt spent, its earlier checkpoint intact, and the agent stops with one line instead of
    failing run after run. Once there is room again, the run trains to the end."""
    sweep_id = make_sweep(store, synth_root, epochs=2)
    run_dir = store.parent / "asc-sweep-runs" / sweep_id / f"{sweep_id}-0001"
    run_dir.mkdir(parents=True)
    (run_dir / ".checkpoint.pt.tmp").symlink_to("/dev/full")
    proc = subprocess.run(agent_cmd(store, sweep_id), env=agent_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot write the run's checkpoint (No space left on device)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (run_dir / ".checkpoint.pt.tmp").exists()  # the half-written file is gone
    with LocalBackend(store) as backend:
        (run,) = backend.runs(sweep_id)
        assert run.state == "pending" and run.attempts == 0
    proc = subprocess.run(agent_cmd(store, sweep_id), env=agent_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with LocalBackend(store) as backend:
        (run,) = backend.runs(sweep_id)
        assert run.state == "finished" and run.attempts == 1
        assert len(backend.history(run.id)) == 2


def test_a_retried_run_takes_over_its_failed_attempts_checkpoint(
    synth_root: Path, store: Path, tmp_path: Path
) -> None:
    """A run that fails in its third epoch (a transient error) and is retried resumes from
    the two epochs its failed attempt checkpointed on this host, and ends exactly as a run
    that never failed."""
    sweep_id = make_sweep(store, synth_root, epochs=4)
    crashing = agent_cmd(store, sweep_id, "--function", "runfns:trainer_crashing_once_in_epoch_3")
    env = agent_env(CRASH_MARKER=str(tmp_path / "crashed"))
    first = subprocess.run(crashing, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    runs_dir = store.parent / "asc-sweep-runs" / sweep_id
    with LocalBackend(store) as backend:
        (failed,) = backend.runs(sweep_id)
        assert failed.state == "failed" and "CUDA out of memory" in (failed.error or "")
        (retry,) = backend.retry(sweep_id)
    assert (runs_dir / failed.name).is_dir()
    second = subprocess.run(crashing, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"{retry.name} takes over the checkpoint of {failed.name}" in second.stderr
    with LocalBackend(store) as backend:
        done = backend.get_run(retry.id)
        history = backend.history(retry.id)
    assert done.state == "finished" and done.summary is not None
    assert done.summary["resumed_from_epoch"] == 2
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]  # the whole history, replayed
    assert not (runs_dir / failed.name).exists() and not (runs_dir / retry.name).exists()
    config = RunConfig.from_dict(failed.params)
    straight = train_and_evaluate(config)
    assert [h["train/loss"] for h in history] == [h["train/loss"] for h in straight.history]
    assert done.summary["test/accuracy"] == straight.test["accuracy"]


class FlakyStore:
    """A store whose heartbeat fails twice (a busy database), then works."""

    def __init__(self) -> None:
        self.calls = 0
        self.opened = 0

    def reopen(self) -> FlakyStore:
        self.opened += 1
        return self

    def close(self) -> None:
        pass

    def heartbeat(self, run_id: int, token: str) -> bool:
        self.calls += 1
        if self.calls <= 2:
            raise sqlite3.OperationalError("database is locked")
        return False


class UnreachableAtFirst(FlakyStore):
    """A store that refuses the heartbeat's own connection twice (a server at its
    max_connections), then takes it; its heartbeats work."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 2

    def reopen(self) -> FlakyStore:
        if super().reopen().opened <= 2:
            raise StoreError("postgresql://asc@db/asc: cannot connect (too many clients already)")
        return self


@pytest.mark.parametrize(
    ("flaky", "failure", "opened"),
    [
        (FlakyStore, "database is locked", 1),
        (UnreachableAtFirst, "postgresql://asc@db/asc: cannot connect", 3),
    ],
)
def test_a_heartbeat_reports_store_errors_and_keeps_beating(
    flaky: type[FlakyStore], failure: str, opened: int
) -> None:
    store = flaky()
    ctx = AgentRunContext(run_id=1, run_name="abc-0001", sweep_id="abc", attempt=1, agent="a",
                          run_dir=None, _store=store, _token="t")  # type: ignore[arg-type]  # fmt: skip
    console = Console(record=True, width=200)
    with Heartbeat(store, ctx, interval=0.05, console=console) as beat:  # type: ignore[arg-type]
        wait_for(lambda: store.calls >= 4, 10, "two beats that worked")
        assert beat.thread.is_alive()
    assert store.opened == opened  # the heartbeat's own connection, tried at each beat
    text = console.export_text()
    assert text.count(f"heartbeat failed ({failure}") == 1
    assert "heartbeat back after 2 failures" in text
    assert not ctx.stop.is_set


def test_report_checks_every_argument_before_writing_anything(
    store: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(
            "method: grid\nparameters:\n  init: {values: [default, he_normal]}\n  fold: {values: [1, 2]}\n"
        ))  # fmt: skip
        for _ in range(4):
            claim = backend.claim(sweep.id, "a")
            assert claim.run is not None and claim.token is not None
            backend.finish(claim.run.id, claim.token, {"test/accuracy": 0.5})
    out = tmp_path / "report"
    for reference, message in (
        ("init=he_uniform", "--reference init=he_uniform: init takes no such level; its levels: default, he_normal"),
        ("arch=cnn6", "--reference arch: not a swept factor; swept: init"),
    ):  # fmt: skip
        result = cli("report", sweep.id, "--store", store, "--out", out, "--reference", reference)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert not out.exists()  # nothing written
    good = cli("report", sweep.id, "--store", store, "--out", out, "--reference", "init=he_normal")
    assert good.exit_code == 0, good.output
    assert (out / "report.md").exists()


def test_a_patience_stop_is_a_normal_finish_with_its_reason(synth_root: Path) -> None:
    config = RunConfig.from_dict({**KNOBS, "data_root": str(synth_root), "epochs": 40, "patience": 2,
                                  "lr": 1e-9})  # fmt: skip
    result = train_and_evaluate(config)
    assert result.epochs_run < 40 and not result.stopped
    assert result.end_reason == "patience: no validation improvement for 2 epochs"
    summary = result.summary()
    assert summary["stopped"] is False and summary["end_reason"] == result.end_reason


class SignalAfterBatches(StopFlag):
    """A stop flag that a signal sets after ``after`` more batch-boundary checks, once armed."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.countdown: int | None = None
        self.after = after

    @property
    def is_set(self) -> bool:
        if self.countdown is not None:
            self.countdown -= 1
            if self.countdown < 0:
                self.request("signal", "agent stopped by SIGTERM")
        return super().is_set


def test_an_abort_raises_from_the_trainer_at_a_batch_boundary(
    synth_root: Path, tmp_path: Path
) -> None:
    """A signal in the middle of epoch 3 ends the run at the next batch: the partial epoch is
    dropped, the checkpoint is epoch 2's, the tracker is aborted, nothing is evaluated."""
    config = RunConfig.from_dict({**KNOBS, "data_root": str(synth_root)})
    flag = SignalAfterBatches(after=2)

    class Context(StandaloneContext):
        def log(self, metrics: Mapping[str, Any], step: int | None = None, **kw: Any) -> None:
            if step == 1:  # epoch 2 is stored; the signal comes during epoch 3
                flag.countdown = flag.after + 1  # the loop's own check, then two batches

    context = Context(run_dir=tmp_path / "run")
    context.stop = flag
    tracker = RecordingTracker()
    with pytest.raises(RunInterrupted, match="agent stopped by SIGTERM"):
        train_and_evaluate(config, tracker, context=context)
    assert tracker.events == ["log 0", "log 1", "abort agent stopped by SIGTERM"]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 2 and len(state["history"]) == 2


def test_launch_into_a_pipe_prints_progress_and_exits_143_when_sigtermed_unfinished(
    store: Path, tmp_path: Path
) -> None:
    """A batch job's log gets plain progress lines while the sweep runs; SIGTERM puts the runs
    in flight back and exits non-zero, so the scheduler knows the sweep is not done."""
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec("method: grid\nparameters:\n  fold: {values: [1, 2, 3, 4]}\n")
        )
    cmd = [sys.executable, "-m", "asc_sweep", "launch", sweep.id, "--store", str(store),
           "--agents", "2", "--function", "runfns:slow", "--tracking", "off"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=agent_env(ASC_TEST_SLEEP="30"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip

    def running() -> bool:
        with LocalBackend(store) as backend:
            return backend.counts(sweep.id)["running"] == 2

    wait_for(running, 60, "two runs in flight")
    time.sleep(1.0)  # a poll of the launcher after the change
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert f"sweep {sweep.id}: 0/4 done" in err and "2 running" in err  # plain progress lines
    assert "is not done; start agents again" in err
    with LocalBackend(store) as backend:
        assert backend.counts(sweep.id)["pending"] == 4  # both runs in flight went back


def test_an_agents_log_has_a_line_per_epoch(synth_root: Path, store: Path) -> None:
    sweep_id = make_sweep(store, synth_root, epochs=2)
    proc = subprocess.run(agent_cmd(store, sweep_id), env=agent_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if " epoch " in ln]
    assert len(lines) == 2
    assert lines[0].startswith(f"{sweep_id}-0001 epoch 1: train loss ")
    assert " acc " in lines[0] and "| val loss " in lines[0] and lines[0].endswith(" s")
