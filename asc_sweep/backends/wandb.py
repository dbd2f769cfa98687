"""The ``wandb`` backend: W&B (cloud, or W&B Server at ``WANDB_BASE_URL``) is the controller.

``create --backend wandb`` registers the spec with ``wandb.sweep``. The registered config gets
a ``command`` (unless the spec has one) that runs each configuration in a process of its own,
``asc-sweep wandb-run ARGS_JSON``, so W&B's agent (``asc-sweep agent ENTITY/PROJECT/ID``, or
W&B's own ``wandb agent ENTITY/PROJECT/ID``) trains with the same run function as a local
agent, and the run knows its configuration before ``wandb.init``: its ``group`` is the
configuration without fold and seed and its ``job_type`` the fold, as on the local backend.

W&B's controller stops a run (hyperband, or "stop" in the UI) by sending its process SIGTERM;
the run then ends after the current epoch, evaluates on the test split and exits cleanly
(W&B's agent kills it if that takes more than ``WANDB_AGENT_KILL_DELAY``, 30 s by default).
A run that W&B resumes keeps its ``run_dir`` (keyed by the W&B run id) and so its checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ..agent import DEFAULT_FUNCTION, StopRequest, load_run_function
from ..errors import AscSweepError
from .base import SweepCounts

RUN_COMMAND = ["${env}", "asc-sweep", "wandb-run", "${args_json_file}"]
TRACKING_OFF = (
    "--tracking off: the runs of a W&B sweep report to W&B (its controller reads their "
    "metrics); use online (or offline, to sync later)"
)
FUNCTION_ENV = "ASC_SWEEP_FUNCTION"  # run function for `wandb-run`, set by `asc-sweep agent`

# W&B run states -> ours. A run W&B stops early ends its epoch and finishes: W&B lists it as
# finished, and so does `status` (its summary's `stopped_early` says why it ended).
RUN_STATES = {
    "running": "running",
    "pending": "pending",
    "preempting": "running",
    "preempted": "pending",
    "finished": "finished",
    "crashed": "failed",
    "failed": "failed",
    "killed": "failed",
}


@dataclass(frozen=True)
class SweepPath:
    """Where a W&B sweep lives: ``ENTITY/PROJECT/SWEEP_ID``."""

    entity: str
    project: str
    sweep_id: str

    def __str__(self) -> str:
        return f"{self.entity}/{self.project}/{self.sweep_id}"


def is_sweep_path(text: str | None) -> bool:
    """Whether a sweep argument names a W&B sweep (local sweep ids have no ``/``)."""
    return bool(text) and "/" in str(text)


def parse_sweep_path(text: str) -> SweepPath:
    parts = text.strip().strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise AscSweepError(
            f"W&B sweep {text!r}: write it as ENTITY/PROJECT/SWEEP_ID "
            "(as `asc-sweep create --backend wandb` prints it)"
        )
    return SweepPath(*parts)


def require_credentials() -> None:
    """Fail early, in one line, when no W&B API key is configured."""
    from ..tracking import has_api_key

    if not has_api_key():
        raise AscSweepError(
            "the wandb backend needs W&B credentials: run `wandb login` (for W&B Server, set "
            "WANDB_BASE_URL first) or set WANDB_API_KEY; without an account use --backend local"
        )


def registered_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep config W&B stores: the spec as written, plus the command that runs a config."""
    config = copy.deepcopy(dict(spec))
    config.setdefault("command", list(RUN_COMMAND))
    return config


def create_sweep(spec: Mapping[str, Any], *, project: str, entity: str | None) -> SweepPath:
    """Register ``spec`` with W&B; returns where the sweep lives."""
    require_credentials()
    import wandb

    # wandb.sweep prints its id and URL on stdout, which is ours (the sweep path, for scripts).
    with _sdk_errors("registering the sweep"), contextlib.redirect_stdout(sys.stderr):
        sweep_id = wandb.sweep(sweep=registered_config(spec), project=project, entity=entity)
        entity = entity or wandb.Api().default_entity
    if not entity:
        raise AscSweepError("W&B did not say which entity the sweep belongs to; pass --entity")
    return SweepPath(entity, project, sweep_id)


def run_agent(path: SweepPath, *, count: int | None, function: str | None, tracking: str) -> None:
    """W&B's own agent in this process: it asks W&B for configurations until the sweep is done
    (or ``count`` runs), and runs each as ``asc-sweep wandb-run`` in a child process."""
    if tracking == "off":
        raise AscSweepError(TRACKING_OFF)
    require_credentials()
    import wandb

    # The sweep's command calls `asc-sweep`: make it this installation's, venv or not.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    os.environ["ASC_SWEEP_TRACKING"] = tracking
    if function:
        os.environ[FUNCTION_ENV] = function
    with _sdk_errors("running the agent"), contextlib.redirect_stdout(sys.stderr):
        wandb.agent(path.sweep_id, entity=path.entity, project=path.project, count=count)


@dataclass
class WandbRunContext(StopRequest):
    """Handed to the run function under W&B's agent (the local agent's ``RunContext`` twin).

    Per-epoch metrics reach W&B through the run's tracker, so :meth:`log` has nothing to
    store; :attr:`should_stop` turns true when W&B's agent sends SIGTERM.
    """

    run_id: str
    run_name: str
    sweep_id: str
    run_dir: Path
    attempt: int = 1

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        pass


def run_configuration(args_file: Path) -> dict[str, Any]:
    """One configuration of a W&B sweep, in the process W&B's agent started for it.

    ``args_file`` is the agent's ``${args_json_file}``: the configuration's parameters as JSON.
    SIGTERM (how W&B's agent stops a run) is caught before anything slow happens (reading the
    parameters, importing the trainer): it asks the run to end after its current epoch.
    """
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
        context.request_stop("stopped by W&B (early termination, or stop in the UI)")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            params = json.loads(args_file.read_text())
        except (OSError, ValueError) as exc:
            raise AscSweepError(f"{args_file}: cannot read the run's parameters: {exc}") from None
        if not isinstance(params, dict):
            raise AscSweepError(f"{args_file}: expected a JSON object of parameters")
        run_fn = load_run_function(os.environ.get(FUNCTION_ENV) or DEFAULT_FUNCTION)
        return dict(run_fn(params, context) or {})
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweep_counts(api_sweep: Any) -> tuple[SweepCounts, int | None]:
    """Run counts of a sweep read through ``wandb.Api().sweep(path)``, and its expected total."""
    by_state: dict[str, int] = {}
    for run in api_sweep.runs:
        state = RUN_STATES.get(str(getattr(run, "state", "")).lower(), "failed")
        by_state[state] = by_state.get(state, 0) + 1
    total = getattr(api_sweep, "expected_run_count", None)
    return SweepCounts(by_state), (int(total) if total else None)


def api_sweep(path: SweepPath) -> Any:
    """The sweep through W&B's public API (network)."""
    import wandb

    with _sdk_errors(f"reading sweep {path}"):
        return wandb.Api().sweep(str(path))


@contextlib.contextmanager
def _sdk_errors(doing: str) -> Any:
    """W&B SDK errors (no network, unknown entity, bad key) as one-line usage errors."""
    import wandb

    try:
        yield
    except (
        wandb.errors.CommError,
        wandb.errors.UsageError,
        wandb.errors.AuthenticationError,
    ) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AscSweepError(f"W&B, {doing}: {message}") from None
