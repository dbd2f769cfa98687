"""The wandb backend, with the real W&B SDK and a stand-in server at its network boundary.

Creating a sweep goes through ``wandb.sweep`` (its config checks included) up to the GraphQL
upsert; agents are W&B's own agent loop, which starts ``asc-sweep wandb-run`` per configuration
in real child processes that train and log offline W&B runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from asc_sweep.agent.wandb_run import run_configuration
from asc_sweep.backends import wandb as wandb_backend
from asc_sweep.sweep.config import RunConfig

from .conftest import agent_env
from .wandb_log import read_offline_run

FAKE_KEY = "f" * 40  # never sent anywhere: the network is stood in for


def test_sweep_paths() -> None:
    assert wandb_backend.is_sweep_path("lab/asc/abc123")
    assert not wandb_backend.is_sweep_path("k3x9qa") and not wandb_backend.is_sweep_path(None)
    assert str(wandb_backend.parse_sweep_path("lab/asc/abc123/")) == "lab/asc/abc123"
    with pytest.raises(wandb_backend.AscSweepError, match="ENTITY/PROJECT/SWEEP_ID"):
        wandb_backend.parse_sweep_path("asc/abc123")


def test_create_registers_the_spec_with_wandb(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    import wandb
    import wandb.apis.public.sweeps as sweeps_api
    from wandb.sdk import wandb_login

    from .wandb_server import StandInApi

    upserted: list[dict[str, Any]] = []

    def upsert(api: Any, config: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[str]]:
        upserted.append(config)
        return {"name": "swp123"}, []

    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setattr(sweeps_api, "_upsert_sweep", upsert)
    monkeypatch.setattr(wandb, "Api", StandInApi)
    monkeypatch.setattr(wandb_login, "_login", lambda *a, **k: True)
    root = Path(__file__).parents[1]
    result = cli("create", root / "sweeps" / "demo.yaml", "--backend", "wandb", "--project", "asc")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "lab/asc/swp123"  # stdout is the path alone, for scripts
    assert "asc-sweep agent lab/asc/swp123" in result.stderr
    (config,) = upserted
    spec = yaml.safe_load((root / "sweeps" / "demo.yaml").read_text())
    assert config["parameters"] == spec["parameters"] and config["method"] == spec["method"]
    assert config["command"] == ["${env}", "asc-sweep", "wandb-run", "${args_json_file}"]
    assert FAKE_KEY not in result.output
    assert "hyperband" not in result.stderr
    # W&B's controller pools every fold for hyperband: create says so.
    spec = tmp_path / "hyperband.yaml"
    spec.write_text("method: grid\nmetric: {name: val/accuracy, goal: maximize}\n"
                    "early_terminate: {type: hyperband, min_iter: 2}\n"
                    "parameters:\n  lr: {values: [0.01, 0.001]}\n  fold: {values: [1, 2]}\n")  # fmt: skip
    pooled = cli("create", spec, "--backend", "wandb", "--project", "asc")
    assert pooled.exit_code == 0, pooled.output
    assert "note: W&B's controller draws hyperband's thresholds over every run, whatever its fold" in " ".join(pooled.stderr.split())  # fmt: skip


def test_create_without_credentials_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    root = Path(__file__).parents[1]
    result = cli("create", root / "sweeps" / "demo.yaml", "--backend", "wandb")
    assert result.exit_code == 2
    assert "needs W&B credentials" in result.stderr and "Traceback" not in result.output
    unknown = cli("create", root / "sweeps" / "demo.yaml", "--backend", "cloud")
    assert unknown.exit_code == 2 and "allowed: local, postgres, wandb" in unknown.stderr


def _offline_run(wandb_dir: Path, run_id: str) -> Any:
    (run_dir,) = (wandb_dir / "wandb").glob(f"offline-run-*-{run_id}")
    deadline = time.time() + 30
    while True:  # the core process may land the last records just after the run ends
        run = read_offline_run(run_dir)
        if "test/accuracy" in run.summary or time.time() > deadline:
            return run
        time.sleep(0.5)


@dataclass
class StandInSweep:
    """A W&B sweep served by tests/wandb_server.py to real asc-sweep processes."""

    proc: subprocess.CompletedProcess[str]
    state: dict[str, Any]  # the controller's: queue, run states, heartbeats, commands
    wandb_dir: Path


def _run_stand_in(
    tmp_path: Path, runs: dict[str, dict[str, Any]], *args: str, **plan_extra: Any
) -> StandInSweep:
    """Serve ``runs`` (W&B run id -> parameters) as sweep lab/asc/swp123 and run
    ``asc-sweep ARGS`` against it; every Python process started gets the stand-in server."""
    first = next(iter(runs.values()))
    parameters = {k: {"values": list(dict.fromkeys(p[k] for p in runs.values()))} for k in first}
    spec = {"method": "grid", "metric": {"name": "val/accuracy", "goal": "maximize"},
            "parameters": parameters}  # fmt: skip
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps({"config": wandb_backend.registered_config(spec), "runs": runs, **plan_extra})
    )
    wandb_dir = tmp_path / "wandb-files"
    wandb_dir.mkdir()
    env = agent_env(WANDB_TEST_PLAN=str(plan), WANDB_API_KEY=FAKE_KEY, WANDB_DIR=str(wandb_dir))
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent / "wandb_site"), env["PYTHONPATH"]]
    )
    env["PATH"] = "/usr/bin:/bin"  # `asc-sweep` must be found without an activated venv
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", *args], env=env, capture_output=True, text=True,
        timeout=500, cwd=tmp_path,
    )  # fmt: skip
    state = json.loads(plan.with_suffix(".log.json").read_text())
    return StandInSweep(proc, state, wandb_dir)


def _tiny(synth_root: Path, **knobs: Any) -> dict[str, Any]:
    return {"dataset": "synth", "data_root": str(synth_root), "arch": "dcase2017_mlp",
            "n_mels": 40, "epochs": 1, "crop_seconds": 0.5, "sample_rate": 16000, **knobs}  # fmt: skip


def test_wandb_agent_trains_each_configuration_in_its_own_process(
    synth_root: Path, tmp_path: Path
) -> None:
    runs = {"r1fold1": _tiny(synth_root, epochs=2, fold=1), "r2fold2": _tiny(synth_root, epochs=2, fold=2)}  # fmt: skip
    sweep = _run_stand_in(tmp_path, runs, "agent", "lab/asc/swp123", "--tracking", "offline")
    assert sweep.proc.returncode == 0, sweep.proc.stderr[-3000:]
    assert [c["type"] for c in sweep.state["commands"]] == ["run", "run", "exit"]
    assert {"r1fold1": True} in sweep.state["heartbeats"]
    assert {"r2fold2": True} in sweep.state["heartbeats"]
    for run_id, params in runs.items():
        run = _offline_run(sweep.wandb_dir, run_id)
        fold = params["fold"]
        assert run.job_type == f"fold{fold}" and run.group == RunConfig.from_dict(params).group
        assert run.config["fold"] == fold and run.config["arch"] == "dcase2017_mlp"
        assert 0.0 <= run.summary["test/accuracy"] <= 1.0
        assert [h["epoch"] for h in run.history if "epoch" in h] == [1, 2]
    assert FAKE_KEY not in sweep.proc.stdout + sweep.proc.stderr


def test_wandb_run_needs_the_agent(tmp_path: Path) -> None:
    args = tmp_path / "args.json"
    args.write_text("{}")
    env = agent_env()
    for var in ("WANDB_SWEEP_ID", "WANDB_RUN_ID"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "wandb-run", str(args)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "W&B's agent" in proc.stderr
    env.update(WANDB_SWEEP_ID="swp123", WANDB_RUN_ID="r1")
    args.write_text("{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "wandb-run", str(args)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and f"{args}: cannot read the run's parameters" in proc.stderr


def test_sigterm_from_wandbs_agent_asks_the_run_to_stop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"fold": 3}))
    monkeypatch.setenv("WANDB_SWEEP_ID", "swp123")
    monkeypatch.setenv("WANDB_RUN_ID", "r7")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv(wandb_backend.FUNCTION_ENV, f"{__name__}:_signalled_run")
    before = signal.getsignal(signal.SIGTERM)
    summary = run_configuration(args)
    assert summary == {
        "fold": 3,
        "stopped": True,
        "reason": "stopped by W&B (early termination, or stop in the UI)",
        "run_dir": str(tmp_path / "asc-sweep-runs" / "swp123" / "r7"),
    }
    assert signal.getsignal(signal.SIGTERM) == before


def _signalled_run(params: dict[str, Any], context: Any) -> dict[str, Any]:
    assert not context.should_stop
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.time() + 5
    while not context.should_stop and time.time() < deadline:
        time.sleep(0.01)
    return {**params, "stopped": context.should_stop, "reason": context.stop_reason,
            "run_dir": str(context.run_dir)}  # fmt: skip


class _Run:
    def __init__(self, state: str) -> None:
        self.state = state


class _Sweep:
    id = "swp123"
    state = "RUNNING"
    expected_run_count = 8

    def __init__(self) -> None:
        self.config = {"method": "grid", "name": "demo", "parameters": {}}
        self.runs = [_Run(s) for s in ("finished", "finished", "running", "crashed", "killed")]


def test_status_of_a_wandb_sweep(monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Any]) -> None:
    monkeypatch.setattr(wandb_backend, "api_sweep", lambda path: _Sweep())
    result = cli("status", "lab/asc/swp123", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["total"] == 8 and info["finished"] == 2 and info["running"] == 1
    assert info["failed"] == 2 and info["state"] == "running" and info["id"] == "lab/asc/swp123"
    table = cli("status", "lab/asc/swp123")
    assert table.exit_code == 0 and "W&B sweep lab/asc/swp123" in table.stdout


def test_a_wandb_search_names_the_knobs_it_draws_from_a_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    search = _Sweep()
    search.config = {"method": "bayes", "metric": {"name": "val/accuracy", "goal": "maximize"},
                     "parameters": {"lr": {"min": 0.0001, "max": 0.1}, "arch": {"values": ["cnn6"]},
                                    "epochs": {"value": 3}}}  # fmt: skip
    monkeypatch.setattr(wandb_backend, "api_sweep", lambda path: search)
    controller = wandb_backend.WandbController(wandb_backend.parse_sweep_path("lab/asc/swp123"))
    assert controller.sampled_knobs() == ["lr"]
    monkeypatch.setattr(wandb_backend, "api_sweep", lambda path: _Sweep())  # a grid: none
    grid = wandb_backend.WandbController(wandb_backend.parse_sweep_path("lab/asc/swp124"))
    assert grid.sampled_knobs() == []


def test_wandb_sweeps_refuse_tracking_off_and_missing_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    for command in ("launch", "agent"):
        off = cli(command, "lab/asc/swp123", "--tracking", "off")
        assert off.exit_code == 2 and "report to W&B" in off.stderr
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    no_key = cli("launch", "lab/asc/swp123", "--agents", "2")
    assert no_key.exit_code == 2 and "needs W&B credentials" in no_key.stderr


def test_launch_supervises_wandb_agents(synth_root: Path, tmp_path: Path) -> None:
    """Two agent processes under `launch` share one W&B sweep: each run is trained once."""
    runs = {f"r{fold}": _tiny(synth_root, fold=fold) for fold in (1, 2, 3)}
    sweep = _run_stand_in(
        tmp_path, runs, "launch", "lab/asc/swp123", "--agents", "2", "--tracking", "offline"
    )
    logs = tmp_path / "asc-sweep-logs" / "swp123"
    agent_log = (logs / "agent-0.log").read_text()[-2000:]
    assert sweep.proc.returncode == 0, sweep.proc.stderr[-2000:] + agent_log
    assert "W&B sweep lab/asc/swp123 has no more runs" in sweep.proc.stderr
    assert sweep.state["runs"] == {"r1": "finished", "r2": "finished", "r3": "finished"}
    handed = sorted(r for agent_runs in sweep.state["agents"].values() for r in agent_runs)
    assert handed == ["r1", "r2", "r3"] and len(sweep.state["agents"]) == 2
    for run_id in runs:
        run = _offline_run(sweep.wandb_dir, run_id)
        assert run.job_type == f"fold{runs[run_id]['fold']}" and "test/accuracy" in run.summary
    assert (logs / "agent-0.log").exists() and (logs / "agent-1.log").exists()


def test_a_run_wandb_stops_ends_its_epoch_and_reports_test_metrics(
    synth_root: Path, tmp_path: Path
) -> None:
    """W&B's controller sends `stop` (hyperband): the run ends after an epoch, still evaluates
    on the test split, says why it stopped, and its process exits cleanly."""
    runs = {"long1": _tiny(synth_root, epochs=500, patience=0, fold=1)}
    sweep = _run_stand_in(
        tmp_path, runs, "agent", "lab/asc/swp123", "--tracking", "offline",
        stop_after_an_epoch=["long1"],  # not a fixed time: a loaded machine is slower
    )  # fmt: skip
    assert sweep.proc.returncode == 0, sweep.proc.stderr[-3000:]
    assert {"type": "stop", "run_id": "long1"} in sweep.state["commands"]
    assert "Kill: long1" not in sweep.proc.stderr  # it ended on SIGTERM, within the kill delay
    run = _offline_run(sweep.wandb_dir, "long1")
    assert run.summary["stopped"] is True
    assert (
        run.summary["end_reason"]
        == "stopped: stopped by W&B (early termination, or stop in the UI)"
    )
    assert 1 <= run.summary["epochs_run"] < 500
    assert 0.0 <= run.summary["test/accuracy"] <= 1.0
