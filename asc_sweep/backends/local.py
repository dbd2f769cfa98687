"""The embedded backend: one SQLite file holds every sweep, run and history row.

The store owns all state; W&B's sweep engine (``asc_sweep.sweep.engine``) is consulted as a pure
function of (spec, runs). Every call that changes state is one ``BEGIN IMMEDIATE``
transaction, so any number of agent processes on one host can share a store:

* a claim hands out a pending run, first requeueing runs whose lease expired (their agent
  died) and, when the queue is empty, asking the engine for the next configuration;
* the holder of a run proves it with the claim's token; every update is a compare-and-set on
  (id, token, state='running'), so an agent that lost its lease cannot overwrite the run;
* finished, stopped (early-terminated) and failed runs are immutable (SQL triggers).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asc_sweep.backends.base import (
    Claim,
    Controller,
    CreateOptions,
    Failure,
    Run,
    Sweep,
    SweepCounts,
)
from asc_sweep.errors import LeaseLost, RunNotFound, StoreError, SweepNotFound
from asc_sweep.report.records import RunRecord
from asc_sweep.sweep import engine
from asc_sweep.sweep.config import config_hash
from asc_sweep.sweep.spec import MAX_GRID, SweepSpec

SCHEMA_VERSION = 1
DEFAULT_STORE = "asc-sweep.db"
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
BUSY_TIMEOUT_MS = 60_000
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids are read aloud and typed

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

RUN_COLUMNS = (
    "id, sweep_id, number, params, config_hash, state, attempts, agent, created_at, started_at, "
    "ended_at, lease_expires, should_stop, summary, error"
)


def default_store_path() -> Path:
    """``ASC_SWEEP_STORE``, else ``./asc-sweep.db``."""
    return Path(os.environ.get("ASC_SWEEP_STORE") or DEFAULT_STORE)


class LocalBackend:
    """A sweep store in one SQLite file (WAL mode). One instance per thread."""

    def __init__(self, path: str | Path | None = None) -> None:
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
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not an asc-sweep store ({exc})") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    def reopen(self) -> LocalBackend:
        """Another connection to the same store (one per thread)."""
        return LocalBackend(self.path)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: taken at once (``BEGIN IMMEDIATE``), committed or rolled back.

        Whatever interrupts it (an exception anywhere, ``BEGIN`` itself included) leaves no
        transaction open on the connection; asc-sweep's signal handlers raise nothing, so no
        signal can cut one in half.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer asc-sweep (store schema {version}, "
                f"this version reads {SCHEMA_VERSION}); upgrade asc-sweep"
            )
        if version == SCHEMA_VERSION:
            return
        with self._tx() as conn:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables - {"sweeps", "runs", "history", "sqlite_sequence"}:
                raise StoreError(
                    f"{self.path}: is an SQLite file of something else, not an asc-sweep store"
                )
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- sweeps ------------------------------------------------------------------------------

    def create_sweep(
        self,
        spec: Mapping[str, Any] | SweepSpec,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        seed: int | None = None,
    ) -> Sweep:
        """Register a validated spec. A grid is expanded at once (in the engine's order)."""
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be > 0")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        sweep_spec = spec if isinstance(spec, SweepSpec) else SweepSpec(dict(spec))
        config = sweep_spec.config
        grid_rows: list[dict[str, Any]] = []
        grid_size = sweep_spec.grid_size()
        if grid_size is not None:
            grid_rows = engine.grid(config, min(sweep_spec.run_cap or MAX_GRID, MAX_GRID))
        seed = secrets.randbelow(2**31) if seed is None else seed
        now = time.time()
        with self._tx() as conn:
            sweep_id = self._new_id(conn)
            conn.execute(
                "INSERT INTO sweeps (id, name, spec, method, seed, lease_seconds, max_attempts, "
                "run_cap, grid_size, created_at, exhausted) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    sweep_id,
                    sweep_spec.name,
                    json.dumps(config),
                    sweep_spec.method,
                    seed,
                    lease_seconds,
                    max_attempts,
                    sweep_spec.run_cap,
                    grid_size,
                    now,
                    int(grid_size is not None),
                ),
            )
            conn.executemany(
                "INSERT INTO runs (sweep_id, number, params, config_hash, state, created_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                [
                    (sweep_id, i + 1, json.dumps(p), config_hash(p), now)
                    for i, p in enumerate(grid_rows)
                ],
            )
        return self.get_sweep(sweep_id)

    def _new_id(self, conn: sqlite3.Connection) -> str:
        while True:
            candidate = "".join(secrets.choice(ID_ALPHABET) for _ in range(6))
            if not conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (candidate,)).fetchone():
                return candidate

    def get_sweep(self, sweep_id: str | None = None) -> Sweep:
        """The sweep with that id; without an id, the most recently created one.

        Raises:
            SweepNotFound: naming the store and the sweeps it does hold.
        """
        if sweep_id is None:
            row = self._conn.execute(
                "SELECT * FROM sweeps ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise SweepNotFound(
                    f"{self.path}: no sweeps yet; register one with `asc-sweep create SPEC`"
                )
        else:
            row = self._conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
            if row is None:
                known = [s.id for s in self.list_sweeps()][:10]
                listing = f"; sweeps here: {', '.join(known)}" if known else "; it holds no sweeps"
                raise SweepNotFound(f"{self.path}: no sweep {sweep_id!r}{listing}")
        return self._sweep(row)

    def find_sweep(self, sweep_id: str | None = None) -> Sweep | None:
        try:
            return self.get_sweep(sweep_id)
        except SweepNotFound:
            return None

    def list_sweeps(self) -> list[Sweep]:
        rows = self._conn.execute("SELECT * FROM sweeps ORDER BY created_at, rowid").fetchall()
        return [self._sweep(r) for r in rows]

    @staticmethod
    def _sweep(row: sqlite3.Row) -> Sweep:
        fields = dict(row)  # the columns are named after Sweep's fields
        fields["spec"] = json.loads(fields["spec"])
        fields["exhausted"] = bool(fields["exhausted"])
        return Sweep(**fields)

    # --- the agent's calls -------------------------------------------------------------------

    def claim(self, sweep_id: str, agent: str) -> Claim:
        """Hand the next run to ``agent``: a requeued or pending run first, else a new one."""
        with self._tx() as conn:
            sweep = self._sweep(self._sweep_row(conn, sweep_id))
            if sweep.state == "finished":
                return Claim("done")
            now = time.time()
            self._expire_leases(conn, sweep, now)
            row = conn.execute(
                "SELECT id FROM runs WHERE sweep_id = ? AND state = 'pending' ORDER BY number LIMIT 1",
                (sweep_id,),
            ).fetchone()
            run_id = row[0] if row else self._new_run(conn, sweep, now)
            if run_id is not None:
                token = secrets.token_hex(16)
                updated = conn.execute(
                    "UPDATE runs SET state = 'running', attempts = attempts + 1, agent = ?, token = ?, "
                    "lease_expires = ?, started_at = ?, should_stop = 0, ended_at = NULL "
                    "WHERE id = ? AND state = 'pending'",
                    (agent, token, now + sweep.lease_seconds, now, run_id),
                ).rowcount
                assert updated == 1, "a pending run changed inside an immediate transaction"
                conn.execute("DELETE FROM history WHERE run_id = ?", (run_id,))  # a fresh attempt
                return Claim("claimed", self._run(conn, run_id), token)
            running = conn.execute(
                "SELECT COUNT(*) FROM runs WHERE sweep_id = ? AND state = 'running'", (sweep_id,)
            ).fetchone()[0]
            if running:
                return Claim("wait")
            conn.execute("UPDATE sweeps SET state = 'finished' WHERE id = ?", (sweep_id,))
            return Claim("done")

    def _expire_leases(self, conn: sqlite3.Connection, sweep: Sweep, now: float) -> None:
        expired = conn.execute(
            "SELECT id, attempts, agent FROM runs WHERE sweep_id = ? AND state = 'running' "
            "AND lease_expires < ?",
            (sweep.id, now),
        ).fetchall()
        for run_id, attempts, agent in expired:
            why = f"lease expired at attempt {attempts} (agent {agent} stopped sending heartbeats)"
            if attempts >= sweep.max_attempts:
                conn.execute(
                    "UPDATE runs SET state = 'failed', token = NULL, lease_expires = NULL, "
                    "ended_at = ?, error = ? WHERE id = ?",
                    (now, f"{why}; gave up after {attempts} attempts", run_id),
                )
            else:
                conn.execute(
                    "UPDATE runs SET state = 'pending', token = NULL, lease_expires = NULL, "
                    "agent = NULL, error = ? WHERE id = ?",
                    (why, run_id),
                )

    def _new_run(self, conn: sqlite3.Connection, sweep: Sweep, now: float) -> int | None:
        """Ask the engine for the next configuration and queue it; None when there is none."""
        if sweep.exhausted:
            return None
        created = conn.execute(
            "SELECT COUNT(*) FROM runs WHERE sweep_id = ?", (sweep.id,)
        ).fetchone()[0]
        if sweep.run_cap is not None and created >= sweep.run_cap:
            conn.execute("UPDATE sweeps SET exhausted = 1 WHERE id = ?", (sweep.id,))
            return None
        # Random search draws independently of past runs, so they need not be loaded.
        runs = [] if sweep.method == "random" else self._engine_runs(conn, sweep.id)
        params = engine.suggest(sweep.spec, runs, seed=sweep.seed + created)
        if params is None:
            conn.execute("UPDATE sweeps SET exhausted = 1 WHERE id = ?", (sweep.id,))
            return None
        cur = conn.execute(
            "INSERT INTO runs (sweep_id, number, params, config_hash, state, created_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?)",
            (sweep.id, created + 1, json.dumps(params), config_hash(params), now),
        )
        return int(cur.lastrowid or 0)

    def _engine_runs(self, conn: sqlite3.Connection, sweep_id: str) -> list[engine.EngineRun]:
        histories: dict[int, list[dict[str, Any]]] = {}
        for run_id, metrics in conn.execute(
            "SELECT h.run_id, h.metrics FROM history h JOIN runs r ON r.id = h.run_id "
            "WHERE r.sweep_id = ? ORDER BY h.run_id, h.step",
            (sweep_id,),
        ):
            histories.setdefault(run_id, []).append(json.loads(metrics))
        return [
            engine.EngineRun(
                name=str(run_id),
                state=state,
                params=json.loads(params),
                history=histories.get(run_id, []),
                summary=json.loads(summary) if summary else {},
            )
            for run_id, state, params, summary in conn.execute(
                "SELECT id, state, params, summary FROM runs WHERE sweep_id = ? ORDER BY number",
                (sweep_id,),
            )
        ]

    def heartbeat(self, run_id: int, token: str) -> bool:
        """Renew the run's lease. Returns whether the run should stop (early termination).

        Raises:
            LeaseLost: the run is no longer this agent's.
        """
        with self._tx() as conn:
            self._renew(conn, run_id, token)
            return bool(
                conn.execute("SELECT should_stop FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            )

    def _renew(self, conn: sqlite3.Connection, run_id: int, token: str) -> None:
        updated = conn.execute(
            "UPDATE runs SET lease_expires = ? + (SELECT lease_seconds FROM sweeps s WHERE s.id = sweep_id) "
            "WHERE id = ? AND token = ? AND state = 'running'",
            (time.time(), run_id, token),
        ).rowcount
        if updated != 1:
            raise LeaseLost(self._lost_message(conn, run_id))

    def _lost_message(self, conn: sqlite3.Connection, run_id: int) -> str:
        row = conn.execute("SELECT state, agent FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return f"run {run_id} does not exist"
        return f"run {run_id} is no longer held by this agent (now {row[0]}, agent {row[1]})"

    def log(self, run_id: int, token: str, step: int, metrics: Mapping[str, Any]) -> bool:
        """Store one history step (renewing the lease); apply early termination.

        Returns whether this run should stop.
        """
        with self._tx() as conn:
            self._renew(conn, run_id, token)
            conn.execute(
                "INSERT OR REPLACE INTO history (run_id, step, metrics) VALUES (?, ?, ?)",
                (run_id, step, json.dumps(dict(metrics))),
            )
            sweep_id, spec = conn.execute(
                "SELECT s.id, s.spec FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE r.id = ?",
                (run_id,),
            ).fetchone()
            spec = json.loads(spec)
            if spec.get("early_terminate"):
                to_stop = engine.runs_to_stop(spec, self._engine_runs(conn, sweep_id))
                conn.executemany(
                    "UPDATE runs SET should_stop = 1 WHERE id = ? AND state = 'running'",
                    [(int(name),) for name in to_stop],
                )
            return bool(
                conn.execute("SELECT should_stop FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            )

    def finish(self, run_id: int, token: str, summary: Mapping[str, Any]) -> Run:
        """Record the run's summary; ``stopped`` when early termination had asked it to stop."""
        return self._end(
            run_id,
            token,
            "state = CASE WHEN should_stop THEN 'stopped' ELSE 'finished' END, summary = ?",
            (json.dumps(dict(summary)),),
        )

    def fail(self, run_id: int, token: str, error: str) -> Run:
        """Record that the run raised; the sweep goes on without it."""
        return self._end(run_id, token, "state = 'failed', error = ?", (error,))

    def requeue(self, run_id: int, token: str, reason: str) -> Run:
        """Put a run back in the queue at once (its agent is stopping); no attempt is spent."""
        return self._end(
            run_id,
            token,
            "state = 'pending', agent = NULL, attempts = attempts - 1, started_at = NULL, error = ?",
            (reason,),
            ended=False,
        )

    def _end(
        self, run_id: int, token: str, assignments: str, args: tuple[Any, ...], ended: bool = True
    ) -> Run:
        with self._tx() as conn:
            updated = conn.execute(
                f"UPDATE runs SET {assignments}, token = NULL, lease_expires = NULL, ended_at = ? "
                "WHERE id = ? AND token = ? AND state = 'running'",
                (*args, time.time() if ended else None, run_id, token),
            ).rowcount
            if updated != 1:
                raise LeaseLost(self._lost_message(conn, run_id))
            return self._run(conn, run_id)

    # --- reads -------------------------------------------------------------------------------

    def _sweep_row(self, conn: sqlite3.Connection, sweep_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()
        if row is None:
            raise SweepNotFound(f"{self.path}: no sweep {sweep_id!r}")
        return row

    def _run(self, conn: sqlite3.Connection, run_id: int) -> Run:
        row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"{self.path}: no run {run_id}")
        return _to_run(row)

    def get_run(self, run_id: int) -> Run:
        return self._run(self._conn, run_id)

    def runs(self, sweep_id: str, states: Sequence[str] | None = None) -> list[Run]:
        query = f"SELECT {RUN_COLUMNS} FROM runs WHERE sweep_id = ?"
        args: list[Any] = [sweep_id]
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return [_to_run(r) for r in self._conn.execute(query + " ORDER BY number", args)]

    def history(self, run_id: int) -> list[dict[str, Any]]:
        return [
            json.loads(m)
            for (m,) in self._conn.execute(
                "SELECT metrics FROM history WHERE run_id = ? ORDER BY step", (run_id,)
            )
        ]

    def counts(self, sweep_id: str) -> SweepCounts:
        rows = self._conn.execute(
            "SELECT state, COUNT(*) FROM runs WHERE sweep_id = ? GROUP BY state", (sweep_id,)
        ).fetchall()
        return SweepCounts({state: n for state, n in rows})

    def end_times(self, sweep_id: str) -> list[float]:
        """When each ended run ended, oldest first (for throughput and ETA)."""
        return [
            t
            for (t,) in self._conn.execute(
                "SELECT ended_at FROM runs WHERE sweep_id = ? AND ended_at IS NOT NULL ORDER BY ended_at",
                (sweep_id,),
            )
        ]


def _to_run(row: sqlite3.Row) -> Run:
    fields = dict(row)  # RUN_COLUMNS are named after Run's fields
    fields["params"] = json.loads(fields["params"])
    fields["should_stop"] = bool(fields["should_stop"])
    fields["summary"] = json.loads(fields["summary"]) if fields["summary"] else None
    return Run(**fields)


class LocalController(Controller):
    """A sweep in a local SQLite store; asc-sweep's agents claim its runs."""

    def __init__(self, store: LocalBackend, sweep: Sweep) -> None:
        self.store = store
        self.backend = store  # the same object, typed as the local store
        self.sweep = sweep
        self.ref = self.key = sweep.id
        self.name, self.method = sweep.name, sweep.method
        self.work_dir = store.path.resolve().parent
        self.location = store.location

    @property
    def total(self) -> int | None:
        return self.sweep.total

    def counts(self) -> SweepCounts:
        return self.backend.counts(self.ref)

    def state(self) -> str:
        return self.backend.get_sweep(self.ref).state

    def records(self) -> list[RunRecord]:
        return [
            RunRecord(
                run.name,
                dict(run.params),
                run.state,
                dict(run.summary or {}),
                self.backend.history(run.id),
            )
            for run in self.backend.runs(self.ref)
        ]

    def expected_folds(self) -> list[Any] | None:
        fold = self.sweep.spec["parameters"].get("fold", {})
        values = fold.get("values") if isinstance(fold, dict) else None
        return list(values) if values else None

    def failures(self, limit: int = 10) -> list[Failure]:
        out = []
        for run in self.backend.runs(self.ref, ["failed"])[:limit]:
            last = (run.error or "").strip().splitlines()[-1:] or ["(no error kept)"]
            out.append(Failure(run.name, last[0]))
        return out

    def ended_since(self, started_at: float) -> int:
        return len([t for t in self.backend.end_times(self.ref) if t >= started_at])

    def running_by_agent(self) -> dict[str, str]:
        return {r.agent or "": r.name for r in self.backend.runs(self.ref, ["running"])}

    def agent_args(self) -> list[str]:
        return [self.ref, "--store", str(self.backend.path.resolve())]

    def close(self) -> None:
        self.backend.close()


class LocalBackendEntry:
    """``--backend local``: sweeps in one SQLite file (``--store``, default ``./asc-sweep.db``)."""

    name = "local"

    def create(self, spec: Any, options: CreateOptions) -> LocalController:
        store = LocalBackend(options.store)
        sweep = store.create_sweep(
            spec,
            lease_seconds=options.lease_seconds,
            max_attempts=options.max_attempts,
            seed=options.seed,
        )
        return LocalController(store, sweep)

    def claims(self, ref: str | None, store: str | None) -> bool:
        # Sweep ids have no "/"; a store given as a URL belongs to a server backend.
        return (ref is None or "/" not in ref) and (store is None or "://" not in store)

    def open(self, ref: str | None, store: str | None) -> LocalController:
        backend = LocalBackend(store)
        return LocalController(backend, backend.get_sweep(ref))
