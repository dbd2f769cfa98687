"""Observed metrics and history reach W&B's sweep engine, whatever pydantic is installed, from
every SQL store."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest

from asc_sweep.backends.sql import SqlStore
from asc_sweep.sweep import engine
from asc_sweep.sweep.spec import parse_spec

BAYES = """
method: bayes
metric: {name: val/accuracy, goal: maximize}
parameters:
  lr: {min: 0.0001, max: 0.1}
  mixup: {min: 0.0, max: 1.0}
"""


def test_history_and_summary_reach_the_engine_run() -> None:
    run = engine.to_sweep_run(
        engine.EngineRun(
            "1", "finished", {"lr": 0.1}, [{"val/loss": 2.0}, {"val/loss": 1.0}], {"val/loss": 1.0}
        )
    )
    assert run.metric_history("val/loss") == [2.0, 1.0]
    assert run.summary_metrics == {"val/loss": 1.0}
    assert run.metric_extremum("val/loss", "minimum") == 1.0
    assert pydantic.VERSION  # the check above holds under the pydantic that is installed


def _bayes_suggestions(backend: SqlStore, objective: str) -> list[tuple[float, float]]:
    """Drive a bayes sweep: 8 runs, each scored by ``objective`` (same seed every time)."""
    sweep = backend.create_sweep(parse_spec(BAYES), seed=7)
    out = []
    for _ in range(8):
        claim = backend.claim(sweep.id, "a")
        assert claim.run and claim.token
        lr, mixup = claim.run.params["lr"], claim.run.params["mixup"]
        out.append((lr, mixup))
        # objective A prefers small mixup, objective B large mixup
        value = 1 - mixup if objective == "A" else mixup
        backend.log(claim.run.id, claim.token, 0, {"val/accuracy": value / 2})
        backend.finish(claim.run.id, claim.token, {"val/accuracy": value + 0 * lr})
    return out


def test_bayes_suggestions_change_with_observed_metrics(
    make_sql_store: Callable[[], SqlStore],
) -> None:
    a1 = _bayes_suggestions(make_sql_store(), "A")
    a2 = _bayes_suggestions(make_sql_store(), "A")
    b = _bayes_suggestions(make_sql_store(), "B")
    assert a1 == a2  # same spec, seed and results: same suggestions
    assert a1[0] == b[0]  # before any result the two sweeps agree
    assert a1[1:] != b[1:]  # after results come in they diverge
    # ...and each moves towards what its metric rewards.
    late_a = sum(m for _, m in a1[4:]) / 4
    late_b = sum(m for _, m in b[4:]) / 4
    assert late_a < late_b


def test_engine_sees_finished_and_running_runs(make_sql_store: Callable[[], SqlStore]) -> None:
    """Runs in flight are passed to the engine too (bayes avoids suggesting them again)."""
    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(BAYES), seed=3)
    claims = [backend.claim(sweep.id, f"a{i}") for i in range(3)]
    params = [c.run.params for c in claims if c.run]
    assert len({(p["lr"], p["mixup"]) for p in params}) == 3
    assert all(math.isfinite(p["lr"]) for p in params)


HYPERBAND = """
method: grid
metric: {name: val/loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 2, eta: 2}
parameters:
  lr: {values: [0.1, 0.01, 0.001]}
"""


def test_hyperband_stops_a_run_whose_stored_history_is_poor(
    make_sql_store: Callable[[], SqlStore],
) -> None:
    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(HYPERBAND))
    # Two good runs finish first: their histories set the band thresholds.
    for loss in (0.2, 0.5):
        claim = backend.claim(sweep.id, "a")
        assert claim.run and claim.token
        for epoch in range(6):
            assert not backend.log(
                claim.run.id, claim.token, epoch, {"val/loss": loss + 1 / (epoch + 1)}
            )
        backend.finish(claim.run.id, claim.token, {"val/loss": loss})
    poor = backend.claim(sweep.id, "a")
    assert poor.run and poor.token and poor.run.params["lr"] == 0.001
    told = [
        backend.log(poor.run.id, poor.token, e, {"val/loss": 2.0 + 1 / (e + 1)}) for e in range(4)
    ]
    assert told[:2] == [False, False]  # no band reached yet
    assert told[2] is True  # past band 2 with a loss worse than the threshold
    run = backend.finish(poor.run.id, poor.token, {"val/loss": 2.0})
    assert run.state == "stopped"
    states = {r.params["lr"]: r.state for r in backend.runs(sweep.id)}
    assert states == {0.1: "finished", 0.01: "finished", 0.001: "stopped"}


def test_early_termination_decides_outside_the_write_transaction(
    make_sql_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's early-termination pass reads every run's history and grows with the sweep:
    while it runs, the run's own heartbeat (from its agent's heartbeat thread) and another
    agent's calls must not wait for it (a write transaction locks the run's row on PostgreSQL,
    the whole store on SQLite)."""
    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(HYPERBAND))
    first, second = backend.claim(sweep.id, "a"), backend.claim(sweep.id, "b")
    assert first.run and first.token and second.run and second.token
    waited: list[float] = []
    passes: list[Any] = []
    real = engine.runs_to_stop

    def other_agent() -> None:  # their own connection, in their own thread
        with backend.reopen() as other:
            assert other.heartbeat(first.run.id, first.token) is False  # type: ignore[union-attr]
            other.log(second.run.id, second.token, 0, {"val/loss": 1.0})  # type: ignore[union-attr]

    def deciding(spec: Any, runs: Any) -> list[str]:
        if not passes:  # the first agent's pass: the other agent's calls, with a deadline
            passes.append(spec)
            t0 = time.monotonic()
            thread = threading.Thread(target=other_agent)
            thread.start()
            thread.join(timeout=5)
            waited.append(time.monotonic() - t0)
        return real(spec, runs)

    monkeypatch.setattr(engine, "runs_to_stop", deciding)
    assert backend.log(first.run.id, first.token, 0, {"val/loss": 1.0}) is False
    assert waited and waited[0] < 5
    assert [len(backend.history(run.id)) for run in (first.run, second.run)] == [1, 1]


def test_an_agent_imports_the_engine_before_it_takes_the_sweeps_lock(tmp_path: Path) -> None:
    """The engine imports scipy.stats and scikit-learn on its first call (about a second): an
    agent's first claim of a random or bayes sweep must not spend that second
    holding the lock every other agent's claim waits for. A fresh process, since this one has
    imported the engine already."""
    probe = f"""
import sys
from asc_sweep.backends.local import LocalBackend
from asc_sweep.sweep.spec import parse_spec
store = LocalBackend({str(tmp_path / "s.db")!r})
sweep = store.create_sweep(parse_spec({BAYES!r}))
assert "sweeps.bayes_search" not in sys.modules  # creating a bayes sweep does not load it
locked = []
real = store._write
def write(body):
    locked.append("sweeps.bayes_search" in sys.modules and "sklearn" in sys.modules)
    return real(body)
store._write = write
assert store.claim(sweep.id, "a").status == "claimed"
print(locked)
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True]"
