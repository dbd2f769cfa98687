"""Agents: execute a sweep's runs on this host (one in this process, or N supervised)."""

from __future__ import annotations

import os

from rich.console import Console

from asc_sweep.agent.agent import Agent, AgentStats
from asc_sweep.agent.functions import DEFAULT_FUNCTION, load_run_function
from asc_sweep.backends.base import Controller


def run_agent(
    controller: Controller,
    *,
    function: str | None,
    count: int | None,
    poll_seconds: float,
    tracking: str,
    console: Console,
) -> AgentStats | None:
    """One agent in this process until the sweep is done (or ``count`` runs).

    asc-sweep's own agent where the controller has a store to claim from; the controller's
    own agent otherwise (W&B's), which returns no statistics.
    """
    controller.check_agents(tracking)
    os.environ["ASC_SWEEP_TRACKING"] = tracking
    run_fn = load_run_function(function or DEFAULT_FUNCTION)
    if controller.store is None:
        controller.run_hosted_agent(count=count, function=function, tracking=tracking)
        return None
    runs_dir = controller.work_dir / "asc-sweep-runs" / controller.key
    agent = Agent(
        controller.store,
        controller.ref,
        run_fn,
        runs_dir=runs_dir,
        count=count,
        poll_seconds=poll_seconds,
        console=console,
    )
    return agent.run()


__all__ = ["Agent", "AgentStats", "run_agent"]
