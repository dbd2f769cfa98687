"""Backends by name, and the one function that turns a sweep reference into a controller.

A backend is one entry in :data:`BACKENDS`: the CLI, the launcher and the report only ever
see :class:`~asc_sweep.backends.base.Controller`. The two SQL stores are told apart by the
store's form: a file is SQLite (``local``), a ``postgresql://`` URL is PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from asc_sweep.backends.base import Backend, Controller, CreateOptions
from asc_sweep.backends.local import LocalBackendEntry
from asc_sweep.backends.postgres import PostgresBackendEntry, is_postgres_url
from asc_sweep.backends.sql import SqlStore
from asc_sweep.backends.wandb import WandbBackendEntry
from asc_sweep.errors import AscSweepError

BACKENDS: dict[str, Backend] = {
    b.name: b for b in (LocalBackendEntry(), PostgresBackendEntry(), WandbBackendEntry())
}


def create_sweep(spec: Any, backend: str, options: CreateOptions) -> Controller:
    """Register a validated spec with ``backend`` (``local``, ``postgres``, ``wandb``); for
    the SQL stores, a ``postgresql://`` store picks ``postgres`` and a file ``local``."""
    if backend == "local" and is_postgres_url(options.store):
        backend = "postgres"
    entry = BACKENDS.get(backend)
    if entry is None:
        raise AscSweepError(f"--backend {backend!r}: allowed: {', '.join(BACKENDS)}")
    return entry.create(spec, options)


def open_store(store: str | None) -> SqlStore:
    """The SQL store ``store`` names: a ``postgresql://`` URL, else an SQLite file
    (``$ASC_SWEEP_STORE``, else ``./asc-sweep.db``, when None)."""
    entry = PostgresBackendEntry() if is_postgres_url(store) else LocalBackendEntry()
    return entry.open_store(store)


def open_sweep(ref: str | None, store: str | None = None) -> Controller:
    """The sweep ``ref`` names: a local id (the most recent when None) in ``store``, or
    ``ENTITY/PROJECT/ID`` on W&B.

    Raises:
        AscSweepError: no backend knows the reference, or the sweep does not exist.
    """
    for entry in BACKENDS.values():
        if entry.claims(ref, store):
            return entry.open(ref, store)
    raise AscSweepError(
        f"sweep {ref!r} (store {store!r}): give a sweep id from the local store, or "
        "ENTITY/PROJECT/SWEEP_ID for a W&B sweep"
    )
