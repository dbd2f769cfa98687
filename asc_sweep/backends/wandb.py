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
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from asc_sweep.backends.base import Controller, CreateOptions, SweepCounts
from asc_sweep.errors import AscSweepError
from asc_sweep.report.records import RunRecord
from asc_sweep.sweep.spec import sampled_knobs

RUN_COMMAND = ["${env}", "asc-sweep", "wandb-run", "${args_json_file}"]
TRACKING_OFF = (
    "--tracking off: the runs of a W&B sweep report to W&B (its controller reads their "
    "metrics); use online (or offline, to sync later)"
)
FUNCTION_ENV = "ASC_SWEEP_FUNCTION"  # run function for `wandb-run`, set by `asc-sweep agent`
REFRESH_SECONDS = 10.0  # W&B's API is a network call: progress is read at most this often

# W&B run states -> ours. A run W&B stops early evaluates its best epoch and ends normally: W&B
# lists it as finished, and so does `status`; its summary's `stopped: true` makes it `stopped`
# in the report's records, as on the local store.
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
    from asc_sweep.run.tracking import has_api_key

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


class WandbRun(Protocol):
    """The attributes of the W&B SDK's public ``wandb.apis.public.Run`` that the report uses."""

    name: str
    state: str
    config: Mapping[str, Any]
    summary: Mapping[str, Any]

    def history(self, *args: Any, **kwargs: Any) -> Any: ...


def _plain(value: Any) -> Any:
    """A summary value as plain data: W&B's API hands nested dicts (a run's ``environment``)
    over as its own summary objects, which are no mappings."""
    if hasattr(value, "items") and not isinstance(value, (str, bytes)):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def records_from_runs(runs: Iterable[WandbRun], knobs: Iterable[str]) -> list[RunRecord]:
    """W&B runs (``wandb.Api().sweep(path).runs``) as records: config knobs, summary, history.

    A run that W&B's controller stopped ends normally (W&B lists it finished); its summary's
    ``stopped`` says so, and it is recorded ``stopped`` as on the local store.
    """
    keys = list(dict.fromkeys(knobs))  # the spec's order, as a local sweep's runs list them
    out = []
    for run in runs:
        config = dict(run.config)
        params = {k: config[k] for k in keys if k in config}
        rows = [dict(h) for h in run.history(pandas=False) if "epoch" in h]
        summary = {k: _plain(v) for k, v in dict(run.summary).items() if not k.startswith("_")}
        state = RUN_STATES.get(str(run.state).lower(), "failed")
        if state == "finished" and summary.get("stopped") is True:
            state = "stopped"
        out.append(RunRecord(run.name, params, state, summary, rows))
    return out


class WandbController(Controller):
    """A W&B sweep: W&B's controller hands runs to W&B's agents; progress through its API."""

    label = "W&B sweep"

    def __init__(self, path: SweepPath, refresh_seconds: float = REFRESH_SECONDS) -> None:
        self.path = path
        self.ref, self.key, self.method, self.name = str(path), path.sweep_id, "W&B", None
        self.work_dir = Path(".").resolve()
        self.location = f"W&B project {path.entity}/{path.project}"
        self.refresh_seconds = refresh_seconds
        self._api: Any = None
        self._counts, self._state = SweepCounts(), ""
        self._total: int | None = None
        self._read_at = -float("inf")
        self._done_at_start: int | None = None

    def _refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._read_at < self.refresh_seconds:
            return
        self._read_at = time.monotonic()
        try:
            api = api_sweep(self.path)
            self._counts, self._total = sweep_counts(api)
        except AscSweepError:
            if self._api is None:
                raise
            return  # a network hiccup: keep the last figures, the agents carry on regardless
        self._api = api
        self.method = str(api.config.get("method", "W&B"))
        self.name = api.config.get("name")
        self._state = str(getattr(api, "state", "") or "").lower()
        if self._done_at_start is None:
            self._done_at_start = self._counts.done

    @property
    def total(self) -> int | None:
        return self._total  # as of the last counts(): reading it is no network call

    def counts(self) -> SweepCounts:
        self._refresh()
        return self._counts

    def state(self) -> str:
        self._refresh(force=True)
        return self._state or "?"

    def records(self) -> list[RunRecord]:
        self._refresh(force=True)
        return records_from_runs(self._api.runs, list(self._api.config.get("parameters", {})))

    def sampled_knobs(self) -> list[str]:
        self._refresh()
        return sampled_knobs(self._api.config)

    def ended_since(self, started_at: float) -> int:
        return self._counts.done - (self._done_at_start or 0)

    def done_message(self, exit_codes: Sequence[int | None]) -> str | None:
        # W&B's agents exit 0 when W&B has no more runs for them: the sweep is done.
        if exit_codes and all(code == 0 for code in exit_codes):
            return f"W&B sweep {self.ref} has no more runs"
        return None

    def start_hint(self) -> str:
        return (
            f"asc-sweep agent {self.ref} on any host (or: asc-sweep launch {self.ref} --agents N; "
            f"wandb agent {self.ref})"
        )

    def wandb_project(self) -> tuple[str | None, str]:
        return self.path.entity, self.path.project

    def check_agents(self, tracking: str) -> None:
        if tracking == "off":
            raise AscSweepError(TRACKING_OFF)
        require_credentials()

    def run_hosted_agent(self, *, count: int | None, function: str | None, tracking: str) -> None:
        run_agent(self.path, count=count, function=function, tracking=tracking)


class WandbBackendEntry:
    """``--backend wandb``: W&B (cloud, or W&B Server at ``WANDB_BASE_URL``) is the controller."""

    name = "wandb"

    def create(self, spec: Any, options: CreateOptions) -> WandbController:
        config = spec.config if hasattr(spec, "config") else dict(spec)
        return WandbController(create_sweep(config, project=options.project, entity=options.entity))

    def claims(self, ref: str | None, store: str | None) -> bool:
        return is_sweep_path(ref)

    def open(self, ref: str | None, store: str | None) -> WandbController:
        return WandbController(parse_sweep_path(str(ref)))
