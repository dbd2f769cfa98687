"""Real agent processes on a real SQLite store: no run lost, none duplicated, crashes survived."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from asc_sweep.backends import LocalBackend
from asc_sweep.sweep.spec import parse_spec

from .conftest import ROOT, agent_env, start_agent, wait_for

GRID_256 = """
method: grid
name: four by four by four by four
parameters:
  sample_rate: {values: [8000, 16000, 22050, 32000]}
  init: {values: [default, he_normal, xavier_uniform, orthogonal]}
  arch: {values: [dcase2018_cnn, cnn6, cnn10, cp_resnet]}
  fold: {values: [1, 2, 3, 4]}
"""
TWO_FOLDS = "method: grid\nparameters:\n  fold: {values: [1, 2]}\n"


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def finish(proc: subprocess.Popen[bytes], timeout: float = 120.0) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out.decode(errors="replace")


@pytest.mark.slow
def test_256_configurations_four_agents_each_runs_exactly_once(store: Path, tmp_path: Path) -> None:
    record = tmp_path / "events.jsonl"
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(GRID_256))
    agents = [start_agent(store, sweep.id, "quick", ASC_TEST_RECORD=str(record)) for _ in range(4)]
    outputs = [finish(a, timeout=300) for a in agents]
    assert [a.returncode for a in agents] == [0, 0, 0, 0], outputs

    starts = [e for e in read_events(record) if e["event"] == "start"]
    assert len(starts) == 256  # executed 256 times in all: nothing duplicated
    combos = Counter(tuple(sorted(e["params"].items())) for e in starts)
    assert max(combos.values()) == 1
    expected = {
        (("arch", a), ("fold", f), ("init", i), ("sample_rate", sr))
        for sr, i, a, f in itertools.product(
            [8000, 16000, 22050, 32000],
            ["default", "he_normal", "xavier_uniform", "orthogonal"],
            ["dcase2018_cnn", "cnn6", "cnn10", "cp_resnet"],
            [1, 2, 3, 4],
        )
    }
    assert set(combos) == expected  # nothing lost
    assert len({e["pid"] for e in starts}) >= 2  # the agents really shared the work

    with LocalBackend(store) as backend:
        runs = backend.runs(sweep.id)
        assert len(runs) == 256
        assert {r.state for r in runs} == {"finished"}
        assert {r.attempts for r in runs} == {1}
        assert all(len(backend.history(r.id)) == 3 for r in runs[:10])
        assert backend.get_sweep(sweep.id).state == "finished"


def test_kill_9_mid_run_another_agent_finishes_that_configuration(
    store: Path, tmp_path: Path
) -> None:
    record = tmp_path / "events.jsonl"
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(TWO_FOLDS), lease_seconds=1.5)
    doomed = start_agent(store, sweep.id, "slow", ASC_TEST_RECORD=str(record), ASC_TEST_SLEEP="60")
    wait_for(lambda: read_events(record), what="the first run to start")
    (started,) = read_events(record)
    doomed.kill()  # SIGKILL: no handler runs, no requeue, the lease just stops being renewed
    doomed.wait()

    survivor = start_agent(
        store, sweep.id, "slow", ASC_TEST_RECORD=str(record), ASC_TEST_SLEEP="0.1"
    )
    out = finish(survivor)
    assert survivor.returncode == 0, out
    with LocalBackend(store) as backend:
        run = next(r for r in backend.runs(sweep.id) if r.name == started["run"])
        assert run.state == "finished"
        assert run.attempts == 2
        assert run.params == started["params"]
        assert run.agent and run.agent.endswith(f":{survivor.pid}")
        assert {r.state for r in backend.runs(sweep.id)} == {"finished"}
    redo = [e for e in read_events(record) if e["run"] == started["run"] and e["event"] == "end"]
    assert len(redo) == 1 and redo[0]["attempt"] == 2


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_puts_the_run_back_in_the_queue_at_once(
    store: Path, tmp_path: Path, sig: int
) -> None:
    record = tmp_path / "events.jsonl"
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(TWO_FOLDS), lease_seconds=600)
    agent = start_agent(store, sweep.id, "slow", ASC_TEST_RECORD=str(record), ASC_TEST_SLEEP="60")
    wait_for(lambda: read_events(record), what="the first run to start")
    agent.send_signal(sig)
    out = finish(agent, timeout=15)
    assert agent.returncode == 0, out
    name = signal.Signals(sig).name
    assert f"back in the queue (agent stopped by {name})" in out
    with LocalBackend(store) as backend:
        runs = backend.runs(sweep.id)
        assert [r.state for r in runs] == ["pending", "pending"]  # not waiting for a 600 s lease
        assert [r.attempts for r in runs] == [0, 0]
        assert name in (runs[0].error or "")


def three_folds_by(store: Path, function: str) -> tuple[str, str, dict[int, Any]]:
    """A grid of folds 1-3 through one agent running ``runfns:function``, which must exit 0:
    the sweep's id, the agent's output and the runs by fold."""
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec("method: grid\nparameters:\n  fold: {values: [1, 2, 3]}\n")
        )
    agent = start_agent(store, sweep.id, function)
    out = finish(agent)
    assert agent.returncode == 0, out
    with LocalBackend(store) as backend:
        return sweep.id, out, {r.params["fold"]: r for r in backend.runs(sweep.id)}


def test_a_run_that_raises_is_recorded_and_the_agent_goes_on(store: Path) -> None:
    sweep_id, out, states = three_folds_by(store, "raise_on_fold_2")
    assert states[1].state == states[3].state == "finished"
    assert states[2].state == "failed"
    assert "ValueError: cannot train fold 2" in (states[2].error or "")
    assert "1 failed" in out
    launched = launch(store, sweep_id, "--agents", "1", "--function", "runfns:quick")
    assert launched.returncode == 0, launched.stderr
    assert f"sweep {sweep_id} is done; 1 failed: queue them again with `asc-sweep retry " in (
        launched.stderr
    )


def test_what_a_run_function_returns_is_stored_as_plain_data_or_fails_the_run(
    store: Path,
) -> None:
    """numpy scalars and arrays, tensors, tuples, sets and non-text keys (what functions
    built on numpy or torch return and log) are stored as plain JSON data; an object no store
    can hold, or a result that is not a mapping, fails that run with a line saying what and
    where, and the agent goes on (it raised a JSON error and left the run running)."""
    _, _, runs = three_folds_by(store, "numpy_results")
    with LocalBackend(store) as backend:
        history = backend.history(runs[1].id)
    assert runs[1].state == "finished" and runs[1].summary == {
        "val/accuracy": 0.75, "confusion": [[1, 0], [0, 1]], "shape": [2, 2],
        "classes": ["a", "b"], "7": 7,
    }  # fmt: skip
    assert history[0]["val/accuracy"] == 0.25 and history[0]["val/loss"] == 1.5
    assert runs[2].state == runs[3].state == "failed"
    assert "TypeError: the summary returned['model']: an object, which no store can hold" in (
        runs[2].error or ""
    )
    assert "the run function returned a list; it must return a mapping" in (runs[3].error or "")


def test_agent_with_unknown_function_exits_2(store: Path) -> None:
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(TWO_FOLDS))
    agent = start_agent(store, sweep.id, "no_such_function")
    out = finish(agent)
    assert agent.returncode == 2
    assert (
        out.strip()
        == "error: --function 'runfns:no_such_function': runfns has no callable 'no_such_function'"
    )


def launch(store: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "asc_sweep", "launch", "--store", str(store), *args]
    return subprocess.run(
        cmd, env=agent_env(**env), capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_launch_pins_agents_to_gpus_round_robin_and_caps_threads(store: Path) -> None:
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec("method: grid\nparameters:\n  seed: {min: 1, max: 9}\n")
        )
    result = launch(
        store,
        "--agents",
        "3",
        "--gpus",
        "0,1",
        "--threads",
        "2",
        "--function",
        "runfns:environment",
    )
    assert result.returncode == 0, result.stderr
    assert f"sweep {sweep.id} is done" in result.stderr
    with LocalBackend(store) as backend:
        summaries = [r.summary or {} for r in backend.runs(sweep.id)]
    assert len(summaries) == 9
    for s in summaries:
        assert s["cuda_visible_devices"] == ["0", "1"][int(s["agent_index"]) % 2]
        assert s["omp_num_threads"] == "2"


def test_launch_uses_every_visible_gpu_with_agents_per_gpu(store: Path) -> None:
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec("method: grid\nparameters:\n  seed: {min: 1, max: 8}\n")
        )
    # The host shows GPUs 2 and 5 (as a scheduler would set it); two agents share each.
    result = launch(
        store, "--agents-per-gpu", "2", "--function", "runfns:environment",
        CUDA_VISIBLE_DEVICES="2,5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with LocalBackend(store) as backend:
        summaries = [r.summary or {} for r in backend.runs(sweep.id)]
    by_agent = {s["agent_index"]: s["cuda_visible_devices"] for s in summaries}
    assert set(by_agent) <= {"0", "1", "2", "3"} and len(summaries) == 8
    assert all(gpu == ["2", "5"][int(i) % 2] for i, gpu in by_agent.items())


def test_agent_plan_defaults_to_one_agent_per_visible_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from asc_sweep.agent.launcher import plan_agents, visible_gpus
    from asc_sweep.errors import AscSweepError

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert visible_gpus() == ["0", "1", "2"]
    assert plan_agents(None, None, None) == (3, ["0", "1", "2"])
    assert plan_agents(None, None, 2) == (6, ["0", "1", "2"])
    assert plan_agents(4, ["1"], None) == (4, ["1"])
    with pytest.raises(AscSweepError, match="disagree"):
        plan_agents(4, None, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,2")  # CUDA stops at an invalid entry
    assert visible_gpus() == ["1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    for cores, agents in ((1, 1), (2, 2), (16, 4)):  # without GPUs: a core each, at most 4
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        assert plan_agents(None, None, None) == (agents, None)
    with pytest.raises(AscSweepError, match="no GPU is visible"):
        plan_agents(None, None, 2)


def test_a_host_without_a_gpu_driver_plans_its_agents_without_loading_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asc_sweep.agent import launcher

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if not launcher.gpu_driver_present():  # this host: none
        probe = "from asc_sweep.agent.launcher import visible_gpus; import sys; " \
                "print(visible_gpus(), 'torch' in sys.modules)"  # fmt: skip
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             env=agent_env(), timeout=60, check=True).stdout  # fmt: skip
        assert out.split() == ["[]", "False"]
    # Where a driver's device file exists, torch (the runtime the agents use) decides.
    counted: list[int] = []

    class FakeCuda:
        @staticmethod
        def device_count() -> int:
            counted.append(1)
            return 2

    import torch

    monkeypatch.setattr(torch, "cuda", FakeCuda)
    monkeypatch.setattr(launcher, "GPU_DEVICE_NODES", ("null",))  # /dev/null stands in
    assert launcher.visible_gpus() == ["0", "1"] and counted == [1]
    monkeypatch.setattr(launcher, "GPU_DEVICE_NODES", ("asc-sweep-no-such-device*",))
    assert launcher.visible_gpus() == [] and counted == [1]


def test_launch_restarts_an_agent_that_dies(store: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(TWO_FOLDS), lease_seconds=1.0)
    result = launch(
        store,
        sweep.id,
        "--agents",
        "1",
        "--function",
        "runfns:die_once",
        ASC_TEST_MARKERS=str(markers),
    )
    assert result.returncode == 0, result.stderr
    assert "agent 0 died (exit 9); restarting it (1/3)" in result.stderr
    with LocalBackend(store) as backend:
        runs = {r.params["fold"]: r for r in backend.runs(sweep.id)}
    assert runs[1].state == runs[2].state == "finished"
    assert runs[1].attempts == 2


def test_launch_gives_up_on_agents_that_cannot_start(store: Path) -> None:
    with LocalBackend(store) as backend:
        backend.create_sweep(parse_spec(TWO_FOLDS))
    result = launch(store, "--agents", "2", "--function", "runfns:nope")
    assert result.returncode == 1
    assert (
        "stopped on a usage or environment error, not restarted: error: --function 'runfns:nope'"
        in result.stderr
    )
    assert "all agents stopped before sweep" in result.stderr


def test_threads_default_to_cores_over_agents() -> None:
    from asc_sweep.agent.launcher import gpu_for, threads_per_agent

    assert threads_per_agent(4, cpus=16) == 4
    assert threads_per_agent(3, cpus=2) == 1
    assert [gpu_for(i, ["0", "1"]) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert gpu_for(3, None) is None
    assert os.cpu_count()


def test_hyperband_tells_a_real_agent_to_stop_a_poor_run(store: Path) -> None:
    spec = """
method: grid
metric: {name: val/loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 2, eta: 2}
parameters:
  lr: {values: [0.1, 0.01, 0.001]}
"""
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(spec))
    agent = start_agent(store, sweep.id, "curves")
    out = finish(agent)
    assert agent.returncode == 0, out
    with LocalBackend(store) as backend:
        runs = {r.params["lr"]: r for r in backend.runs(sweep.id)}
        assert runs[0.1].state == runs[0.01].state == "finished"
        assert (runs[0.1].summary or {})["epochs"] == 9
        poor = runs[0.001]
        assert poor.state == "stopped"
        assert (poor.summary or {})["epochs"] == 3  # stopped at band 2, not run to 9 epochs
        assert len(backend.history(poor.id)) == 3
    assert "stopped by the controller (early termination (hyperband))" in out
