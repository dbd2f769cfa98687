"""Fixtures: a store in a temporary folder, spec files, the CLI, real agent processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asc_sweep.backends import LocalBackend
from asc_sweep.cli import app

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "sweeps.db"


@pytest.fixture
def backend(store: Path) -> Iterator[LocalBackend]:
    b = LocalBackend(store)
    yield b
    b.close()


@pytest.fixture
def new_sqlite_store(tmp_path: Path) -> Callable[[], LocalBackend]:
    """Opens a new SQLite store file in the test's folder each call."""
    names = itertools.count()
    return lambda: LocalBackend(tmp_path / f"store-{next(names)}.db")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for the session (skipped, with the reason, where none runs)."""
    from tests.pgserver import PostgresServer, skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    yield server
    server.close()


_databases = itertools.count()


@pytest.fixture
def new_pg_database(pg_server: Any) -> Callable[[], str]:
    """Creates a new, empty database on the test server each call; returns its URL."""
    return lambda: pg_server.create_database(f"t{os.getpid()}_{next(_databases)}")


@pytest.fixture
def new_postgres_store(new_pg_database: Callable[[], str]) -> Callable[[], Any]:
    """Opens a store in a new database on the test PostgreSQL server each call."""
    from asc_sweep.backends.postgres import PostgresStore

    return lambda: PostgresStore(new_pg_database(), retry_seconds=30)


@pytest.fixture(params=["sqlite", "postgres"])
def make_sql_store(request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """The store contract's matrix: opens a new, empty store of the kind under test (an SQLite
    file, a database on the test PostgreSQL server) each call."""
    opened: list[Any] = []
    new = request.getfixturevalue(f"new_{request.param}_store")

    def make() -> Any:
        opened.append(new())
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli() -> Callable[..., object]:
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def mlp_sweep(store: Path, synth_root: Path, epochs: int = 1) -> str:
    """A 2-run grid (folds 1 and 2) of the real trainer on ``synth_root``: the small MLP, short
    crops, ``epochs`` epochs; returns its id."""
    import yaml

    from asc_sweep.sweep.spec import parse_spec

    knobs = {"dataset": "synth", "data_root": str(synth_root), "arch": "dcase2017_mlp",
             "n_mels": 40, "epochs": epochs, "crop_seconds": 0.5}  # fmt: skip
    params: dict[str, Any] = {k: {"value": v} for k, v in knobs.items()}
    params["fold"] = {"values": [1, 2]}
    spec = {"method": "grid", "metric": {"name": "val/accuracy", "goal": "maximize"},
            "parameters": params}  # fmt: skip
    with LocalBackend(store) as backend:
        return backend.create_sweep(parse_spec(yaml.safe_dump(spec))).id


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_out(
    backend: Any,
    sweep_id: str,
    fail: set[int],
    error: str = "CUDA out of memory",
    summary: dict[str, Any] | None = None,
) -> None:
    """Claim every run of the sweep in a store; fail those numbered in ``fail`` with
    ``error``, finish the others with ``summary``."""
    while (claim := backend.claim(sweep_id, "a")).status == "claimed":
        assert claim.run and claim.token
        if claim.run.number in fail:
            backend.fail(claim.run.id, claim.token, error)
        else:
            backend.finish(claim.run.id, claim.token, summary or {"val/accuracy": 0.5})


def agent_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def start_agent(
    store: Path, sweep_id: str, function: str, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """A real agent process, as a user starts one."""
    cmd = [
        sys.executable,
        "-m",
        "asc_sweep",
        "agent",
        sweep_id,
        "--store",
        str(store),
        "--function",
        f"runfns:{function}",
        "--poll-seconds",
        "0.1",
        *args,
    ]
    return subprocess.Popen(
        cmd, env=agent_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Audio caches and W&B files of the whole session go to a temporary folder."""
    saved = {
        k: os.environ.get(k) for k in ("ASC_SWEEP_CACHE", "WANDB_DIR", "WANDB_MODE", "WANDB_SILENT")
    }
    os.environ["ASC_SWEEP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["WANDB_DIR"] = str(tmp_path_factory.mktemp("wandb"))
    os.environ["WANDB_SILENT"] = "true"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic scene set (4 classes x 8 clips of 1 s at 16 kHz, 4 folds)."""
    from asc_sweep.data.synth import SynthSpec, generate

    root = tmp_path_factory.mktemp("synth")
    generate(
        root, SynthSpec(classes=4, clips_per_class=8, seconds=1.0, sample_rate=16000), workers=1
    )
    return root


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many tests ran (and passed) against each sweep store, and the bad-input corpus."""
    corpus = Counter(
        outcome
        for outcome in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(outcome, [])
        if "test_bad_inputs.py::test_bad_input[" in report.nodeid
        and (getattr(report, "when", "call") == "call" or outcome != "passed")
    )
    if corpus:
        from tests.test_bad_inputs import ALL

        terminalreporter.write_line(
            f"bad-input corpus: {len(ALL)} cases, {corpus['passed']} passed, "
            f"{corpus['failed'] + corpus['error']} failed, {corpus['skipped']} skipped"
        )
    ran: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "error":
                continue
            for kind in ("sqlite", "postgres"):
                if f"[{kind}" in report.nodeid:
                    ran[kind] += 1
                    passed[kind] += outcome == "passed"
    skipped = Counter(
        kind
        for report in terminalreporter.stats.get("skipped", [])
        for kind in ("sqlite", "postgres")
        if f"[{kind}" in report.nodeid
    )
    if ran or skipped:
        line = "; ".join(
            f"{kind}: {passed[kind]} of {ran[kind]} passed, {skipped[kind]} skipped"
            for kind in ("sqlite", "postgres")
        )
        terminalreporter.write_line(f"store contract suite: {line}")
