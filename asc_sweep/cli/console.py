"""Console output shared by the CLI's command groups: one-line user errors, progress bars
(work items, and a run's epochs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from asc_sweep.errors import AscSweepError
from asc_sweep.run.tracking import Tracker

out = Console(soft_wrap=True)  # long lines (paths, errors) are never broken mid-way
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Print an ``AscSweepError`` (one line per problem) or an ``OSError`` (the path and why) on
    stderr and exit with its code, without a traceback."""
    try:
        yield
    except AscSweepError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err.print(f"[red]error:[/] {line}", highlight=False, markup=True)
        raise typer.Exit(exc.exit_code) from None
    except OSError as exc:  # a file or folder the user named cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"[red]error:[/] {where}{exc.strerror or exc}", highlight=False, markup=True)
        raise typer.Exit(2) from None


def _bar() -> Progress:
    """A progress display on stderr: what is being done, a bar, done of total, time left."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeRemainingColumn(), console=err, transient=False)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, driven by calls ``update(done, total)``."""
    with _bar() as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


@contextmanager
def epoch_progress(tracker: Tracker, epochs: int) -> Iterator[Tracker]:
    """``tracker``, also showing a run's epochs on stderr as they end (the loss, the validation
    accuracy, the time left), from the moment the run starts preparing its data."""
    with _bar() as progress:
        task = progress.add_task("preparing the data", total=epochs)

        def show(text: str, done: int) -> None:
            progress.update(task, description=text, completed=done)

        yield _ShownEpochs(tracker, show)


class _ShownEpochs(Tracker):
    """Passes everything on to ``inner``; each epoch's row also goes to ``show``."""

    def __init__(self, inner: Tracker, show: Callable[[str, int], None]) -> None:
        self.inner, self.show = inner, show

    def start(
        self, config: Mapping[str, Any], *, name: str, group: str, job_type: str, tags: list[str]
    ) -> None:
        self.inner.start(config, name=name, group=group, job_type=job_type, tags=tags)

    def decoding(self, done: int, total: int) -> None:
        self.inner.decoding(done, total)
        self.show(f"decoding the audio (once a sample rate): {done}/{total} clips", 0)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.inner.log(metrics, step)
        shown = [f"epoch {step + 1}"]
        for key, label in (("train/loss", "loss"), ("val/accuracy", "val accuracy")):
            if isinstance(metrics.get(key), float):
                shown.append(f"{label} {metrics[key]:.3f}")
        self.show(", ".join(shown), step + 1)

    def finish(
        self, summary: Mapping[str, Any], *, confusion: list[list[int]] | None, classes: list[str]
    ) -> None:
        self.inner.finish(summary, confusion=confusion, classes=classes)

    def abort(self, reason: str) -> None:
        self.inner.abort(reason)


def show_findings(console: Console, data: Any) -> None:
    """A report's head on a terminal: what the runs ran with, then what the sweep shows."""
    from asc_sweep.report.findings import findings
    from asc_sweep.report.render import environment_line

    if line := environment_line(data):
        console.print(line, highlight=False)
    console.print("what this sweep shows:")
    for line in findings(data):
        console.print(f"  {line}", highlight=False)
