"""A sweep store in an SQL database: the logic every SQL store shares, over a small dialect.

The store owns all state; W&B's sweep engine (``asc_sweep.sweep.engine``) is consulted as a pure
function of (spec, runs). Every call that changes state is one transaction:

* a claim hands out a pending run, first requeueing runs whose lease expired (their agent
  died) and, when the queue is empty, asking the engine for the next configuration; claims of
  one sweep are serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row lock on the sweep),
  so two agents never get the same run and the engine never suggests twice at once;
* the holder of a run proves it with the claim's token; every update is a compare-and-set on
  (id, token, state='running'), so an agent that lost its lease cannot overwrite the run;
* lease times come from the database's clock (``SqlStore.now``): for a server database, the
  server's, so agents with skewed clocks still agree on when a lease ran out;
* finished, stopped (early-terminated) and failed runs are immutable (database triggers);
  ``retry`` queues a failed configuration again as a new run, and from then on the failed run
  is *retried*: on record, but no longer counted, reported or listed as a failure.

A dialect (:class:`LocalBackend` for SQLite, ``PostgresStore``) says how to connect, begin a
write, lock, read the clock, and create or migrate the schema; the SQL of the operations is
shared, written with ``?`` placeholders.
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from asc_sweep.backends.base import (
    TERMINAL_STATES,
    Claim,
    Controller,
    CreateOptions,
    Failure,
    Run,
    Sweep,
    SweepCounts,
)
from asc_sweep.errors import LeaseLost, RetryRefused, RunNotFound, StoreError, SweepNotFound
from asc_sweep.report.records import RunRecord
from asc_sweep.sweep import engine, environment
from asc_sweep.sweep.config import config_hash
from asc_sweep.sweep.spec import MAX_GRID, SweepSpec, sampled_knobs

SCHEMA_VERSION = 1
DEFAULT_LEASE_SECONDS = 60.0
MAX_LEASE_SECONDS = 7 * 24 * 3600.0  # a week: a lease that never ends keeps a killed run forever
DEFAULT_MAX_ATTEMPTS = 3
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids are read aloud and typed

SWEEP_COLUMNS = (
    "id, name, spec, method, seed, lease_seconds, max_attempts, run_cap, grid_size, "
    "created_at, state, exhausted"
)
RUN_COLUMNS = (
    "id, sweep_id, number, params, config_hash, state, attempts, agent, created_at, started_at, "
    "ended_at, lease_expires, should_stop, summary, error"
)

T = TypeVar("T")

# A failed run is retried once a later run of its sweep has its configuration (``retry`` queues
# one): that later run speaks for the configuration in counts, the report and ``status``. The
# failed runs' configurations first, then the last run of each: one pass over the sweep's runs
# (a correlated look-up per failed run would scan them all once per failure).
RETRIED_NUMBERS = (
    "SELECT f.number FROM runs f JOIN (SELECT config_hash, MAX(number) AS last FROM runs "
    "WHERE sweep_id = ? AND config_hash IN (SELECT config_hash FROM runs WHERE sweep_id = ? "
    "AND state = 'failed') GROUP BY config_hash) latest ON latest.config_hash = f.config_hash "
    "WHERE f.sweep_id = ? AND f.state = 'failed' AND f.number < latest.last"
)


class Row(Protocol):
    """A result row: by position, and by column name through ``keys()``."""

    def __getitem__(self, key: Any) -> Any: ...

    def keys(self) -> Any: ...

    def __iter__(self) -> Any: ...


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Conn(Protocol):
    """What the shared SQL needs of a connection: ``execute`` with ``?`` placeholders."""

    def execute(self, sql: str, args: Sequence[Any] = ...) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        """``sql`` once per row, sent together where the driver can (one round trip, not one
        a row)."""


class SqlStore(ABC):
    """A sweep store in an SQL database. One instance per thread (:meth:`reopen`)."""

    def __init__(self) -> None:
        # Run id -> its sweep and early-termination spec, for the runs this connection logs.
        self._specs: dict[int, tuple[str, dict[str, Any] | None]] = {}
        self._warm: set[str] = set()  # sweeps whose engine this process has imported
        # Sweep id -> run id -> the engine's record of an ended run (immutable: read once).
        self._ended: dict[str, dict[int, engine.PreparedRun]] = {}

    # --- the dialect -------------------------------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store is, for messages (a path, or a URL without its password)."""

    @abstractmethod
    def reopen(self) -> SqlStore:
        """Another connection to the same store (one per thread)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _write(self, body: Callable[[Conn, bool], T]) -> T:
        """Run ``body(conn, retried)`` in one write transaction and commit it. ``retried`` is
        True when an earlier try may have committed (the connection dropped around COMMIT)."""

    @abstractmethod
    def _read(self, body: Callable[[Conn], T]) -> T:
        """Run ``body(conn)`` for reads (retried on a dropped connection where the dialect can)."""

    @abstractmethod
    def now(self, conn: Conn) -> float:
        """The store's clock, in seconds since the epoch."""

    #: Appended to the claim's read of the sweep row: a lock that serialises claims.
    lock_sweep: str = ""
    #: The column that orders sweeps created in the same instant.
    insertion_order: str = "rowid"

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        if not 0 < lease_seconds <= MAX_LEASE_SECONDS:  # NaN and infinity too: a lease must end
            raise ValueError(f"lease_seconds must be > 0 and at most {MAX_LEASE_SECONDS:g}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        sweep_spec = spec if isinstance(spec, SweepSpec) else SweepSpec(dict(spec))
        config = sweep_spec.config
        grid_rows: list[dict[str, Any]] = []
        grid_size = sweep_spec.grid_size()
        if grid_size is not None:
            grid_rows = engine.grid(config, min(sweep_spec.run_cap or MAX_GRID, MAX_GRID))
        seed = secrets.randbelow(2**31) if seed is None else seed

        def body(conn: Conn, retried: bool) -> str:
            now = self.now(conn)
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
            self._insert_runs(
                conn,
                [
                    (sweep_id, i + 1, json.dumps(p), config_hash(p), now)
                    for i, p in enumerate(grid_rows)
                ],
            )
            return sweep_id

        return self.get_sweep(self._write(body))

    def _insert_runs(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            conn.executemany(
                "INSERT INTO runs (sweep_id, number, params, config_hash, state, created_at) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                rows,
            )

    def _new_id(self, conn: Conn) -> str:
        while True:
            candidate = "".join(secrets.choice(ID_ALPHABET) for _ in range(6))
            if not conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (candidate,)).fetchone():
                return candidate

    def get_sweep(self, sweep_id: str | None = None) -> Sweep:
        """The sweep with that id; without an id, the most recently created one.

        Raises:
            SweepNotFound: naming the store and the sweeps it does hold.
        """

        def body(conn: Conn) -> Any:
            if sweep_id is None:
                return conn.execute(
                    f"SELECT {SWEEP_COLUMNS} FROM sweeps "
                    f"ORDER BY created_at DESC, {self.insertion_order} DESC LIMIT 1"
                ).fetchone()
            return conn.execute(
                f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = ?", (sweep_id,)
            ).fetchone()

        row = self._read(body)
        if row is None and sweep_id is None:
            raise SweepNotFound(
                f"{self.location}: no sweeps yet; register one with `asc-sweep create SPEC`"
            )
        if row is None:
            known = [s.id for s in self.list_sweeps()][:10]
            listing = f"; sweeps here: {', '.join(known)}" if known else "; it holds no sweeps"
            raise SweepNotFound(f"{self.location}: no sweep {sweep_id!r}{listing}")
        return _to_sweep(row)

    def find_sweep(self, sweep_id: str | None = None) -> Sweep | None:
        try:
            return self.get_sweep(sweep_id)
        except SweepNotFound:
            return None

    def list_sweeps(self) -> list[Sweep]:
        rows = self._read(
            lambda conn: conn.execute(
                f"SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY created_at, {self.insertion_order}"
            ).fetchall()
        )
        return [_to_sweep(r) for r in rows]

    # --- the agent's calls -------------------------------------------------------------------

    def claim(self, sweep_id: str, agent: str) -> Claim:
        """Hand the next run to ``agent``: a requeued or pending run first, else a new one."""
        if sweep_id not in self._warm:
            # A random or bayes claim asks the engine, whose first call imports its search
            # modules (a second): not while this claim holds the lock every other agent's
            # claim waits for.
            sweep = self.find_sweep(sweep_id)
            if sweep is not None and sweep.method != "grid":
                engine.warm_up()
            self._warm.add(sweep_id)

        def body(conn: Conn, retried: bool) -> Claim:
            sweep = _to_sweep(self._sweep_row(conn, sweep_id, lock=True))
            if sweep.state == "finished":
                return Claim("done")
            now = self.now(conn)
            self._expire_leases(conn, sweep, now)
            row = conn.execute(
                "SELECT id, EXISTS (SELECT 1 FROM history h WHERE h.run_id = runs.id) "
                "FROM runs WHERE sweep_id = ? AND state = 'pending' ORDER BY number LIMIT 1",
                (sweep_id,),
            ).fetchone()
            run_id = row[0] if row else self._new_run(conn, sweep, now)
            if run_id is not None:
                if row and row[1]:  # an earlier attempt's epochs: this attempt logs its own
                    conn.execute("DELETE FROM history WHERE run_id = ?", (run_id,))
                token = secrets.token_hex(16)
                claimed = conn.execute(
                    "UPDATE runs SET state = 'running', attempts = attempts + 1, agent = ?, "
                    "token = ?, lease_expires = ?, started_at = ?, should_stop = 0, "
                    f"ended_at = NULL WHERE id = ? AND state = 'pending' RETURNING {RUN_COLUMNS}",
                    (agent, token, now + sweep.lease_seconds, now, run_id),
                ).fetchall()
                assert len(claimed) == 1, "a pending run changed while claims were serialised"
                return Claim("claimed", _to_run(claimed[0]), token)
            running = conn.execute(
                "SELECT COUNT(*) FROM runs WHERE sweep_id = ? AND state = 'running'", (sweep_id,)
            ).fetchone()[0]
            if running:
                return Claim("wait")
            conn.execute("UPDATE sweeps SET state = 'finished' WHERE id = ?", (sweep_id,))
            return Claim("done")

        return self._write(body)

    def _expire_leases(self, conn: Conn, sweep: Sweep, now: float) -> None:
        expired = conn.execute(
            "SELECT id, attempts, agent FROM runs WHERE sweep_id = ? AND state = 'running' "
            "AND lease_expires < ?",
            (sweep.id, now),
        ).fetchall()
        for run_id, attempts, agent in expired:
            why = f"lease expired at attempt {attempts} (agent {agent} stopped sending heartbeats)"
            # Each update re-checks the lease: a heartbeat may have renewed it meanwhile.
            if attempts >= sweep.max_attempts:
                conn.execute(
                    "UPDATE runs SET state = 'failed', token = NULL, lease_expires = NULL, "
                    "ended_at = ?, error = ? WHERE id = ? AND state = 'running' "
                    "AND lease_expires < ?",
                    (now, f"{why}; gave up after {attempts} attempts", run_id, now),
                )
            else:
                conn.execute(
                    "UPDATE runs SET state = 'pending', token = NULL, lease_expires = NULL, "
                    "agent = NULL, error = ? WHERE id = ? AND state = 'running' "
                    "AND lease_expires < ?",
                    (why, run_id, now),
                )

    def _new_run(self, conn: Conn, sweep: Sweep, now: float) -> int | None:
        """Ask the engine for the next configuration and queue it; None when there is none."""
        if sweep.exhausted:
            return None
        retried = 0
        if sweep.run_cap is None:
            created = conn.execute(
                "SELECT COUNT(*) FROM runs WHERE sweep_id = ?", (sweep.id,)
            ).fetchone()[0]
        else:  # the cap counts configurations: a retried run and its retry are one
            created, retried = conn.execute(
                f"SELECT (SELECT COUNT(*) FROM runs WHERE sweep_id = ?), "
                f"(SELECT COUNT(*) FROM ({RETRIED_NUMBERS}) retried)",
                (sweep.id, sweep.id, sweep.id, sweep.id),
            ).fetchone()
        if sweep.run_cap is not None and created - retried >= sweep.run_cap:
            conn.execute("UPDATE sweeps SET exhausted = 1 WHERE id = ?", (sweep.id,))
            return None
        # Random search draws independently of past runs, so they need not be loaded.
        runs = (
            []
            if sweep.method == "random"
            else self._engine_runs(
                conn, sweep.id, sweep.spec.get("metric", {}).get("name"), keep_before=now
            )
        )
        params = engine.suggest(sweep.spec, runs, seed=sweep.seed + created)
        if params is None:
            conn.execute("UPDATE sweeps SET exhausted = 1 WHERE id = ?", (sweep.id,))
            return None
        row = conn.execute(
            "INSERT INTO runs (sweep_id, number, params, config_hash, state, created_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?) RETURNING id",
            (sweep.id, created + 1, json.dumps(params), config_hash(params), now),
        ).fetchone()
        return int(row[0])

    def _engine_runs(
        self,
        conn: Conn,
        sweep: str,
        metric: str | None,
        *,
        with_history_only: bool = False,
        keep_before: float = float("inf"),
    ) -> list[engine.EngineRun | engine.PreparedRun]:
        """The sweep's runs as the engine sees them, in order: state, parameters, and the
        spec's ``metric`` in their history and summary, the one metric the engine's searches
        and its hyperband read (every metric where the spec names none).

        An ended run never changes (the store refuses it), so this store reads each one's
        history and summary once and keeps its record for the engine: a call reads the runs'
        states, and the details of the runs still going and of those that ended since the
        last call, not every epoch of the sweep again (a hyperband sweep asks at every epoch
        of every run). ``with_history_only`` leaves out the runs with no history yet, to
        which hyperband gives no weight. Inside a write transaction, ``keep_before`` is its
        time: a run it ended itself (an expired lease's last attempt) is not kept, as the
        transaction may yet roll back."""
        ended = self._ended.setdefault(sweep, {})
        if len(self._ended) > 8:  # an agent works on one sweep at a time: keep a few
            self._ended = {sweep: ended}
        has_history = "EXISTS (SELECT 1 FROM history h WHERE h.run_id = r.id)"
        states = conn.execute(
            f"SELECT r.id, r.state, r.ended_at FROM runs r WHERE r.sweep_id = ? "
            f"{'AND ' + has_history if with_history_only else ''} ORDER BY r.number",
            (sweep,),
        ).fetchall()
        read = [run_id for run_id, _, _ in states if run_id not in ended]
        details: dict[int, tuple[Any, Any]] = {}
        histories: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(read), 500):  # placeholders a statement: SQLite allows 999
            chunk = read[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for run_id, params, summary in conn.execute(
                f"SELECT id, params, summary FROM runs WHERE id IN ({marks})", chunk
            ).fetchall():
                details[run_id] = (params, summary)
            for run_id, metrics in conn.execute(
                f"SELECT run_id, metrics FROM history WHERE run_id IN ({marks}) "
                "ORDER BY run_id, step",
                chunk,
            ).fetchall():
                step = json.loads(metrics)
                if metric is None:
                    histories.setdefault(run_id, []).append(step)
                elif metric in step:
                    histories.setdefault(run_id, []).append({metric: step[metric]})
        out: list[engine.EngineRun | engine.PreparedRun] = []
        for run_id, state, ended_at in states:
            if run_id in ended:
                out.append(ended[run_id])
                continue
            params, summary = details[run_id]
            summary = json.loads(summary) if summary else {}
            if metric is not None:
                summary = {metric: summary[metric]} if metric in summary else {}
            run = engine.EngineRun(
                name=str(run_id),
                state=state,
                params=json.loads(params),
                history=histories.get(run_id, []),
                summary=summary,
            )
            # Its state was read before its history: an ended run's history was whole.
            if state in TERMINAL_STATES and ended_at is not None and ended_at < keep_before:
                ended[run_id] = engine.prepare(run)
                out.append(ended[run_id])
            else:
                out.append(run)
        return out

    def heartbeat(self, run_id: int, token: str) -> bool:
        """Renew the run's lease. Returns whether the run should stop (early termination).

        Raises:
            LeaseLost: the run is no longer this agent's.
        """

        return self._write(lambda conn, retried: self._renew(conn, run_id, token))

    def _renew(self, conn: Conn, run_id: int, token: str) -> bool:
        """Renew the run's lease; returns whether it should stop."""
        renewed = conn.execute(
            "UPDATE runs SET lease_expires = ? + (SELECT lease_seconds FROM sweeps s "
            "WHERE s.id = runs.sweep_id) WHERE id = ? AND token = ? AND state = 'running' "
            "RETURNING should_stop",
            (self.now(conn), run_id, token),
        ).fetchall()
        if len(renewed) != 1:
            raise LeaseLost(self._lost_message(conn, run_id))
        return bool(renewed[0][0])

    def _lost_message(self, conn: Conn, run_id: int) -> str:
        row = conn.execute("SELECT state, agent FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return f"run {run_id} does not exist"
        return f"run {run_id} is no longer held by this agent (now {row[0]}, agent {row[1]})"

    def log(self, run_id: int, token: str, step: int, metrics: Mapping[str, Any]) -> bool:
        """Store one history step (renewing the lease); apply early termination.

        Returns whether this run should stop.
        """

        def body(conn: Conn, retried: bool) -> bool:
            should_stop = self._renew(conn, run_id, token)
            conn.execute(
                "INSERT INTO history (run_id, step, metrics) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, step) DO UPDATE SET metrics = excluded.metrics",
                (run_id, step, json.dumps(dict(metrics))),
            )
            return should_stop

        should_stop = self._write(body)
        sweep_id, spec = self._read(lambda conn: self._early_terminate(conn, run_id))
        if not spec:
            return should_stop
        # Early termination reads every run's history, and the engine's time grows with the
        # sweep: outside the write transaction, which every agent's claims and heartbeats
        # wait for (on SQLite, the whole store's). A snapshot a moment old decides as well
        # (W&B's own controller decides on a timer).
        metric = spec.get("metric", {}).get("name")
        runs = self._read(
            lambda conn: self._engine_runs(conn, sweep_id, metric, with_history_only=True)
        )
        stop = [int(name) for name in engine.runs_to_stop(spec, runs)]
        if stop:
            self._write(lambda conn, retried: self._ask_to_stop(conn, stop))
        return should_stop or run_id in stop

    def _ask_to_stop(self, conn: Conn, run_ids: Sequence[int]) -> None:
        for stopping in run_ids:
            conn.execute(
                "UPDATE runs SET should_stop = 1 WHERE id = ? AND state = 'running'", (stopping,)
            )

    def _early_terminate(self, conn: Conn, run_id: int) -> tuple[str, dict[str, Any] | None]:
        """The run's sweep, and that sweep's spec where it asks for early termination (else
        None). Remembered for the runs this connection logs: a spec never changes."""
        known = self._specs.get(run_id)
        if known is None:
            sweep_id, spec = conn.execute(
                "SELECT s.id, s.spec FROM runs r JOIN sweeps s ON s.id = r.sweep_id WHERE r.id = ?",
                (run_id,),
            ).fetchone()
            spec = json.loads(spec)
            known = (sweep_id, spec if spec.get("early_terminate") else None)
            if len(self._specs) >= 64:  # an agent logs one run at a time: keep a few
                self._specs.clear()
            self._specs[run_id] = known
        return known

    def finish(self, run_id: int, token: str, summary: Mapping[str, Any]) -> Run:
        """Record the run's summary; ``stopped`` when early termination had asked it to stop."""
        return self._end(
            run_id,
            token,
            "state = CASE WHEN should_stop = 1 THEN 'stopped' ELSE 'finished' END, summary = ?",
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
            "state = 'pending', agent = NULL, attempts = attempts - 1, started_at = NULL, "
            "error = ?",
            (reason,),
            ended=False,
        )

    def _end(
        self, run_id: int, token: str, assignments: str, args: tuple[Any, ...], ended: bool = True
    ) -> Run:
        def body(conn: Conn, retried: bool) -> Run:
            ended_row = conn.execute(
                f"UPDATE runs SET {assignments}, token = NULL, lease_expires = NULL, "
                "ended_at = ? WHERE id = ? AND token = ? AND state = 'running' "
                f"RETURNING {RUN_COLUMNS}",
                (*args, self.now(conn) if ended else None, run_id, token),
            ).fetchall()
            if len(ended_row) != 1:
                run = self._run(conn, run_id)
                # The connection dropped around an earlier try's COMMIT, which went through.
                if retried and run.state != "running":
                    return run
                raise LeaseLost(self._lost_message(conn, run_id))
            return _to_run(ended_row[0])

        return self._write(body)

    def retry(self, sweep_id: str, numbers: Sequence[int] | None = None) -> list[Run]:
        """Queue a fresh attempt of each failed run of the sweep (or of the runs numbered): a new
        pending run with the same configuration, attempts starting again at zero. The failed
        runs stay on record, unchanged; from now on they count as retried. Failed runs already
        retried are left out. A finished sweep runs again until the new runs end.

        Raises:
            RunNotFound: a numbered run is not in the sweep.
            RetryRefused: a numbered run is not failed, or was retried already; nothing is queued.
        """

        def body(conn: Conn, retried: bool) -> list[Run]:
            self._sweep_row(conn, sweep_id, lock=True)  # serialised with claims
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE sweep_id = ? ORDER BY number", (sweep_id,)
            ).fetchall()
            done_before = _retried_numbers(conn, sweep_id)
            runs = {r.number: (r, r.number in done_before) for r in map(_to_run, rows)}
            if numbers is None:
                chosen = [r for r, done in runs.values() if r.state == "failed" and not done]
            else:
                chosen = []
                for number in dict.fromkeys(numbers):
                    if number not in runs:
                        raise RunNotFound(f"{self.location}: sweep {sweep_id} has no run {number}")
                    run, done = runs[number]
                    if done and retried:  # an earlier try of this transaction committed
                        continue
                    if run.state != "failed" or done:
                        why = "was retried already" if done else f"is {run.state}"
                        raise RetryRefused(
                            f"run {run.name} {why}: only failed runs not yet retried can be "
                            "retried; nothing was queued"
                        )
                    chosen.append(run)
            if not chosen:
                return []
            now, last = self.now(conn), len(runs)
            self._insert_runs(
                conn,
                [
                    (sweep_id, last + i, json.dumps(run.params), run.config_hash, now)
                    for i, run in enumerate(chosen, start=1)
                ],
            )
            conn.execute("UPDATE sweeps SET state = 'running' WHERE id = ?", (sweep_id,))
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE sweep_id = ? AND number > ? ORDER BY number",
                (sweep_id, last),
            ).fetchall()
            return [_to_run(row) for row in rows]

        return self._write(body)

    # --- reads -------------------------------------------------------------------------------

    def _sweep_row(self, conn: Conn, sweep_id: str, lock: bool = False) -> Any:
        row = conn.execute(
            f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = ?" + (self.lock_sweep if lock else ""),
            (sweep_id,),
        ).fetchone()
        if row is None:
            raise SweepNotFound(f"{self.location}: no sweep {sweep_id!r}")
        return row

    def _run(self, conn: Conn, run_id: int) -> Run:
        row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"{self.location}: no run {run_id}")
        return _to_run(row)

    def failed_attempts(self, run: Run) -> list[str]:
        """Names of the sweep's failed runs of ``run``'s configuration before it, newest first:
        the attempts a retry follows (``retry``)."""
        rows = self._read(
            lambda conn: conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE sweep_id = ? AND config_hash = ? "
                "AND number < ? AND state = 'failed' ORDER BY number DESC",
                (run.sweep_id, run.config_hash, run.number),
            ).fetchall()
        )
        return [_to_run(row).name for row in rows]

    def get_run(self, run_id: int) -> Run:
        return self._read(lambda conn: self._run(conn, run_id))

    def runs(
        self,
        sweep_id: str,
        states: Sequence[str] | None = None,
        *,
        retried: Literal["with", "without", "only"] = "with",
    ) -> list[Run]:
        """The sweep's runs in number order (of ``states`` only, where given), with the failed
        runs since retried, without them, or only those."""
        query = f"SELECT {RUN_COLUMNS} FROM runs WHERE sweep_id = ?"
        args: list[Any] = [sweep_id]
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)

        def body(conn: Conn) -> tuple[list[Any], set[int]]:
            rows = conn.execute(query + " ORDER BY number", args).fetchall()
            return rows, set() if retried == "with" else _retried_numbers(conn, sweep_id)

        rows, marked = self._read(body)
        runs = list(map(_to_run, rows))
        if retried == "with":
            return runs
        return [run for run in runs if (run.number in marked) == (retried == "only")]

    def history(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT metrics FROM history WHERE run_id = ? ORDER BY step", (run_id,)
            ).fetchall()
        )
        return [json.loads(m) for (m,) in rows]

    def histories(self, sweep_id: str) -> dict[int, list[dict[str, Any]]]:
        """Every run's history in one query (for the report and for copying a store)."""
        return self._read(lambda conn: _histories(conn, sweep_id))

    def counts(self, sweep_id: str) -> SweepCounts:
        """Runs in each state; failed runs since retried count as ``retried`` alone."""

        def body(conn: Conn) -> dict[str, int]:
            rows = conn.execute(
                "SELECT state, COUNT(*) FROM runs WHERE sweep_id = ? GROUP BY state", (sweep_id,)
            ).fetchall()
            counts = {state: int(n) for state, n in rows}
            if counts.get("failed"):
                retried = len(_retried_numbers(conn, sweep_id))
                counts["failed"] -= retried
                counts["retried"] = retried
            return counts

        return SweepCounts(self._read(body))

    def end_times(self, sweep_id: str) -> list[float]:
        """When each ended run ended, oldest first (for throughput and ETA)."""
        rows = self._read(
            lambda conn: conn.execute(
                "SELECT ended_at FROM runs WHERE sweep_id = ? AND ended_at IS NOT NULL "
                "ORDER BY ended_at",
                (sweep_id,),
            ).fetchall()
        )
        return [t for (t,) in rows]

    # --- copying a sweep between stores ------------------------------------------------------

    def import_sweep(
        self, sweep: Sweep, runs: Sequence[Run], histories: Mapping[int, list[dict[str, Any]]]
    ) -> Sweep:
        """Copy a sweep (with its runs, summaries and histories) from another store, keeping its
        id. Runs that were running there are queued again here (their agents cannot follow).

        Raises:
            StoreError: this store already holds a sweep with that id.
        """

        def body(conn: Conn, retried: bool) -> None:
            if conn.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep.id,)).fetchone():
                raise StoreError(f"{self.location}: already holds a sweep {sweep.id!r}")
            conn.execute(
                "INSERT INTO sweeps (id, name, spec, method, seed, lease_seconds, max_attempts, "
                "run_cap, grid_size, created_at, state, exhausted) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    sweep.id,
                    sweep.name,
                    json.dumps(sweep.spec),
                    sweep.method,
                    sweep.seed,
                    sweep.lease_seconds,
                    sweep.max_attempts,
                    sweep.run_cap,
                    sweep.grid_size,
                    sweep.created_at,
                    "running"
                    if any(r.state in ("pending", "running") for r in runs)
                    else sweep.state,
                    int(sweep.exhausted),
                ),
            )
            for run in runs:
                moving = run.state == "running"
                # In as pending, history added, then its state: terminal runs refuse history.
                row = conn.execute(
                    "INSERT INTO runs (sweep_id, number, params, config_hash, state, attempts, "
                    "agent, created_at, started_at, ended_at, should_stop, summary, error) "
                    "VALUES (?,?,?,?,'pending',?,?,?,?,?,?,?,?) RETURNING id",
                    (
                        sweep.id,
                        run.number,
                        json.dumps(run.params),
                        run.config_hash,
                        max(0, run.attempts - 1) if moving else run.attempts,
                        None if moving else run.agent,
                        run.created_at,
                        None if moving else run.started_at,
                        run.ended_at,
                        int(run.should_stop),
                        None if run.summary is None else json.dumps(run.summary),
                        "moved to another store while running" if moving else run.error,
                    ),
                ).fetchone()
                if moving:
                    continue  # a new attempt starts a new history
                new_id = int(row[0])
                if history := histories.get(run.id, []):
                    conn.executemany(
                        "INSERT INTO history (run_id, step, metrics) VALUES (?, ?, ?)",
                        [
                            (new_id, step, json.dumps(metrics))
                            for step, metrics in enumerate(history)
                        ],
                    )
                if run.state != "pending":
                    conn.execute("UPDATE runs SET state = ? WHERE id = ?", (run.state, new_id))

        self._write(body)
        return self.get_sweep(sweep.id)


def copy_sweeps(
    source: SqlStore, target: SqlStore, sweep_ids: Sequence[str] | None = None
) -> list[Sweep]:
    """Copy sweeps (all, or those named) with their runs, summaries and histories from one
    store into another, keeping their ids: a sweep started on a laptop moves to a cluster.

    Raises:
        SweepNotFound: a named sweep is not in ``source``.
        StoreError: ``target`` already holds a sweep with one of the ids; nothing is copied.
    """
    sweeps = (
        source.list_sweeps()
        if not sweep_ids
        else [source.get_sweep(sweep_id) for sweep_id in sweep_ids]
    )
    clashes = [s.id for s in sweeps if target.find_sweep(s.id) is not None]
    if clashes:
        raise StoreError(
            f"{target.location}: already holds sweep {', '.join(clashes)}; nothing was copied"
        )
    return [
        target.import_sweep(sweep, source.runs(sweep.id), source.histories(sweep.id))
        for sweep in sweeps
    ]


def _retried_numbers(conn: Conn, sweep_id: str) -> set[int]:
    """The numbers of the sweep's failed runs that were retried."""
    rows = conn.execute(RETRIED_NUMBERS, (sweep_id, sweep_id, sweep_id)).fetchall()
    return {int(number) for (number,) in rows}


def _histories(conn: Conn, sweep_id: str) -> dict[int, list[dict[str, Any]]]:
    """Run id -> its per-epoch history, in step order, for every run of the sweep."""
    out: dict[int, list[dict[str, Any]]] = {}
    for run_id, metrics in conn.execute(
        "SELECT h.run_id, h.metrics FROM history h JOIN runs r ON r.id = h.run_id "
        "WHERE r.sweep_id = ? ORDER BY h.run_id, h.step",
        (sweep_id,),
    ).fetchall():
        out.setdefault(run_id, []).append(json.loads(metrics))
    return out


def _to_sweep(row: Row) -> Sweep:
    fields = dict(zip(row.keys(), row, strict=True))  # the columns are named after Sweep's fields
    fields["spec"] = json.loads(fields["spec"])
    fields["exhausted"] = bool(fields["exhausted"])
    return Sweep(**fields)


def _to_run(row: Row) -> Run:
    fields = dict(zip(row.keys(), row, strict=True))  # RUN_COLUMNS are named after Run's fields
    fields["params"] = json.loads(fields["params"])
    fields["should_stop"] = bool(fields["should_stop"])
    fields["summary"] = json.loads(fields["summary"]) if fields["summary"] else None
    return Run(**fields)


class StoreController(Controller):
    """A sweep in an SQL store (an SQLite file or a PostgreSQL database); asc-sweep's agents
    claim its runs."""

    def __init__(self, store: SqlStore, sweep: Sweep, work_dir: Path, agent_store: str) -> None:
        self.store = store
        self.backend = store  # the same object, typed as an SQL store
        self.sweep = sweep
        self.ref = self.key = sweep.id
        self.name, self.method = sweep.name, sweep.method
        self.work_dir = work_dir
        self.location = store.location
        self._agent_store = agent_store

    @property
    def total(self) -> int | None:
        return self.sweep.total

    def counts(self) -> SweepCounts:
        return self.backend.counts(self.ref)

    def state(self) -> str:
        return self.backend.get_sweep(self.ref).state

    def records(self) -> list[RunRecord]:
        histories = self.backend.histories(self.ref)
        return [
            RunRecord(
                run.name,
                dict(run.params),
                run.state,
                dict(run.summary or {}),
                histories.get(run.id, []),
            )
            for run in self.backend.runs(self.ref, retried="without")
        ]

    def environments(self) -> dict[str, dict[str, int]] | None:
        ended = self.backend.runs(self.ref, ["finished", "stopped"])
        return environment.mixed(
            environment.of_run((r.summary or {}).get("environment")) for r in ended
        )

    def sampled_knobs(self) -> list[str]:
        return sampled_knobs(self.sweep.spec)

    def expected_folds(self) -> list[Any] | None:
        fold = self.sweep.spec["parameters"].get("fold", {})
        values = fold.get("values") if isinstance(fold, dict) else None
        return list(values) if values else None

    def failures(self, limit: int = 10) -> list[Failure]:
        failed = self.backend.runs(self.ref, ["failed"], retried="without")
        return [_failure(run) for run in failed[:limit]]

    def retried_failures(self) -> list[Failure]:
        return [_failure(run) for run in self.backend.runs(self.ref, ["failed"], retried="only")]

    def ended_since(self, started_at: float) -> int:
        return len([t for t in self.backend.end_times(self.ref) if t >= started_at])

    def running_by_agent(self) -> dict[str, str]:
        return {r.agent or "": r.name for r in self.backend.runs(self.ref, ["running"])}

    def agent_args(self) -> list[str]:
        return [self.ref, "--store", self._agent_store]

    def done_message(self, exit_codes: Sequence[int | None]) -> str | None:
        message = super().done_message(exit_codes)
        failed = self.counts()["failed"]
        if message and failed:
            message += f"; {failed} failed: queue them again with `asc-sweep retry {self.ref}`"
        return message

    def retry(self, runs: Sequence[str] | None = None) -> list[str]:
        numbers = None if runs is None else [self._number(name) for name in runs]
        return [run.name for run in self.backend.retry(self.ref, numbers)]

    def _number(self, name: str) -> int:
        """A run's number from its name (``SWEEP-0007``) or the number alone (``7``)."""
        text = name.strip().removeprefix(f"{self.ref}-")
        if not text.isdigit():
            raise RunNotFound(
                f"{name!r}: not a run of sweep {self.ref}; name it as `status` and the report "
                f"do ({self.ref}-0007) or by its number (7)"
            )
        return int(text)

    def close(self) -> None:
        self.backend.close()


def _failure(run: Run) -> Failure:
    """A failed run and the last line of its error."""
    last = (run.error or "").strip().splitlines()[-1:] or ["(no error kept)"]
    return Failure(run.name, last[0])


class SqlBackendEntry(ABC):
    """A registry entry (``backends.registry``) for an SQL store: how to open the store a
    ``--store`` names, and the controller of one of its sweeps."""

    name: str

    @abstractmethod
    def open_store(self, store: str | None) -> SqlStore: ...

    @abstractmethod
    def controller(self, store: Any, sweep: Sweep) -> StoreController: ...

    def create(self, spec: Any, options: CreateOptions) -> StoreController:
        store = self.open_store(options.store)
        sweep = store.create_sweep(
            spec,
            lease_seconds=options.lease_seconds,
            max_attempts=options.max_attempts,
            seed=options.seed,
        )
        return self.controller(store, sweep)

    def open(self, ref: str | None, store: str | None) -> StoreController:
        backend = self.open_store(store)
        return self.controller(backend, backend.get_sweep(ref))
