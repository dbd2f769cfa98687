"""Weights & Biases logging: one W&B run per configuration, online, offline or off.

``auto`` (the default) logs online when an API key is available (``WANDB_API_KEY`` or a
``wandb login`` entry in ``~/.netrc``) and offline otherwise; an offline run is written under
``wandb/`` and uploaded later with ``wandb sync``. The run's ``group`` is the configuration
without fold and seed and its ``job_type`` the fold, so the W&B dashboard shows cross-fold
means out of the box. The API key itself is never printed or written by asc-sweep.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rich.console import Console

TRACKING_MODES = ("auto", "online", "offline", "off")


class Tracker:
    """What the training loop reports to. Use :meth:`session` so that every exit path ends the
    tracked run: a run that raises (an abort, a crash) is ended as failed, with why."""

    def start(
        self, config: Mapping[str, Any], *, name: str, group: str, job_type: str, tags: list[str]
    ) -> None:
        pass

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        pass

    def finish(
        self, summary: Mapping[str, Any], *, confusion: list[list[int]] | None, classes: list[str]
    ) -> None:
        pass

    def abort(self, reason: str) -> None:
        """End the tracked run as not finished (interrupted or crashed); no-op when ended."""

    @contextmanager
    def session(
        self, config: Mapping[str, Any], *, name: str, group: str, job_type: str, tags: list[str]
    ) -> Iterator[Tracker]:
        self.start(config, name=name, group=group, job_type=job_type, tags=tags)
        try:
            yield self
        except BaseException as exc:
            self.abort(
                str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            )
            raise
        self.abort("ended without a result")  # no-op after finish()


class NullTracker(Tracker):
    """``--tracking off``: nothing is logged anywhere."""


def has_api_key() -> bool:
    """Whether W&B credentials are available, without reading them out."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = (
        urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
        or "api.wandb.ai"
    )
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str) -> str:
    """``auto`` -> ``online`` with credentials, else ``offline``."""
    if mode not in TRACKING_MODES:
        raise ValueError(f"tracking {mode!r}: allowed: {', '.join(TRACKING_MODES)}")
    if mode == "auto":
        return "online" if has_api_key() else "offline"
    return mode


class WandbTracker(Tracker):
    """A W&B run per configuration (SDK ``wandb.init`` / ``log`` / ``summary`` / ``finish``)."""

    def __init__(self, mode: str = "offline", project: str = "asc-sweep", directory: Path | None = None,
                 console: Console | None = None) -> None:  # fmt: skip
        self.mode = mode
        self.project = os.environ.get("WANDB_PROJECT", project)
        self.directory = directory or Path(os.environ.get("WANDB_DIR", "."))
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.run: Any = None

    def start(
        self, config: Mapping[str, Any], *, name: str, group: str, job_type: str, tags: list[str]
    ) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            mode=self.mode,  # type: ignore[arg-type]
            project=self.project,
            dir=str(self.directory),
            config=dict(config),
            name=name,
            group=group,
            job_type=job_type,
            tags=tags,
            reinit="create_new",
        )

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def finish(
        self, summary: Mapping[str, Any], *, confusion: list[list[int]] | None, classes: list[str]
    ) -> None:
        if self.run is None:
            return
        import wandb

        self.run.summary.update(dict(summary))
        if confusion is not None:
            rows = [
                [classes[i], classes[j], n]
                for i, row in enumerate(confusion)
                for j, n in enumerate(row)
            ]
            self.run.log(
                {"test/confusion": wandb.Table(columns=["truth", "predicted", "count"], data=rows)}
            )
        run_dir = Path(self.run.dir).parent
        self.run.finish()
        if self.mode == "offline":
            self.console.print(
                f"W&B run saved offline; upload it with: wandb sync {run_dir}", highlight=False
            )
        self.run = None

    def abort(self, reason: str) -> None:
        if self.run is None:
            return
        self.run.summary["interrupted"] = reason
        self.run.finish(exit_code=1)
        self.run = None


def make_tracker(mode: str = "auto", directory: Path | None = None) -> Tracker:
    """The tracker for ``--tracking MODE`` (auto, online, offline, off)."""
    resolved = resolve_mode(mode)
    if resolved == "off":
        return NullTracker()
    return WandbTracker(resolved, directory=directory)
