"""Console output shared by the CLI's command groups: one-line user errors, progress bars."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from asc_sweep.errors import AscSweepError

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


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, driven by calls ``update(done, total)``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
