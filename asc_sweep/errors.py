"""The exception hierarchy: every error a user can cause is an ``AscSweepError``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class AscSweepError(Exception):
    """Base of every error asc-sweep raises on purpose. The CLI prints it on one line, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where (key path, YAML line) and what is allowed."""

    path: str
    message: str
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        where = source or "spec"
        if self.line is not None:
            where = f"{where}:{self.line}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class SpecError(AscSweepError):
    """A sweep spec (or a run config) that cannot be run; holds every problem found."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(p.render(source) for p in self.problems))


class StoreError(AscSweepError):
    """The sweep store cannot be opened or is not an asc-sweep store."""


class SweepNotFound(AscSweepError):
    """No sweep with that id (or no sweep at all) in the store."""


class RunNotFound(AscSweepError):
    """No run with that id in the store."""


class RetryRefused(AscSweepError):
    """``retry`` named a run that is not failed, or was retried already."""


class LeaseLost(AscSweepError):
    """The run is no longer held by this agent: its lease expired and it went back to the queue,
    or it reached a terminal state. The agent must drop its result."""

    exit_code = 1


class RunFailed(AscSweepError):
    """A run crashed (not a usage error): exit code 1."""

    exit_code = 1


class DeviceUnavailable(AscSweepError):
    """A run asks for a device this host does not have (``device: cuda`` without a GPU): an
    environment problem, so an agent puts the run back and stops (exit 2) instead of failing it."""


class CheckpointError(AscSweepError):
    """A run's checkpoint cannot be written (a full disk, a read-only folder): a problem of the
    host, so an agent puts the run back and stops (exit 2) instead of failing it."""


class RunFunctionError(AscSweepError):
    """The run function given to an agent (``--function``) cannot be loaded."""
