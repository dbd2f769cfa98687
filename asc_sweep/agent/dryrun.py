"""A dry run: checks the orchestration (store, agents, GPU pinning) without training anything.

``asc-sweep agent --function asc_sweep.agent.dryrun:run`` hands every configuration to this
function, which records where it would have run and returns at once. It reports no metrics,
so nothing downstream mistakes it for a result.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from asc_sweep.agent.agent import AgentRunContext


def run(params: dict[str, Any], context: AgentRunContext) -> dict[str, Any]:
    """Return where this configuration would have trained; train nothing."""
    return {
        "dry_run": True,
        "host": socket.gethostname(),
        "agent": context.agent,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
