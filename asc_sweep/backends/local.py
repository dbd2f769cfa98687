"""The embedded backend: one SQLite file holds every sweep, run and history row.

The operations are :class:`~asc_sweep.backends.sql.SqlStore`'s; here is how SQLite runs them.
Every write is one ``BEGIN IMMEDIATE`` transaction (SQLite's single writer serialises claims),
so any number of agent processes on one host can share a store. The file is in WAL mode; its
index lives in the host's shared memory, so the file must not be shared between hosts (use a
PostgreSQL store for that).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from asc_sweep.backends.base import Sweep
from asc_sweep.backends.sql import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    SCHEMA_VERSION,
    Conn,
    SqlBackendEntry,
    SqlStore,
    StoreController,
)
from asc_sweep.errors import StoreError

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "SCHEMA_VERSION",
    "LocalBackend",
    "LocalBackendEntry",
    "LocalController",
    "default_store_path",
]

DEFAULT_STORE = "asc-sweep.db"
BUSY_TIMEOUT_MS = 60_000
T = TypeVar("T")

SCHEMA: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    name TEXT,
    spec TEXT NOT NULL,
    method TEXT NOT NULL,
    seed INTEGER NOT NULL,
    lease_seconds REAL NOT NULL,
    max_attempts INTEGER NOT NULL,
    run_cap INTEGER,
    grid_size INTEGER,
    created_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'finished')),
    exhausted INTEGER NOT NULL DEFAULT 0
)
    """,
    """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep_id TEXT NOT NULL REFERENCES sweeps(id),
    number INTEGER NOT NULL,
    params TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'finished', 'stopped', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    agent TEXT,
    token TEXT,
    lease_expires REAL,
    should_stop INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    summary TEXT,
    error TEXT,
    UNIQUE (sweep_id, number)
)
    """,
    """
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (sweep_id, state, number)
    """,
    """
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
)
    """,
    """
CREATE TRIGGER IF NOT EXISTS terminal_runs_are_immutable
BEFORE UPDATE ON runs WHEN OLD.state IN ('finished', 'stopped', 'failed')
BEGIN
    SELECT RAISE(ABORT, 'run is in a terminal state');
END
    """,
    """
CREATE TRIGGER IF NOT EXISTS terminal_history_is_immutable
BEFORE INSERT ON history
WHEN (SELECT state FROM runs WHERE id = NEW.run_id) IN ('finished', 'stopped', 'failed')
BEGIN
    SELECT RAISE(ABORT, 'run is in a terminal state');
END
    """,
)


def default_store_path() -> Path:
    """``ASC_SWEEP_STORE``, else ``./asc-sweep.db``."""
    return Path(os.environ.get("ASC_SWEEP_STORE") or DEFAULT_STORE)


def _is_sqlite(path: Path) -> bool:
    """Whether the file starts with SQLite's header. Only for a file no connection of this
    process has open: closing any descriptor of a file drops every POSIX lock the process
    holds on it, SQLite's included (another process could then delete the live WAL)."""
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


class LocalBackend(SqlStore):
    """A sweep store in one SQLite file (WAL mode). One instance per thread."""

    def __init__(self, path: str | Path | None = None) -> None:
        super().__init__()
        self.path = Path(path) if path is not None else default_store_path()
        if "://" in str(path or ""):
            raise StoreError(
                f"{path}: not a store file; the local backend keeps sweeps in an SQLite file"
            )
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder; give the store's file name")
        if not self.path.parent.exists():
            raise StoreError(f"{self.path}: folder {self.path.parent} does not exist")
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._check_length()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc) and not _is_sqlite(self.path):
                raise StoreError(
                    f"{self.path}: not an asc-sweep store (not an SQLite file)"
                ) from None
            if mapped := self._store_error(exc):
                raise mapped from None
            raise StoreError(f"{self.path}: not an asc-sweep store ({exc})") from None

    def _check_length(self) -> None:
        """Refuse a store file shorter than SQLite's header says (cut off by a full disk or an
        interrupted copy): read through SQLite (its page count) and ``stat``, never through a
        descriptor of our own (see ``_is_sqlite``). Skipped while a WAL holds pages."""
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        missing = pages * page_size - self.path.stat().st_size
        if missing > 0:
            raise StoreError(
                f"{self.path}: damaged: {missing} bytes shorter than its header says (cut off "
                "by a full disk or an interrupted copy?); restore it from a backup"
            )

    def _store_error(self, exc: sqlite3.DatabaseError) -> StoreError | None:
        """A user-facing error for SQLite failures that are about the file, not about us."""
        text = str(exc)
        if "readonly" in text or "read-only" in text:
            return StoreError(
                f"{self.path}: read-only here ({text}); asc-sweep writes every run's state to "
                "the store: make it and its folder writable, or copy it elsewhere"
            )
        if "malformed" in text or "not a database" in text:
            return StoreError(f"{self.path}: damaged ({text}); restore it from a backup")
        if "disk is full" in text or "disk I/O error" in text:
            return StoreError(f"{self.path}: cannot be written ({text}); nothing was changed")
        return None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LocalBackend:
        return self

    @property
    def location(self) -> str:
        return str(self.path)

    def reopen(self) -> LocalBackend:
        """Another connection to the same store (one per thread)."""
        return LocalBackend(self.path)

    def now(self, conn: Conn) -> float:
        return time.time()  # one host: its clock is every agent's

    def _write(self, body: Callable[[Conn, bool], T]) -> T:
        """One write transaction: taken at once (``BEGIN IMMEDIATE``), committed or rolled back.

        Whatever interrupts it (an exception anywhere, ``BEGIN`` itself included) leaves no
        transaction open on the connection; asc-sweep's signal handlers raise nothing, so no
        signal can cut one in half.
        """
        conn: Any = self._conn
        try:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                result = body(conn, False)
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if mapped := self._store_error(exc):
                raise mapped from None
            raise
        return result

    def _read(self, body: Callable[[Conn], T]) -> T:
        conn: Any = self._conn
        try:
            return body(conn)
        except sqlite3.DatabaseError as exc:
            if mapped := self._store_error(exc):
                raise mapped from None
            raise

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer asc-sweep (store schema {version}, "
                f"this version reads {SCHEMA_VERSION}); upgrade asc-sweep"
            )
        if version == SCHEMA_VERSION:
            return

        def body(conn: Conn, retried: bool) -> None:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                ).fetchall()
            }
            if tables - {"sweeps", "runs", "history", "sqlite_sequence"}:
                raise StoreError(
                    f"{self.path}: not an asc-sweep store (an SQLite file of another program, "
                    f"with tables {', '.join(sorted(tables))}); give a new file or an asc-sweep store"
                )
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        self._write(body)


class LocalController(StoreController):
    """A sweep in a local SQLite store; agent logs and checkpoints go beside the store file."""

    def __init__(self, store: LocalBackend, sweep: Sweep) -> None:
        super().__init__(store, sweep, store.path.resolve().parent, str(store.path.resolve()))


class LocalBackendEntry(SqlBackendEntry):
    """``--backend local``: sweeps in one SQLite file (``--store``, default ``./asc-sweep.db``)."""

    name = "local"

    def open_store(self, store: str | None) -> LocalBackend:
        return LocalBackend(store)

    def controller(self, store: LocalBackend, sweep: Sweep) -> LocalController:
        return LocalController(store, sweep)

    def claims(self, ref: str | None, store: str | None) -> bool:
        # Sweep ids have no "/"; a store given as a URL belongs to a server backend.
        return (ref is None or "/" not in ref) and (store is None or "://" not in store)
