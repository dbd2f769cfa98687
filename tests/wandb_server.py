"""A stand-in for the W&B server, at the SDK's network boundary, for agents run in tests.

W&B's agent talks to its controller through three GraphQL calls in
``wandb.apis.public.sweeps`` (``_sweep_with_runs``, ``_register_agent``, ``_agent_heartbeat``)
and builds ``wandb.Api()`` objects; sweeps are created through ``_upsert_sweep``. This module
replaces exactly those with a controller that hands out the configurations of a plan file one
at a time, the way W&B's server does (a ``run`` command when the agent has nothing running, an
``exit`` command when the plan is used up), and records what the agent reported. Everything
else (the agent loop, the run command line, the per-run processes, ``wandb.init`` in them) is
the real SDK.

Use: start ``python -m asc_sweep ...`` with ``tests/wandb_site`` on ``PYTHONPATH`` (its
``sitecustomize`` calls :func:`install` in every Python process) and ``WANDB_TEST_PLAN``
naming a JSON file ``{"config": {...}, "runs": {"run-id": {params}}}`` and, optionally,
``"stop_after_seconds": {"run-id": S}`` or ``"stop_after_an_epoch": ["run-id"]``: the
controller then sends ``stop`` for that run on every heartbeat once it has run S seconds, or
once it has ended an epoch (its first checkpoint is written), as W&B's does for hyperband.
Its state (the queue, each run's state, the ``heartbeats`` and ``commands`` it saw) is kept in
``<plan>.log.json`` under a lock, so several agent processes share one controller.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


class _Run:
    def __init__(self, state: str) -> None:
        self.state = state


class _Sweep:
    def __init__(self, config: dict[str, Any], state: dict[str, Any]) -> None:
        self.config = config
        self.id = "swp123"
        self.expected_run_count = len(state["runs"]) + len(state["queue"])
        self.runs = [_Run(s) for s in state["runs"].values()]
        busy = state["queue"] or any(s == "running" for s in state["runs"].values())
        self.state = "RUNNING" if busy else "FINISHED"


class StandInApi:
    """What the agent, the launcher and ``wandb.sweep`` read off ``wandb.Api()``."""

    default_entity = "lab"
    plan_path: Path | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.settings = {"base_url": "https://api.wandb.ai", "entity": None, "project": None}

    def sweep(self, path: str) -> _Sweep:
        assert self.plan_path is not None
        plan = json.loads(self.plan_path.read_text())
        with _state(self.plan_path) as state:
            return _Sweep(plan["config"], state)


@contextlib.contextmanager
def _state(plan_path: Path) -> Iterator[dict[str, Any]]:
    """The controller's state, shared by every agent process (a JSON file under a lock)."""
    state_path = plan_path.with_suffix(".log.json")
    with open(plan_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state_path.exists():
            state = json.loads(state_path.read_text())
        else:
            plan = json.loads(plan_path.read_text())
            state = {"queue": list(plan["runs"].items()), "runs": {}, "agents": {},
                     "started": {}, "heartbeats": [], "commands": []}  # fmt: skip
        yield state
        state_path.write_text(json.dumps(state))


def install(plan_path: Path) -> None:
    import wandb
    import wandb.apis.public.sweeps as sweeps_api
    import wandb.wandb_agent as wandb_agent
    from wandb.sdk import wandb_login

    plan = json.loads(plan_path.read_text())

    def sweep_with_runs(api: Any, sweep: str, specs: str, **kw: Any) -> dict[str, Any]:
        return {"name": sweep, "config": yaml.safe_dump(plan["config"])}

    def register_agent(api: Any, host: str, **kw: Any) -> dict[str, Any]:
        return {"id": f"agent-{os.getpid()}"}

    def heartbeat(api: Any, agent_id: str, metrics: dict[str, Any], run_states: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
        with _state(plan_path) as state:
            state["heartbeats"].append(run_states)
            mine = state["agents"].setdefault(agent_id, [])
            for run_id in mine:  # a run the agent no longer reports has ended
                if not run_states.get(run_id) and state["runs"][run_id] == "running":
                    state["runs"][run_id] = "finished"
            stops = plan.get("stop_after_seconds", {})  # run id -> seconds after its start
            epoch_stops = plan.get("stop_after_an_epoch", [])  # run ids
            running = [r for r, alive in run_states.items() if alive]
            if running:
                commands: list[dict[str, Any]] = [
                    {"type": "stop", "run_id": r}
                    for r in running
                    if (r in stops and time.time() - state["started"][r] > stops[r])
                    or (r in epoch_stops and _has_checkpoint(r))
                ]
            elif state["queue"]:
                run_id, params = state["queue"].pop(0)
                args = {k: {"value": v} for k, v in params.items()}
                commands = [{"type": "run", "run_id": run_id, "args": args, "program": None}]
                state["runs"][run_id] = "running"
                state["started"][run_id] = time.time()
                mine.append(run_id)
            else:
                commands = [{"type": "exit"}]
            state["commands"].extend(commands)
        return commands

    def _has_checkpoint(run_id: str) -> bool:
        """The run has ended an epoch: its first checkpoint is on disk (wandb-run's run_dir)."""
        base = Path(os.environ.get("WANDB_DIR") or ".")
        return any(base.glob(f"asc-sweep-runs/*/{run_id}/checkpoint.pt"))

    sweeps_api._sweep_with_runs = sweep_with_runs  # type: ignore[assignment]
    sweeps_api._register_agent = register_agent  # type: ignore[assignment]
    sweeps_api._agent_heartbeat = heartbeat  # type: ignore[assignment]
    StandInApi.plan_path = plan_path
    wandb.Api = StandInApi  # type: ignore[misc, assignment]
    wandb_login._login = lambda *a, **k: True  # type: ignore[assignment]
    wandb_agent.Agent.POLL_INTERVAL = 0.2
