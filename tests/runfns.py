"""Small deterministic run functions that tests hand to real agent processes (--function).

They stand in for training until the trainer exists, and record what happened so tests can
assert on it: every execution appends one line to the file named by ``ASC_TEST_RECORD``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from asc_sweep.agent.agent import AgentRunContext as RunContext


def _record(ctx: RunContext, params: dict[str, Any], event: str) -> None:
    path = os.environ.get("ASC_TEST_RECORD")
    if path:
        line = (
            json.dumps(
                {
                    "event": event,
                    "run": ctx.run_name,
                    "attempt": ctx.attempt,
                    "pid": os.getpid(),
                    "params": params,
                }
            )
            + "\n"
        )
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write of a short line: atomic with O_APPEND
        finally:
            os.close(fd)


def score(params: dict[str, Any]) -> float:
    """A deterministic 'accuracy' from the params: any function of them will do."""
    text = json.dumps(params, sort_keys=True)
    return (sum(map(ord, text)) % 1000) / 1000


def quick(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Three epochs of made-up history, then a summary."""
    _record(ctx, params, "start")
    for epoch in range(3):
        ctx.log({"val/loss": 1.0 / (epoch + 1), "epoch": epoch})
    _record(ctx, params, "end")
    return {"val/accuracy": score(params), "val/loss": 1 / 3}


def slow(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Sleeps ASC_TEST_SLEEP seconds (in small steps), so a test can kill the agent mid-run."""
    _record(ctx, params, "start")
    deadline = time.time() + float(os.environ.get("ASC_TEST_SLEEP", "2"))
    while time.time() < deadline:
        if ctx.stop.aborts:  # the agent is stopping, or the run is no longer ours
            return {}
        time.sleep(0.05)
    _record(ctx, params, "end")
    return {"val/accuracy": score(params)}


def environment(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Reports the GPU and thread settings the launcher gave this agent."""
    time.sleep(0.2)
    return {
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "agent_index": os.environ.get("ASC_SWEEP_AGENT_INDEX"),
    }


def die_once(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Kills its own agent process the first time it sees fold 1 (a crash, not an exception)."""
    marker = Path(os.environ["ASC_TEST_MARKERS"]) / f"{ctx.run_name}.died"
    _record(ctx, params, "start")
    if params.get("fold") == 1 and not marker.exists():
        marker.write_text("x")
        os._exit(9)
    return {"val/accuracy": score(params)}


def raise_on_fold_2(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """An ordinary bug in a run: raises for fold 2."""
    if params.get("fold") == 2:
        raise ValueError(f"cannot train fold {params['fold']}")
    return {"val/accuracy": score(params)}


def curves(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """Per-epoch val/loss; lr picks how good the run is. Stops when told (early termination)."""
    quality = {0.1: 0.2, 0.01: 0.5, 0.001: 2.0}[params["lr"]]
    epochs = 0
    for epoch in range(9):
        ctx.log({"val/loss": quality + 1.0 / (epoch + 1)})
        epochs += 1
        if ctx.stop.is_set:
            break
    return {"val/loss": quality, "epochs": epochs}


def trainer_crashing_on_seed_1(params: dict[str, Any], ctx: RunContext) -> Any:
    """The built-in trainer, with a bug that crashes the runs of seed 1 halfway through:
    the first epoch trains and is logged, then the run raises."""
    from asc_sweep.run.train import run_for_agent

    if params.get("seed") == 1:
        log = ctx.log

        def crash_after_first_epoch(metrics: Any, step: int | None = None, **kw: Any) -> None:
            log(metrics, step, **kw)
            raise RuntimeError(f"a bug in epoch {step}")

        ctx.log = crash_after_first_epoch  # type: ignore[method-assign]
    return run_for_agent(params, ctx)


def paced_trainer(params: dict[str, Any], ctx: RunContext) -> Any:
    """The built-in trainer, pausing 0.2 s before each epoch is logged: a tiny dataset's epochs
    take milliseconds, so a test's signal could otherwise land after the run is over."""
    import time

    from asc_sweep.run.train import run_for_agent

    log = ctx.log

    def paced(metrics: Any, step: int | None = None, **kw: Any) -> None:
        if not kw.get("replay"):
            time.sleep(0.2)  # before the epoch is stored, so its checkpoint follows at once
        log(metrics, step, **kw)

    ctx.log = paced  # type: ignore[method-assign]
    return run_for_agent(params, ctx)


def trainer_crashing_once_in_epoch_3(params: dict[str, Any], ctx: RunContext) -> Any:
    """The built-in trainer, crashing in its third epoch (after two checkpoints) the first
    time it runs: a transient failure, such as a GPU out of memory while another agent
    held it. ``CRASH_MARKER`` names the file that says it has crashed once."""
    from asc_sweep.run.train import run_for_agent

    marker = Path(os.environ["CRASH_MARKER"])
    if not marker.exists():
        log = ctx.log

        def crash_in_epoch_3(metrics: Any, step: int | None = None, **kw: Any) -> None:
            if step == 2 and not kw.get("replay"):
                marker.touch()
                raise RuntimeError("CUDA out of memory (simulated)")
            log(metrics, step, **kw)

        ctx.log = crash_in_epoch_3  # type: ignore[method-assign]
    return run_for_agent(params, ctx)


def numpy_results(params: dict[str, Any], ctx: RunContext) -> Any:
    """What a run function built on numpy or torch returns: numpy scalars and arrays, a
    tensor, tuples, a set, keys that are not text; fold 2 returns an object no store holds,
    fold 3 a list instead of a mapping."""
    import numpy as np
    import torch

    ctx.log({"epoch": 1, "val/accuracy": np.float32(0.25), "val/loss": torch.tensor(1.5)})
    if params["fold"] == 2:
        return {"val/accuracy": 0.5, "model": object()}
    if params["fold"] == 3:
        return [0.5]
    return {"val/accuracy": np.float64(0.75), "confusion": np.eye(2, dtype=np.int64),
            "shape": (2, 2), "classes": {"b", "a"}, 7: np.int32(7)}  # fmt: skip
