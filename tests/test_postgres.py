"""The PostgreSQL store's own guarantees, against a real server: its schema, a hidden password,
leases on the server's clock, dropped connections and restarts, 32 agents claiming at once,
agents of three hosts sharing one sweep, and moving a sweep from a SQLite file to PostgreSQL.

The store contract every SQL store meets is in ``test_store.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asc_sweep.backends import LocalBackend
from asc_sweep.backends.postgres import PostgresStore, redact
from asc_sweep.errors import StoreError
from asc_sweep.sweep.spec import parse_spec
from tests.conftest import ROOT, TESTS
from tests.pgserver import PASSWORD
from tests.test_store import GRID


def psql(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, args or None)
        return cur.fetchall() if cur.description else []


# --- schema and credentials ------------------------------------------------------------------


def test_schema_version_is_recorded_and_a_newer_one_refused(
    new_pg_database: Callable[[], str],
) -> None:
    url = new_pg_database()
    PostgresStore(url).close()
    assert psql(url, "SELECT value FROM asc_sweep_meta WHERE key = 'schema_version'") == [("1",)]
    PostgresStore(url).close()  # opening again migrates nothing
    psql(url, "UPDATE asc_sweep_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="newer asc-sweep"):
        PostgresStore(url)


def test_a_database_of_something_else_is_refused(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    psql(url, "CREATE TABLE runs (lap INTEGER)")
    with pytest.raises(StoreError, match="tables of something else"):
        PostgresStore(url)


def test_the_password_is_never_shown(new_pg_database: Callable[[], str]) -> None:
    url = new_pg_database()
    assert PASSWORD in url
    with PostgresStore(url) as store:
        assert PASSWORD not in store.location and store.location == redact(url)
        assert store.location.startswith("postgresql://asc@127.0.0.1:")
    wrong = url.replace(PASSWORD, "not-" + PASSWORD)
    with pytest.raises(StoreError, match="cannot connect") as caught:
        PostgresStore(wrong)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(StoreError, match="cannot connect"):
        PostgresStore(url.replace(":" + PASSWORD, ""))  # no password at all: refused


def test_the_password_may_come_from_pgpassword(
    new_pg_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_pg_database().replace(":" + PASSWORD, "")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with PostgresStore(url) as store:
        assert store.create_sweep(parse_spec(GRID)).total == 6


def test_a_server_out_of_connections_is_one_clear_error_that_says_what_to_raise(
    pg_server: Any, new_pg_database: Callable[[], str]
) -> None:
    owner = f"limited{os.getpid()}"
    psql(pg_server.url(), f"CREATE ROLE {owner} LOGIN PASSWORD 'pw' CONNECTION LIMIT 1")
    database = new_pg_database().rsplit("/", 1)[1]
    psql(pg_server.url(), f'ALTER DATABASE "{database}" OWNER TO {owner}')
    psql(pg_server.url(database), f"ALTER SCHEMA public OWNER TO {owner}")
    url = f"postgresql://{owner}:pw@127.0.0.1:{pg_server.port}/{database}"
    with PostgresStore(url) as first:
        assert first.create_sweep(parse_spec(GRID)).total == 6
        with pytest.raises(StoreError) as caught:
            PostgresStore(url)
    message = str(caught.value)
    assert "cannot connect" in message and "too many connections" in message
    assert "each agent holds two connections" in message and "max_connections" in message
    assert "\n" not in message and "pw@" not in message


def test_an_unreachable_server_is_one_clear_error(pg_server: Any) -> None:
    from tests.pgserver import free_port

    with pytest.raises(StoreError, match=r"postgresql://asc@127\.0\.0\.1:\d+/x: cannot connect"):
        PostgresStore(f"postgresql://asc:{PASSWORD}@127.0.0.1:{free_port()}/x")


# --- clocks, dropped connections, restarts, many claimers ------------------------------------


def test_leases_run_on_the_servers_clock_not_the_agents(
    new_postgres_store: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_postgres_store()
    sweep = store.create_sweep(parse_spec(GRID), lease_seconds=60)
    first = store.claim(sweep.id, "host-a:1")
    assert first.run is not None
    # Agent b's clock is ten minutes ahead: were leases on agents' clocks, it would find a's
    # lease long expired and take the run.
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 600)
    other = store.reopen()
    second = other.claim(sweep.id, "host-b:1")
    assert second.run is not None and second.run.id != first.run.id
    assert store.get_run(first.run.id).state == "running"
    assert store.get_run(first.run.id).agent == "host-a:1"
    # The lease's expiry is the server's now + 60 s, not the skewed clock's.
    lease = store.get_run(second.run.id).lease_expires
    assert lease is not None and abs(lease - (real() + 60)) < 5
    other.close()


def test_the_servers_clock_is_read_once_a_minute_and_carried_forward(
    new_postgres_store: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    from asc_sweep.backends import postgres

    store = new_postgres_store()
    reads = statements(monkeypatch)
    real = time.time
    conn = postgres._PgConn(store._conn)
    first = store.now(conn)
    server = psql(store.url, "SELECT extract(epoch FROM clock_timestamp())")[0][0]
    assert abs(float(server) - store.now(conn)) < 0.05
    assert store.now(conn) >= first
    assert sum("clock_timestamp" in sql for sql in reads) == 1  # carried forward, not asked
    # A minute on (by this host's clocks; the server's did not move), the server is asked
    # again: its clock, not the host's minute, is the answer.
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 61)
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    assert abs(store.now(conn) - float(server)) < 5
    assert sum("clock_timestamp" in sql for sql in reads) == 2
    # The host was suspended for an hour (its wall clock moved on, its monotonic clock stood
    # still): the server is asked at once, and the lease times follow the server's clock.
    monkeypatch.setattr(time, "time", lambda: real() + 3661)
    assert abs(store.now(conn) - float(server)) < 5
    assert sum("clock_timestamp" in sql for sql in reads) == 3


def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the PostgreSQL stores send from now on (one round trip each), in order."""
    from asc_sweep.backends import postgres

    sent: list[str] = []
    real = postgres._PgConn.execute

    def execute(self: Any, sql: str, args: Any = ()) -> Any:
        sent.append(" ".join(sql.split()))
        return real(self, sql, args)

    monkeypatch.setattr(postgres._PgConn, "execute", execute)
    return sent


def test_a_run_costs_a_handful_of_round_trips(
    new_postgres_store: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement is a round trip to the server, and a claim's hold the sweep's lock that
    every other agent's claim waits for: a run's orchestration stays a few statements."""
    store = new_postgres_store()
    sweep = store.create_sweep(parse_spec(GRID))
    sent = statements(monkeypatch)  # (create_sweep read the server's clock)
    claim = store.claim(sweep.id, "a")
    assert claim.run and claim.token
    # Whether the sweep needs its engine (once, before the lock); then the sweep's lock,
    # expired leases, the next pending run, taking it.
    assert len(sent) == 1 + 4, sent
    for epoch in range(3):
        store.log(claim.run.id, claim.token, epoch, {"val/accuracy": 0.5})
    # Each epoch: renew the lease, store the metrics; the spec once, for early termination.
    assert len(sent) == 5 + 3 * 2 + 1, sent[5:]
    store.finish(claim.run.id, claim.token, {"val/accuracy": 0.5})
    assert len(sent) == 12 + 1, sent[12:]
    assert not any("clock_timestamp" in sql for sql in sent)
    # A run put back and claimed again drops its earlier attempt's epochs, at one more.
    second = store.claim(sweep.id, "a")
    assert second.run and second.token
    store.log(second.run.id, second.token, 0, {"val/accuracy": 0.5})
    store.requeue(second.run.id, second.token, "stopping")
    before = len(sent)
    again = store.claim(sweep.id, "b")
    assert again.run and again.run.id == second.run.id and len(sent) == before + 4 + 1
    assert store.history(second.run.id) == []


def test_a_grid_and_a_moved_history_go_in_as_batches_not_a_statement_a_row(
    new_postgres_store: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A 100,000-run grid, or a sweep moved with its histories (a row an epoch), would
    otherwise cost a round trip a row."""
    store = new_postgres_store()
    sent = statements(monkeypatch)
    sweep = store.create_sweep(
        parse_spec("method: grid\nparameters:\n  seed: {min: 1, max: 500}\n")
    )
    assert sweep.total == 500 and len(store.runs(sweep.id)) == 500
    assert len(sent) < 10, sent
    with LocalBackend(tmp_path / "laptop.db") as laptop:
        moved = laptop.create_sweep(parse_spec(GRID))
        claim = laptop.claim(moved.id, "a")
        assert claim.run and claim.token
        for epoch in range(50):
            laptop.log(claim.run.id, claim.token, epoch, {"val/accuracy": epoch / 100})
        laptop.finish(claim.run.id, claim.token, {"val/accuracy": 0.49})
        before = len(sent)
        store.import_sweep(
            laptop.get_sweep(moved.id), laptop.runs(moved.id), laptop.histories(moved.id)
        )
    assert len(sent) - before < 6 + 3 * 6, sent[before:]  # a few a run, none an epoch
    assert [len(store.history(run.id)) for run in store.runs(moved.id)] == [50] + [0] * 5


def test_a_connection_dropped_mid_transaction_is_retried_once(
    new_postgres_store: Callable[[], PostgresStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_postgres_store()
    sweep = store.create_sweep(parse_spec(GRID))
    claim = store.claim(sweep.id, "a")
    assert claim.run and claim.token
    store.log(claim.run.id, claim.token, 0, {"val/accuracy": 0.5})
    calls = []
    real_now = PostgresStore.now

    def drop_then_now(self: PostgresStore, conn: Any) -> float:
        calls.append(1)
        if len(calls) == 1:  # inside finish()'s transaction: the server cuts the connection
            pid = self._conn.info.backend_pid
            psql(self.url, "SELECT pg_terminate_backend(%s)", pid)
        return real_now(self, conn)

    monkeypatch.setattr(PostgresStore, "now", drop_then_now)
    run = store.finish(claim.run.id, claim.token, {"val/accuracy": 0.9})
    assert run.state == "finished" and run.summary == {"val/accuracy": 0.9}
    assert len(calls) == 2  # rolled back, reconnected, done again
    assert store.history(claim.run.id) == [{"val/accuracy": 0.5}]


def test_a_server_restart_is_waited_out(
    pg_server: Any, new_postgres_store: Callable[[], PostgresStore]
) -> None:
    store = new_postgres_store()
    sweep = store.create_sweep(parse_spec(GRID))
    claim = store.claim(sweep.id, "a")
    assert claim.run and claim.token
    pg_server.stop()
    restarted = threading.Timer(1.5, pg_server.start)
    restarted.start()
    try:
        # Called while the server is down: reconnects with backoff until it is back.
        assert store.heartbeat(claim.run.id, claim.token) is False
    finally:
        restarted.join()
    assert store.finish(claim.run.id, claim.token, {}).state == "finished"


def test_thirty_two_agents_claiming_at_once_get_distinct_runs(
    new_postgres_store: Callable[[], PostgresStore],
) -> None:
    seeds = ", ".join(str(i) for i in range(1, 49))
    spec = f"method: grid\nparameters:\n  seed: {{values: [{seeds}]}}\n"
    store = new_postgres_store()
    sweep = store.create_sweep(parse_spec(spec))
    barrier = threading.Barrier(32)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def agent(index: int) -> None:
        try:
            mine = store.reopen()
            barrier.wait()
            while (claim := mine.claim(sweep.id, f"agent-{index}")).status != "done":
                if claim.status == "wait":
                    time.sleep(0.01)
                    continue
                assert claim.run and claim.token
                claimed.append(claim.run.number)
                mine.log(claim.run.id, claim.token, 0, {"val/accuracy": 0.1})
                mine.finish(claim.run.id, claim.token, {"val/accuracy": 0.1})
            mine.close()
        except BaseException as exc:  # reported below: a thread's error must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(claimed) == list(range(1, 49))  # every cell once, none twice
    assert store.counts(sweep.id)["finished"] == 48


# --- many hosts, one store -------------------------------------------------------------------


def launch(
    url: str, sweep_id: str, workdir: Path, host: str, record: Path
) -> subprocess.Popen[str]:
    """``asc-sweep launch`` as a user starts it on one host: its own folder and host name, the
    store URL without the password (which comes from PGPASSWORD)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")])
    env.update(
        ASC_SWEEP_HOST=host,
        ASC_TEST_RECORD=str(record),
        ASC_TEST_SLEEP="0.6",
        PGPASSWORD=PASSWORD,
        ASC_SWEEP_STORE=redact(url),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "asc_sweep", "launch", sweep_id, "--agents", "2"]
    cmd += ["--function", "runfns:slow", "--tracking", "off"]
    return subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_three_hosts_share_a_48_run_grid_through_a_server_restart(
    pg_server: Any, new_pg_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_pg_database()
    spec = parse_spec(
        "method: grid\nparameters:\n  lr: {values: [0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]}\n"
        "  seed: {values: [1, 2, 3, 4, 5, 6, 7, 8]}\n"
    )
    with PostgresStore(url) as store:
        sweep = store.create_sweep(spec, lease_seconds=20)
    record = tmp_path / "record.jsonl"
    hosts = [
        launch(url, sweep.id, tmp_path / host, host, record)
        for host in ("node-a", "node-b", "node-c")
    ]
    try:
        # Once a third of the grid is done, the server goes down for 2 s mid-sweep.
        deadline = time.time() + 120
        while time.time() < deadline:
            done = psql(url, "SELECT count(*) FROM runs WHERE state = 'finished'")[0][0]
            if done >= 16:
                break
            time.sleep(0.2)
        assert done >= 16, "the sweep did not get a third of the way in 120 s"
        booted = psql(url, "SELECT pg_postmaster_start_time()")[0][0]
        pg_server.restart(down_seconds=2.0)
        assert psql(url, "SELECT pg_postmaster_start_time()")[0][0] > booted
        in_flight = psql(url, "SELECT count(*) FROM runs WHERE state <> 'finished'")[0][0]
        assert in_flight > 0, "the restart came after the sweep had ended"
        outputs = [p.communicate(timeout=240)[0] for p in hosts]
    finally:
        for p in hosts:
            p.kill() if p.poll() is None else None
    assert [p.returncode for p in hosts] == [0, 0, 0], "\n".join(outputs)
    with PostgresStore(url) as store:
        runs = store.runs(sweep.id)
    assert len(runs) == 48 and {r.state for r in runs} == {"finished"}
    cells = Counter((r.params["lr"], r.params["seed"]) for r in runs)
    assert len(cells) == 48 and set(cells.values()) == {1}
    assert {r.agent.split(":")[0] for r in runs if r.agent} == {"node-a", "node-b", "node-c"}
    ends = [json.loads(line) for line in record.read_text().splitlines()]
    finished = Counter(e["run"] for e in ends if e["event"] == "end")
    assert len(finished) == 48  # every run's function completed
    # The password never reached a command line, an agent log or the launcher's output.
    for output in outputs:
        assert PASSWORD not in output
    for log in tmp_path.glob("node-*/asc-sweep-logs/**/*.log"):
        assert PASSWORD not in log.read_text()


# --- moving a sweep, and the CLI on a PostgreSQL store ---------------------------------------


def test_a_sqlite_sweep_moves_to_postgres_with_runs_and_histories(
    new_pg_database: Callable[[], str], tmp_path: Path, cli: Callable[..., Any]
) -> None:
    source = tmp_path / "laptop.db"
    with LocalBackend(source) as local:
        sweep = local.create_sweep(parse_spec(GRID))
        for step, state in enumerate(("finish", "fail", "hold")):
            claim = local.claim(sweep.id, "laptop:1")
            assert claim.run and claim.token
            local.log(claim.run.id, claim.token, 0, {"val/accuracy": 0.1 * step})
            if state == "finish":
                local.finish(claim.run.id, claim.token, {"val/accuracy": 0.8})
            elif state == "fail":
                local.fail(claim.run.id, claim.token, "boom")
        before = {r.number: r for r in local.runs(sweep.id)}
    url = new_pg_database()
    result = cli("store", "migrate", "--from", source, "--to", url)
    assert result.exit_code == 0, result.output
    assert f"copied sweep {sweep.id}" in result.output and PASSWORD not in result.output
    with PostgresStore(url) as store:
        after = {r.number: r for r in store.runs(sweep.id)}
        assert after.keys() == before.keys()
        assert after[1].state == "finished" and after[1].summary == {"val/accuracy": 0.8}
        assert store.history(after[1].id) == [{"val/accuracy": 0.0}]
        assert after[2].state == "failed" and after[2].error == "boom"
        assert after[3].state == "pending"  # was running on the laptop: queued again
        assert all(after[n].params == before[n].params for n in before)
        # Agents on the cluster carry on where the laptop stopped.
        while (claim := store.claim(sweep.id, "node:1")).status == "claimed":
            assert claim.run and claim.token and claim.run.number >= 3
            store.finish(claim.run.id, claim.token, {"val/accuracy": 0.7})
        assert store.counts(sweep.id).done == 6
    again = cli("store", "migrate", "--from", source, "--to", url)
    assert again.exit_code == 2 and "already holds sweep" in again.output
    for command in (("status", sweep.id), ("list",)):
        shown = cli(*command, "--store", url)
        assert shown.exit_code == 0, shown.output
        assert sweep.id in shown.output and PASSWORD not in shown.output


def test_create_and_report_on_a_postgres_store(
    new_pg_database: Callable[[], str], write_spec: Callable[..., Path], cli: Callable[..., Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    url = new_pg_database()
    spec = write_spec(GRID)
    created = cli("create", spec, "--store", url)
    assert created.exit_code == 0, created.output
    assert PASSWORD not in created.output and "--store postgresql://asc@" in created.output
    sweep_id = created.output.strip().splitlines()[-1]
    with PostgresStore(url) as store:
        while (claim := store.claim(sweep_id, "a")).status == "claimed":
            assert claim.run and claim.token
            for epoch in range(2):
                store.log(claim.run.id, claim.token, epoch, {"epoch": epoch, "val/accuracy": 0.5})
            acc = 0.6 + 0.1 * (claim.run.params["init"] == "he_normal")
            store.finish(claim.run.id, claim.token, {"test/accuracy": acc, "val/accuracy": acc})
    report = cli("report", sweep_id, "--store", url, "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    text = (tmp_path / "report" / "report.md").read_text()
    assert "he_normal" in text and PASSWORD not in text
    assert cli("create", spec, "--backend", "postgres").exit_code == 2
