"""``asc-sweep store``: move sweeps between stores."""

from __future__ import annotations

from typing import Annotated

import typer

from asc_sweep.cli.console import err, user_errors

store_app = typer.Typer(
    help="Sweep stores: copy sweeps from one store to another (SQLite file, PostgreSQL).",
    no_args_is_help=True,
)


@store_app.command()
def migrate(
    source: Annotated[
        str,
        typer.Option("--from", help="The store to copy from: an SQLite file or postgresql://..."),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--to", help="The store to copy into: postgresql://USER@HOST:PORT/DB or a file"
        ),
    ],
    sweeps: Annotated[
        list[str] | None,
        typer.Argument(help="Sweep ids to copy [default: every sweep in the source]"),
    ] = None,
) -> None:
    """Copy sweeps with their runs, summaries and per-epoch histories into another store.

    Sweeps keep their ids; runs that were running are queued again there. The source is not
    changed: stop its agents first, then start agents on the new store."""
    from asc_sweep.backends.registry import open_store
    from asc_sweep.backends.sql import copy_sweeps

    with user_errors(), open_store(source) as src, open_store(target) as dst:
        copied = copy_sweeps(src, dst, sweeps or None)
        for sweep in copied:
            counts = dst.counts(sweep.id)
            err.print(
                f"copied sweep {sweep.id} ({sweep.name or sweep.method}): "
                f"{counts.created} runs, {counts.done} ended, {counts['pending']} pending",
                highlight=False,
            )
        if not copied:
            err.print(f"{src.location}: holds no sweeps; nothing copied", highlight=False)
        else:
            err.print(f"into {dst.location}", highlight=False)
