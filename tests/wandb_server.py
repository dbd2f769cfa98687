"""A stand-in for the W&B server, at the SDK's network boundary, for agents run in tests.

W&B's agent talks to its controller through three GraphQL calls in
``wandb.apis.public.sweeps`` (``_sweep_with_runs``, ``_register_agent``, ``_agent_heartbeat``)
and builds ``wandb.Api()`` objects; sweeps are created through ``_upsert_sweep``. This module
replaces exactly those with a controller that hands out the configurations of a plan file one
at a time, the way W&B's server does (a ``run`` command when the agent has nothing running, an
``exit`` command when the plan is used up), and records what the agent reported. Everything
else (the agent loop, the run command line, the per-run processes, ``wandb.init`` in them) is
the real SDK.

Use: ``python -c "import wandb_server; wandb_server.main()" agent ENTITY/PROJECT/ID ...`` with
``WANDB_TEST_PLAN`` naming a JSON file ``{"config": {...}, "runs": {"run-id": {params}}}``.
The server appends its log (``heartbeats`` and ``commands``) to ``<plan>.log.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml


class StandInApi:
    """What the agent and ``wandb.sweep`` read off ``wandb.Api()`` without the network."""

    default_entity = "lab"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.settings = {"base_url": "https://api.wandb.ai", "entity": None, "project": None}


def install(plan_path: Path) -> None:
    import wandb
    import wandb.apis.public.sweeps as sweeps_api
    import wandb.wandb_agent as wandb_agent
    from wandb.sdk import wandb_login

    plan = json.loads(plan_path.read_text())
    queue = list(plan["runs"].items())
    log: dict[str, list[Any]] = {"heartbeats": [], "commands": []}
    log_path = plan_path.with_suffix(".log.json")

    def save() -> None:
        log_path.write_text(json.dumps(log))

    def sweep_with_runs(api: Any, sweep: str, specs: str, **kw: Any) -> dict[str, Any]:
        return {"name": sweep, "config": yaml.safe_dump(plan["config"])}

    def register_agent(api: Any, host: str, **kw: Any) -> dict[str, Any]:
        return {"id": "agent-1"}

    def heartbeat(api: Any, agent_id: str, metrics: dict[str, Any], run_states: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
        log["heartbeats"].append(run_states)
        if any(run_states.values()):
            commands: list[dict[str, Any]] = []
        elif queue:
            run_id, params = queue.pop(0)
            args = {k: {"value": v} for k, v in params.items()}
            commands = [{"type": "run", "run_id": run_id, "args": args, "program": None}]
        else:
            commands = [{"type": "exit"}]
        log["commands"].extend(commands)
        save()
        return commands

    sweeps_api._sweep_with_runs = sweep_with_runs  # type: ignore[assignment]
    sweeps_api._register_agent = register_agent  # type: ignore[assignment]
    sweeps_api._agent_heartbeat = heartbeat  # type: ignore[assignment]
    wandb.Api = StandInApi  # type: ignore[misc, assignment]
    wandb_login._login = lambda *a, **k: True  # type: ignore[assignment]
    wandb_agent.Agent.POLL_INTERVAL = 0.2


def main() -> None:
    install(Path(os.environ["WANDB_TEST_PLAN"]))
    from asc_sweep.cli import main as cli_main

    cli_main()
