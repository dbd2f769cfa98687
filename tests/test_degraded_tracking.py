"""W&B failing must never cost a result: an unreachable server and an unwritable W&B folder
each leave every run trained and stored, and the user told once with what to do."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asc_sweep.backends import LocalBackend

from .conftest import agent_env, mlp_sweep

FAKE_KEY = "local-0123456789abcdef0123456789abcdef01234567"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_agent(store: Path, sweep_id: str, tracking: str, cwd: Path, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "agent", sweep_id, "--store", str(store),
         "--tracking", tracking, "--poll-seconds", "0.1"],
        env=agent_env(**env), capture_output=True, text=True, timeout=400, cwd=cwd,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def finished_with_results(store: Path, sweep_id: str) -> list[float]:
    with LocalBackend(store) as backend:
        runs = backend.runs(sweep_id)
    assert [r.state for r in runs] == ["finished", "finished"], [r.state for r in runs]
    return [float(r.summary["test/accuracy"]) for r in runs]


def test_an_unreachable_wandb_server_leaves_runs_trained_stored_and_logged_offline(
    synth_root: Path, store: Path, tmp_path: Path
) -> None:
    sweep_id = mlp_sweep(store, synth_root)
    wandb_dir = tmp_path / "wandb-files"
    output = run_agent(
        store, sweep_id, "online", tmp_path,
        WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}", WANDB_API_KEY=FAKE_KEY,
        WANDB_DIR=str(wandb_dir), WANDB_INIT_TIMEOUT="3",
    )  # fmt: skip
    assert all(0 <= a <= 1 for a in finished_with_results(store, sweep_id))
    told = [line for line in output.splitlines() if "W&B cannot be reached" in line]
    assert len(told) == 1, output  # once per agent, not once per run
    assert f"wandb sync {wandb_dir / 'wandb' / 'offline-run-*'}" in told[0]
    # Both runs were kept offline (the second went offline at once, without a timeout).
    assert len(list((wandb_dir / "wandb").glob("offline-run-*"))) == 2
    assert FAKE_KEY not in output


def test_an_unwritable_wandb_folder_leaves_runs_trained_and_stored(
    synth_root: Path, store: Path, tmp_path: Path
) -> None:
    sweep_id = mlp_sweep(store, synth_root)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where W&B's folder should be\n")
    output = run_agent(store, sweep_id, "offline", tmp_path, WANDB_DIR=str(blocker / "wandb"))
    assert all(0 <= a <= 1 for a in finished_with_results(store, sweep_id))
    told = [line for line in output.splitlines() if "W&B cannot write" in line]
    assert len(told) == 1, output
    assert str(blocker / "wandb") in told[0] and "sweep store" in told[0]
    assert "Traceback" not in output


def test_a_wandb_failure_mid_run_costs_the_run_nothing(
    synth_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asc_sweep.run import tracking
    from asc_sweep.run.context import StandaloneContext
    from asc_sweep.run.tracking import WandbTracker

    monkeypatch.setattr(tracking._Degraded, "told", set())  # told once per process
    from asc_sweep.run.train import train_and_evaluate
    from asc_sweep.sweep.config import RunConfig

    class DiskFillsUp(WandbTracker):
        """A real offline W&B run whose folder's disk fills after the first epoch."""

        def start(self, *args: Any, **kwargs: Any) -> None:
            super().start(*args, **kwargs)
            real_log, calls = self.run.log, []

            def log(*a: Any, **kw: Any) -> None:
                calls.append(1)
                if len(calls) > 1:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path))
                real_log(*a, **kw)

            self.run.log = log

    config = RunConfig.from_dict({"dataset": "synth", "data_root": str(synth_root), "epochs": 3,
                                  "arch": "dcase2017_mlp", "n_mels": 40, "crop_seconds": 0.5,
                                  "device": "cpu"})  # fmt: skip
    result = train_and_evaluate(config, DiskFillsUp("offline", directory=tmp_path),
                                context=StandaloneContext())  # fmt: skip
    assert result.epochs_run == 3 and 0 <= result.test["accuracy"] <= 1
    err = capsys.readouterr().err
    assert err.count("W&B logging failed mid-run") == 1 and "No space left on device" in err
