"""Weights & Biases logging: one W&B run per configuration, online, offline or off.

``auto`` (the default) logs online when an API key is available (``WANDB_API_KEY`` or a
``wandb login`` entry in ``~/.netrc``) and offline otherwise; an offline run is written under
``wandb/`` and uploaded later with ``wandb sync``. The run's ``group`` is the configuration
without fold and seed and its ``job_type`` the fold, so the W&B dashboard shows cross-fold
means out of the box. The API key itself is never printed or written by asc-sweep.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar
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

    def decoding(self, done: int, total: int) -> None:
        """Called as the run decodes its dataset into the audio cache (the first run at a
        sample rate on a host), before ``start``."""

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


class _Degraded:
    """What this process has learnt about W&B: told once, remembered for every later run."""

    told: ClassVar[set[str]] = set()
    unreachable_until: ClassVar[float] = (
        0.0  # online runs start offline until then (no init timeout per run)
    )

    @classmethod
    def tell_once(cls, console: Console, key: str, message: str) -> None:
        if key not in cls.told:
            cls.told.add(key)
            console.print(f"[yellow]warning:[/] {message}", highlight=False)


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def list_packages_once() -> None:
    """Make W&B list this process's installed packages once, not at every run's start.

    Every ``wandb.init`` records the environment's packages (the run's ``requirements.txt``)
    by reading the metadata of each installed distribution: 0.07-0.12 s a run, most of what
    an offline ``wandb.init`` costs (0.14 s against 0.02 s without it; BENCHMARKS.md,
    scaling). An agent's packages do not change between its runs, so the first run's list
    serves the rest; every run still gets its ``requirements.txt``. Where the SDK has no
    ``wandb.util.working_set`` (another version), nothing changes.
    """
    import wandb.util

    listing = getattr(wandb.util, "working_set", None)
    if listing is None or getattr(listing, "_asc_sweep_once", False):
        return
    packages: list[Any] = []

    def working_set() -> Iterator[Any]:
        if not packages:
            packages.extend(listing())
        return iter(packages)

    working_set._asc_sweep_once = True  # type: ignore[attr-defined]
    wandb.util.working_set = working_set


class WandbTracker(Tracker):
    """A W&B run per configuration (SDK ``wandb.init`` / ``log`` / ``summary`` / ``finish``).

    Tracking never costs a result: when W&B cannot be reached, the run is logged offline
    (and later runs of this process start offline for ``RETRY_ONLINE_SECONDS``); when its
    folder cannot be written, or the SDK fails mid-run, the run goes on without W&B. Either
    way the user is told once, with the command that uploads what was kept; results are in
    the sweep store regardless.
    """

    RETRY_ONLINE_SECONDS = 600.0

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
        kwargs = {"config": dict(config), "name": name, "group": group, "job_type": job_type,
                  "tags": tags}  # fmt: skip
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".asc-sweep-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            _Degraded.tell_once(
                self.console,
                "unwritable",
                f"W&B cannot write {self.directory} ({exc.strerror or _why(exc)}); runs go on "
                "without W&B logging and their results are kept in the sweep store "
                "(asc-sweep report); set WANDB_DIR to a writable folder",
            )
            return
        mode = self.mode
        if mode == "online" and time.monotonic() < _Degraded.unreachable_until:
            mode = "offline"
        try:
            self.run = self._init(mode, kwargs)
            return
        except Exception as exc:  # the SDK raises CommError, UsageError, OSError, ...
            failure = exc
        if mode == "online":
            _Degraded.unreachable_until = time.monotonic() + self.RETRY_ONLINE_SECONDS
            try:
                self.run = self._init("offline", kwargs)
            except Exception as exc:
                failure = exc
            else:
                _Degraded.tell_once(
                    self.console,
                    "unreachable",
                    f"W&B cannot be reached ({_why(failure)}); runs are logged offline "
                    f"meanwhile; upload them later with: wandb sync {self._offline_glob()}",
                )
                return
        _Degraded.tell_once(
            self.console,
            "failed",
            f"W&B logging failed to start ({_why(failure)}); runs go on without it and their "
            "results are kept in the sweep store (asc-sweep report)",
        )

    def _init(self, mode: str, kwargs: dict[str, Any]) -> Any:
        import wandb

        list_packages_once()
        return wandb.init(
            mode=mode,  # type: ignore[arg-type]
            project=self.project,
            dir=str(self.directory),
            reinit="create_new",
            **kwargs,
        )

    def _offline_glob(self) -> str:
        return str(self.directory / "wandb" / "offline-run-*")

    def _failed(self, exc: BaseException) -> None:
        """The SDK failed mid-run: the run goes on untracked (what was logged stays)."""
        _Degraded.tell_once(
            self.console,
            "mid-run",
            f"W&B logging failed mid-run ({_why(exc)}); the run goes on without it and its "
            "result is kept in the sweep store",
        )
        run, self.run = self.run, None
        with contextlib.suppress(Exception):
            run.finish(exit_code=1)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log(dict(metrics), step=step)
        except Exception as exc:
            self._failed(exc)

    def finish(
        self, summary: Mapping[str, Any], *, confusion: list[list[int]] | None, classes: list[str]
    ) -> None:
        if self.run is None:
            return
        import wandb

        try:
            self.run.summary.update(dict(summary))
            if confusion is not None:
                rows = [
                    [classes[i], classes[j], n]
                    for i, row in enumerate(confusion)
                    for j, n in enumerate(row)
                ]
                table = wandb.Table(columns=["truth", "predicted", "count"], data=rows)
                self.run.log({"test/confusion": table})
            run_dir = Path(self.run.dir).parent
            self.run.finish()
        except Exception as exc:
            self._failed(exc)
            return
        if self.mode == "offline":  # a run that fell back to offline was told once, at start
            self.console.print(
                f"W&B run saved offline; upload it with: wandb sync {run_dir}", highlight=False
            )
        self.run = None

    def abort(self, reason: str) -> None:
        if self.run is None:
            return
        run, self.run = self.run, None
        with contextlib.suppress(Exception):  # the run's own error is the one to report
            run.summary["interrupted"] = reason
            run.finish(exit_code=1)


def make_tracker(mode: str = "auto", directory: Path | None = None) -> Tracker:
    """The tracker for ``--tracking MODE`` (auto, online, offline, off)."""
    resolved = resolve_mode(mode)
    if resolved == "off":
        return NullTracker()
    return WandbTracker(resolved, directory=directory)
