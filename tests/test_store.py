"""The store contract: claims, leases, compare-and-set, immutability, schema.

Every test taking ``backend`` runs against each SQL store: an SQLite file and a database on a
real PostgreSQL server (started by the tests; skipped, with the reason, where none exists).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asc_sweep.backends import LocalBackend
from asc_sweep.backends.sql import SqlStore
from asc_sweep.errors import LeaseLost, RetryRefused, RunNotFound, StoreError, SweepNotFound
from asc_sweep.sweep import engine
from asc_sweep.sweep.spec import parse_spec

from .conftest import run_out

GRID = """
method: grid
metric: {name: val/accuracy, goal: maximize}
parameters:
  init: {values: [default, he_normal]}
  fold: {values: [1, 2, 3]}
"""
RANDOM = """
method: random
run_cap: 4
parameters:
  lr: {min: 0.0001, max: 0.1, distribution: log_uniform_values}
"""


@pytest.fixture
def backend(make_sql_store: Callable[[], SqlStore]) -> SqlStore:
    return make_sql_store()


def raw_sql(backend: SqlStore) -> Callable[[str, tuple[Any, ...]], None]:
    """Run SQL on the store's database behind the store's back (its own connection)."""
    if isinstance(backend, LocalBackend):

        def run_sqlite(sql: str, args: tuple[Any, ...]) -> None:
            with sqlite3.connect(backend.path) as conn:
                conn.execute(sql, args)

        return run_sqlite
    import psycopg

    def run_pg(sql: str, args: tuple[Any, ...]) -> None:
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), args)

    return run_pg


def test_grid_is_expanded_at_create_in_engine_order(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    runs = backend.runs(sweep.id)
    assert sweep.total == 6 and len(runs) == 6
    assert [r.params for r in runs] == engine.grid(sweep.spec, 100)
    assert {(r.params["init"], r.params["fold"]) for r in runs} == {
        (i, f) for i in ("default", "he_normal") for f in (1, 2, 3)
    }
    assert {r.state for r in runs} == {"pending"}
    assert len({r.config_hash for r in runs}) == 6


def test_claims_hand_out_each_run_once_then_done(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    seen = []
    while (claim := backend.claim(sweep.id, "a")).status == "claimed":
        assert claim.run is not None and claim.token is not None
        seen.append(claim.run.number)
        backend.finish(claim.run.id, claim.token, {"val/accuracy": 0.5})
    assert claim.status == "done"
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    assert backend.get_sweep(sweep.id).state == "finished"


def test_wait_while_runs_are_in_flight(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec("method: grid\nparameters:\n  fold: {value: 1}\n"))
    first = backend.claim(sweep.id, "a")
    assert first.status == "claimed"
    assert backend.claim(sweep.id, "b").status == "wait"  # the run may still come back
    assert first.run and first.token
    backend.finish(first.run.id, first.token, {})
    assert backend.claim(sweep.id, "b").status == "done"


def test_only_the_token_holder_can_update_a_run(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    claim = backend.claim(sweep.id, "a")
    assert claim.run and claim.token
    with pytest.raises(LeaseLost):
        backend.finish(claim.run.id, "not-the-token", {})
    with pytest.raises(LeaseLost):
        backend.heartbeat(claim.run.id, "not-the-token")
    backend.finish(claim.run.id, claim.token, {"val/accuracy": 1.0})
    with pytest.raises(LeaseLost, match="now finished"):
        backend.fail(claim.run.id, claim.token, "late")


def test_terminal_runs_are_immutable_even_to_raw_sql(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    claim = backend.claim(sweep.id, "a")
    assert claim.run and claim.token
    backend.finish(claim.run.id, claim.token, {"val/accuracy": 1.0})
    execute = raw_sql(backend)
    with pytest.raises(Exception, match="terminal state"):
        execute("UPDATE runs SET state = 'pending' WHERE id = ?", (claim.run.id,))
    with pytest.raises(Exception, match="terminal state"):
        execute("INSERT INTO history VALUES (?, 99, '{}')", (claim.run.id,))


def test_expired_lease_requeues_the_same_configuration(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID), lease_seconds=0.2, max_attempts=3)
    lost = backend.claim(sweep.id, "dead-agent")
    assert lost.run and lost.token
    time.sleep(0.3)
    again = [backend.claim(sweep.id, "b") for _ in range(6)]
    same = [c for c in again if c.run and c.run.id == lost.run.id]
    assert len(same) == 1
    assert same[0].run and same[0].run.params == lost.run.params and same[0].run.attempts == 2
    assert "lease expired at attempt 1" in (same[0].run.error or "")
    with pytest.raises(LeaseLost):  # the dead agent's late report is refused
        backend.finish(lost.run.id, lost.token, {})


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.inf, math.nan, 1e308])
def test_a_lease_must_end(backend: SqlStore, seconds: float) -> None:
    """A lease that never ends would keep a killed agent's run "running" forever."""
    with pytest.raises(ValueError, match="lease_seconds must be > 0 and at most 604800"):
        backend.create_sweep(parse_spec(GRID), lease_seconds=seconds)


def test_a_run_lost_max_attempts_times_fails_with_its_reason(backend: SqlStore) -> None:
    sweep = backend.create_sweep(
        parse_spec("method: grid\nparameters:\n  fold: {value: 1}\n"),
        lease_seconds=0.1,
        max_attempts=2,
    )
    for _ in range(2):
        assert backend.claim(sweep.id, "a").status == "claimed"
        time.sleep(0.15)
    assert backend.claim(sweep.id, "a").status == "done"
    (run,) = backend.runs(sweep.id)
    assert run.state == "failed" and run.attempts == 2
    assert "gave up after 2 attempts" in (run.error or "")


def test_requeue_spends_no_attempt_and_clears_history(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    claim = backend.claim(sweep.id, "a")
    assert claim.run and claim.token
    backend.log(claim.run.id, claim.token, 0, {"val/accuracy": 0.1})
    run = backend.requeue(claim.run.id, claim.token, "agent stopped by SIGTERM")
    assert run.state == "pending" and run.attempts == 0
    assert backend.history(run.id) == [{"val/accuracy": 0.1}]
    again = backend.claim(sweep.id, "b")
    assert again.run and again.run.id == run.id and again.run.attempts == 1
    assert backend.history(run.id) == []  # a new attempt starts a new history


def test_history_is_stored_in_order(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    claim = backend.claim(sweep.id, "a")
    assert claim.run and claim.token
    for step in range(3):
        assert backend.log(claim.run.id, claim.token, step, {"val/accuracy": step / 10}) is False
    assert backend.history(claim.run.id) == [{"val/accuracy": s / 10} for s in range(3)]


def test_random_search_honours_run_cap(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(RANDOM), seed=1)
    assert sweep.total == 4
    lrs = []
    while (claim := backend.claim(sweep.id, "a")).status == "claimed":
        assert claim.run and claim.token
        lrs.append(claim.run.params["lr"])
        backend.finish(claim.run.id, claim.token, {})
    assert len(lrs) == 4 and len(set(lrs)) == 4
    assert all(0.0001 <= lr <= 0.1 for lr in lrs)


def test_retry_queues_failed_runs_again_and_keeps_them_on_record(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    run_out(backend, sweep.id, fail={2, 5})
    assert backend.get_sweep(sweep.id).state == "finished"
    before = {r.number: r for r in backend.runs(sweep.id)}
    queued = backend.retry(sweep.id)
    assert [r.number for r in queued] == [7, 8]
    assert [r.params for r in queued] == [before[2].params, before[5].params]
    assert [r.config_hash for r in queued] == [before[2].config_hash, before[5].config_hash]
    assert {r.state for r in queued} == {"pending"} and {r.attempts for r in queued} == {0}
    assert backend.get_sweep(sweep.id).state == "running"
    counts = backend.counts(sweep.id)
    assert (counts["finished"], counts["pending"], counts["failed"], counts.retried) == (4, 2, 0, 2)
    assert counts.created == 6 and counts.outstanding(sweep.total) == 2
    # The failed runs are on record, unchanged; they leave the list of current runs.
    assert {r.number: r for r in backend.runs(sweep.id) if r.number <= 6} == before
    assert [r.number for r in backend.runs(sweep.id, retried="without")] == [1, 3, 4, 6, 7, 8]
    assert [r.number for r in backend.runs(sweep.id, ["failed"], retried="only")] == [2, 5]
    assert backend.retry(sweep.id) == []  # retried already: nothing more to queue
    assert [backend.failed_attempts(r) for r in queued] == [[before[2].name], [before[5].name]]
    assert backend.failed_attempts(before[1]) == []
    run_out(backend, sweep.id, fail=set())
    assert backend.get_sweep(sweep.id).state == "finished"
    counts = backend.counts(sweep.id)
    assert (counts["finished"], counts.done, counts.retried) == (6, 6, 2)


def test_retry_of_named_runs_refuses_any_that_did_not_fail(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(GRID))
    run_out(backend, sweep.id, fail={2, 5})
    with pytest.raises(RetryRefused, match=r"-0001 is finished: only failed runs"):
        backend.retry(sweep.id, [5, 1])
    with pytest.raises(RunNotFound, match="has no run 9"):
        backend.retry(sweep.id, [9])
    assert len(backend.runs(sweep.id)) == 6  # nothing was queued
    (again,) = backend.retry(sweep.id, [5, 5])
    assert again.params == backend.runs(sweep.id)[4].params
    with pytest.raises(RetryRefused, match="-0005 was retried already"):
        backend.retry(sweep.id, [5])
    assert [r.number for r in backend.retry(sweep.id)] == [8]  # run 2, still unretried


def test_a_retry_counts_once_against_run_cap(backend: SqlStore) -> None:
    sweep = backend.create_sweep(parse_spec(RANDOM), seed=1)
    run_out(backend, sweep.id, fail={3})
    (again,) = backend.retry(sweep.id)
    run_out(backend, sweep.id, fail=set())
    runs = backend.runs(sweep.id)
    assert len(runs) == 5 and len({r.config_hash for r in runs}) == 4  # 4 configurations
    assert runs[-1].number == again.number and runs[-1].state == "finished"
    assert backend.counts(sweep.id).created == 4


def test_same_seed_same_suggestions(make_sql_store: Callable[[], SqlStore]) -> None:
    def lrs(b: SqlStore) -> list[float]:
        sweep = b.create_sweep(parse_spec(RANDOM), seed=42)
        out = []
        while (c := b.claim(sweep.id, "a")).status == "claimed":
            assert c.run and c.token
            out.append(c.run.params["lr"])
            b.finish(c.run.id, c.token, {})
        return out

    assert lrs(make_sql_store()) == lrs(make_sql_store())


def test_latest_sweep_is_the_default(backend: SqlStore) -> None:
    with pytest.raises(SweepNotFound, match="no sweeps yet"):
        backend.get_sweep()
    backend.create_sweep(parse_spec(GRID))
    second = backend.create_sweep(parse_spec(RANDOM))
    assert backend.get_sweep().id == second.id
    with pytest.raises(SweepNotFound, match=f"no sweep 'zzzzzz'; sweeps here: .*{second.id}"):
        backend.get_sweep("zzzzzz")


# --- SQLite only --------------------------------------------------------------------------


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("hello, this is not SQLite " * 100)
    with pytest.raises(StoreError, match="not an asc-sweep store"):
        LocalBackend(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE songs (title TEXT)").connection.commit()
    with pytest.raises(StoreError, match="another program"):
        LocalBackend(other)
    with pytest.raises(StoreError, match="does not exist"):
        LocalBackend(tmp_path / "missing-folder" / "s.db")


def test_a_store_from_a_newer_version_is_refused(store: Path) -> None:
    LocalBackend(store).close()
    conn = sqlite3.connect(store)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer asc-sweep"):
        LocalBackend(store)


def test_store_uses_wal_and_schema_version(store: Path) -> None:
    LocalBackend(store).close()
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
