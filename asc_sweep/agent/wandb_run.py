"""``asc-sweep wandb-run``: one configuration of a W&B sweep, in the process W&B's agent
started for it (command mode).

W&B's controller stops a run (hyperband, or "stop" in the UI) by sending its process SIGTERM;
the handler only sets the run's stop flag (kind ``wandb``), the trainer ends at the next batch
boundary, evaluates its best epoch on the test split, and the run exits cleanly with
``stopped: true`` in its summary (W&B's agent kills it if that takes longer than
``WANDB_AGENT_KILL_DELAY``, 30 s by default). A run that W&B resumes keeps its ``run_dir``
(keyed by the W&B run id) and so its checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from asc_sweep.agent.agent import run_summary
from asc_sweep.agent.functions import DEFAULT_FUNCTION, load_run_function
from asc_sweep.backends.wandb import FUNCTION_ENV
from asc_sweep.errors import AscSweepError
from asc_sweep.run.context import StopAware, StopFlag


@dataclass
class WandbRunContext(StopAware):
    """Handed to the run function under W&B's agent (``run.context.RunContext``).

    Per-epoch metrics reach W&B through the run's tracker, so :meth:`log` has nothing to
    store; the stop flag is set when W&B's agent sends SIGTERM.
    """

    run_id: str
    run_name: str
    sweep_id: str
    run_dir: Path
    attempt: int = 1
    stop: StopFlag = field(default_factory=StopFlag)

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, replay: bool = False
    ) -> None:
        pass


def run_configuration(args_file: Path) -> dict[str, Any]:
    """Run the configuration in ``args_file`` (the agent's ``${args_json_file}``, parameters as
    JSON). SIGTERM is caught before anything slow happens (reading the parameters, importing
    the trainer)."""
    sweep_id, run_id = os.environ.get("WANDB_SWEEP_ID"), os.environ.get("WANDB_RUN_ID")
    if not sweep_id or not run_id:
        raise AscSweepError(
            "asc-sweep wandb-run is what W&B's agent runs for one configuration "
            "(WANDB_SWEEP_ID and WANDB_RUN_ID are not set); start agents with "
            "`asc-sweep agent ENTITY/PROJECT/SWEEP_ID`"
        )
    base = Path(os.environ.get("WANDB_DIR") or ".")
    context = WandbRunContext(
        run_id=run_id,
        run_name=run_id,
        sweep_id=sweep_id,
        run_dir=base / "asc-sweep-runs" / sweep_id / run_id,
    )

    def on_term(signum: int, frame: FrameType | None) -> None:
        context.stop.request("wandb", "stopped by W&B (early termination, or stop in the UI)")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            params = json.loads(args_file.read_text())
        except (OSError, ValueError) as exc:
            raise AscSweepError(f"{args_file}: cannot read the run's parameters: {exc}") from None
        if not isinstance(params, dict):
            raise AscSweepError(f"{args_file}: expected a JSON object of parameters")
        run_fn = load_run_function(os.environ.get(FUNCTION_ENV) or DEFAULT_FUNCTION)
        summary = run_summary(run_fn(params, context))
    finally:
        signal.signal(signal.SIGTERM, previous)
    shutil.rmtree(context.run_dir, ignore_errors=True)  # the run is over: its checkpoint goes
    return summary
