"""Observed metrics and history reach W&B's sweep engine, whatever pydantic is installed, from
every SQL store."""

from __future__ import annotations

import json
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


def _suggestions_with_junk(backend: SqlStore, junk: list[Any]) -> list[tuple[float, float]]:
    """A 20-run bayes sweep whose runs 2, 4, ... log ``junk`` values of the metric in turn
    (``None``: nothing at all), the others a score that prefers small mixup."""
    sweep = backend.create_sweep(parse_spec(BAYES), seed=11)
    out = []
    for i in range(20):
        claim = backend.claim(sweep.id, "a")
        assert claim.run and claim.token
        out.append((claim.run.params["lr"], claim.run.params["mixup"]))
        value = junk[(i // 2) % len(junk)] if i % 2 else 1 - claim.run.params["mixup"]
        metrics = {} if value is None else {"val/accuracy": value}
        backend.log(claim.run.id, claim.token, 0, metrics)
        backend.finish(claim.run.id, claim.token, metrics)
    return out


def test_a_run_that_logged_nan_counts_as_one_that_logged_nothing(
    make_sql_store: Callable[[], SqlStore],
) -> None:
    """A run that diverged logs NaN; a custom run function may log an infinity, a text or
    1e308. The engine compares the values and squares them: left in, any of them failed every
    later claim of a bayes sweep. It sees only the numbers it can use, so such a run counts as
    one that logged nothing (the engine's worst), and the sweep goes on."""
    junk = _suggestions_with_junk(make_sql_store(), [math.nan, math.inf, "high", 1e308, -math.inf])
    silent = _suggestions_with_junk(make_sql_store(), [None])
    assert junk == silent and len(set(junk)) == 20


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


def _full_view(store: SqlStore, sweep_id: str) -> list[engine.EngineRun]:
    """Every run of the sweep with every metric of its history and summary, read afresh."""
    histories = store.histories(sweep_id)
    return [
        engine.EngineRun(str(r.id), r.state, r.params, histories.get(r.id, []), r.summary or {})
        for r in store.runs(sweep_id)
    ]


def _seen(runs: Any, metric: str) -> list[tuple[str, Any, list[Any], Any]]:
    """What the engine reads of each run: name, state, the metric's history and summary."""
    records = [
        r.record if isinstance(r, engine.PreparedRun) else engine.to_sweep_run(r) for r in runs
    ]
    return [
        (r.name, r.state, r.metric_history(metric), (r.summary_metrics or {}).get(metric))
        for r in records
    ]


def _epoch(loss: float, epoch: int) -> dict[str, Any]:
    """A step as the trainer logs it: many metrics beside the spec's."""
    return {
        "epoch": epoch,
        "train/loss": loss * 1.1,
        "train/accuracy": 1 - loss / 3,
        "lr": 0.003,
        "val/loss": loss,
        "val/accuracy": 1 - loss / 4,
        "val/macro_f1": 1 - loss / 5,
        "time/epoch_seconds": 0.5,
    }


HYPERBAND_GRID = """
method: grid
metric: {name: val/loss, goal: minimize}
early_terminate: {type: hyperband, min_iter: 2, eta: 2}
parameters:
  weight_decay: {values: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14]}
"""


def test_the_engine_decides_on_the_stores_kept_view_as_on_every_runs_full_record(
    make_sql_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store hands the engine each run's metric alone and keeps the ended runs' records
    between calls; the engine must stop the same runs as on every run's full record, read
    afresh, through runs that end, fail, are put back mid-run, and log a NaN or a step
    without the metric."""
    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(HYPERBAND_GRID))
    compared: list[list[str]] = []
    real = engine.runs_to_stop

    def both(spec: Any, runs: Any) -> list[str]:
        kept = real(spec, runs)
        with backend.reopen() as fresh:
            full = [r for r in _full_view(fresh, sweep.id) if r.history]
            assert _seen(runs, "val/loss") == _seen(full, "val/loss")
            assert sorted(kept) == sorted(real(spec, full))
        compared.append(kept)
        return kept

    monkeypatch.setattr(engine, "runs_to_stop", both)
    flying: list[tuple[int, str, float, int]] = []  # run id, token, its loss level, epochs logged
    claimed = 0
    step = 0
    while True:
        while len(flying) < 3:
            claim = backend.claim(sweep.id, f"agent-{claimed % 3}")
            if claim.status != "claimed":
                break
            assert claim.run and claim.token
            claimed += 1
            flying.append((claim.run.id, claim.token, 0.2 + (claimed * 7 % 11) / 10, 0))
        if not flying:
            break
        step += 1
        run_id, token, level, logged = flying.pop(0)
        metrics = _epoch(level + 1 / (logged + 1), logged)
        if step == 9:
            metrics["val/loss"] = math.nan  # a diverged epoch
        if step == 13:
            del metrics["val/loss"]  # a step without the spec's metric
        stop = backend.log(run_id, token, logged, metrics)
        logged += 1
        if step == 20:  # its agent is stopping: back in the queue, its history kept
            backend.requeue(run_id, token, "SIGTERM")
        elif step == 25:
            backend.fail(run_id, token, "CUDA out of memory")
        elif stop or logged == 6:
            backend.finish(run_id, token, {"val/loss": level})
        else:
            flying.append((run_id, token, level, logged))
    states = [run.state for run in backend.runs(sweep.id)]
    assert len(compared) == step > 40
    assert "stopped" in states and "finished" in states and "failed" in states
    assert sum(1 for kept in compared if kept) >= 3  # the comparison had stops to compare


def test_bayes_suggests_on_the_stores_kept_view_as_on_every_runs_full_record(
    make_sql_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the bayes search at each claim: runs running, finished and failed, each
    with a history of many metrics."""
    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(BAYES), seed=11)
    compared: list[Any] = []
    real = engine.suggest

    def both(spec: Any, runs: Any, seed: int) -> Any:
        kept = real(spec, runs, seed)
        with backend.reopen() as fresh:
            full = _full_view(fresh, sweep.id)
            assert _seen(runs, "val/accuracy") == _seen(full, "val/accuracy")
            assert kept == real(spec, full, seed)
        compared.append(kept)
        return kept

    monkeypatch.setattr(engine, "suggest", both)
    waiting = backend.claim(sweep.id, "b")  # in flight throughout
    assert waiting.run and waiting.token
    backend.log(waiting.run.id, waiting.token, 0, _epoch(0.5, 0))
    for i in range(6):
        claim = backend.claim(sweep.id, "a")
        assert claim.run and claim.token
        mixup = claim.run.params["mixup"]
        for epoch in range(3):
            backend.log(claim.run.id, claim.token, epoch, _epoch(mixup + 1 / (epoch + 1), epoch))
        if i == 2:
            backend.fail(claim.run.id, claim.token, "diverged")
        else:
            backend.finish(claim.run.id, claim.token, {"val/accuracy": 1 - mixup / 4})
    assert len(compared) == 7 and len({str(c) for c in compared}) == 7


def test_a_claim_that_rolls_back_leaves_no_ended_run_behind(
    make_sql_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim ends a run whose lease ran out on its last attempt, then fails before it
    commits: the run is still running (its agent was only slow), and finishes. The store
    must not have kept the failed record its rolled-back claim read."""
    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(BAYES), seed=5, lease_seconds=0.5, max_attempts=1)
    slow = backend.claim(sweep.id, "slow")
    assert slow.run and slow.token
    backend.log(slow.run.id, slow.token, 0, _epoch(0.4, 0))
    time.sleep(0.7)  # its lease runs out
    real = engine.suggest
    calls: list[int] = []

    def failing_once(spec: Any, runs: Any, seed: int) -> Any:
        calls.append(1)
        if len(calls) == 1:  # the claim that expired the slow run's lease fails
            with backend.reopen() as fresh:
                assert [r.state for r in _full_view(fresh, sweep.id)] == ["running"]
            raise RuntimeError("the claim fails before it commits")
        kept = real(spec, runs, seed)
        with backend.reopen() as fresh:
            full = _full_view(fresh, sweep.id)
            assert [r.state for r in full] == ["finished"]
            assert _seen(runs, "val/accuracy") == _seen(full, "val/accuracy")
            assert kept == real(spec, full, seed)
        return kept

    monkeypatch.setattr(engine, "suggest", failing_once)
    with pytest.raises(RuntimeError, match="before it commits"):
        backend.claim(sweep.id, "quick")
    assert backend.heartbeat(slow.run.id, slow.token) is False  # still its run: renewed
    backend.finish(slow.run.id, slow.token, {"val/accuracy": 0.9})
    assert backend.claim(sweep.id, "quick").status == "claimed"
    assert len(calls) == 2


def test_a_log_reads_the_ended_runs_histories_once(
    make_sql_store: Callable[[], SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ended run's history never changes: the early-termination pass of each log reads the
    histories of the runs still going (and of those that ended since), not every epoch of the
    sweep again (a sweep of 1,000 runs of 50 epochs read and parsed 50,000 steps a log)."""
    from asc_sweep.backends import sql

    backend = make_sql_store()
    sweep = backend.create_sweep(parse_spec(HYPERBAND_GRID))
    for _ in range(10):
        claim = backend.claim(sweep.id, "a")
        assert claim.run and claim.token
        for epoch in range(20):
            backend.log(claim.run.id, claim.token, epoch, _epoch(0.3, epoch))
        backend.finish(claim.run.id, claim.token, {"val/loss": 0.3})
    live = backend.claim(sweep.id, "a")
    assert live.run and live.token
    backend.log(live.run.id, live.token, 0, _epoch(0.3, 0))  # reads the ended runs once

    parsed: list[str] = []

    class Counting:
        dumps = staticmethod(json.dumps)

        @staticmethod
        def loads(text: str) -> Any:
            parsed.append(text)
            return json.loads(text)

    monkeypatch.setattr(sql, "json", Counting)
    for epoch in range(1, 4):
        parsed.clear()
        backend.log(live.run.id, live.token, epoch, _epoch(0.3, epoch))
        assert len(parsed) <= epoch + 3  # its own steps, its params; not the 200 ended steps


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


def test_hyperband_judges_a_run_against_the_runs_of_its_fold() -> None:
    """Fold 2 is harder than fold 1 for every configuration. A run that leads fold 2 is not
    stopped for being below fold 1's runs; one that trails fold 1's runs is. Thresholds drawn
    over both folds (as W&B's controller draws them) stop the wrong one. Each run has a seed
    of its own, which the search draws from a range: runs are still judged together. Seeds
    the spec lists are judged apart (a seed picks the clips that validate)."""
    spec = {
        "method": "random",
        "metric": {"name": "val/accuracy", "goal": "maximize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}, "fold": {"values": [1, 2]},
                       "seed": {"min": 1, "max": 1000}},
    }  # fmt: skip
    seeds = iter(range(1, 100))

    def run(name: str, state: str, fold: int, level: float) -> engine.EngineRun:
        epochs = 6 if state == "finished" else 4  # the running ones are past band 2
        history = [{"val/accuracy": level - 0.2 / (e + 1)} for e in range(epochs)]
        return engine.EngineRun(
            name, state, {"lr": 0.1, "fold": fold, "seed": next(seeds)}, history
        )

    runs = [
        *(run(f"easy-{i}", "finished", 1, level) for i, level in enumerate((0.9, 0.85, 0.8))),
        *(run(f"hard-{i}", "finished", 2, level) for i, level in enumerate((0.55, 0.5))),
        run("leads-hard-fold", "running", 2, 0.56),
        run("trails-easy-fold", "running", 1, 0.6),
    ]
    assert engine.runs_to_stop(spec, runs) == ["trails-easy-fold"]
    prepared = [engine.prepare(r) if r.state == "finished" else r for r in runs]
    assert engine.runs_to_stop(spec, prepared) == ["trails-easy-fold"]
    pooled = [engine.EngineRun(r.name, r.state, {**r.params, "fold": 1}, r.history) for r in runs]
    assert engine.runs_to_stop(spec, pooled) == ["leads-hard-fold"]
    listed = {**spec, "parameters": {**spec["parameters"], "seed": {"values": list(range(1, 8))}}}
    assert engine.runs_to_stop(listed, runs) == []  # each run alone on its seed's clips
    # A grid enumerates a seed range: its seeds are listed, as the report's sampled knobs say.
    grid = {**spec, "method": "grid"}
    assert engine.same_data(grid) == engine.SAME_DATA
    assert engine.runs_to_stop(grid, runs) == []
    assert "seed" not in engine.same_data(spec)
    # What W&B's controller would pool: swept folds and listed seeds, not a one-value list.
    assert engine.pooled_by_hyperband(listed) == ["fold", "seed"]
    one_fold = {**listed, "parameters": {**listed["parameters"], "fold": {"values": [2, 2]}}}
    assert engine.pooled_by_hyperband(one_fold) == ["seed"]
    assert engine.pooled_by_hyperband({**listed, "early_terminate": None}) == []


def test_runs_list_their_knobs_in_the_spec_s_order(make_sql_store: Callable[[], SqlStore]) -> None:
    """The engine sorts parameters by name; a run's knobs, and so the report's factors and
    table columns, follow the spec as it was written."""
    from asc_sweep.report.records import RunRecord, swept_factors

    backend = make_sql_store()
    spec = ("method: grid\nparameters:\n  sample_rate: {values: [8000, 16000]}\n"
            "  init: {values: [default, he_normal]}\n  arch: {values: [cnn6, crnn]}\n"
            "  fold: {values: [1, 2]}\n")  # fmt: skip
    sweep = backend.create_sweep(parse_spec(spec))
    claim = backend.claim(sweep.id, "a")
    assert claim.run is not None
    assert list(claim.run.params) == ["sample_rate", "init", "arch", "fold"]
    records = [RunRecord(str(r.id), r.params, "finished", {}) for r in backend.runs(sweep.id)]
    assert swept_factors(records) == ["sample_rate", "init", "arch"]
    random = backend.create_sweep(parse_spec(spec.replace("grid", "random\nrun_cap: 2")))
    drawn = backend.claim(random.id, "a")
    assert drawn.run is not None and list(drawn.run.params) == [
        "sample_rate",
        "init",
        "arch",
        "fold",
    ]


def test_the_hyperband_replay_benchmark_reads_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``benchmarks/hyperband_folds.py`` on a finished sweep whose fold 2 is harder for every
    learning rate: pooled thresholds stop fold 2's runs, per-fold thresholds stop each fold's
    worst alike."""
    import importlib.util

    from asc_sweep.backends import LocalBackend

    path = Path(__file__).parents[1] / "benchmarks" / "hyperband_folds.py"
    spec = importlib.util.spec_from_file_location("hyperband_folds", path)
    assert spec and spec.loader
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    store = tmp_path / "sweep.db"
    levels = {(0.01, 1): 0.9, (0.001, 1): 0.85, (0.0001, 1): 0.8,
              (0.01, 2): 0.6, (0.001, 2): 0.55, (0.0001, 2): 0.5}  # fmt: skip
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(
            "method: grid\nparameters:\n  lr: {values: [0.01, 0.001, 0.0001]}\n"
            "  fold: {values: [1, 2]}\n"))  # fmt: skip
        while (claim := backend.claim(sweep.id, "a")).status == "claimed":
            assert claim.run and claim.token
            level = levels[(claim.run.params["lr"], claim.run.params["fold"])]
            for epoch in range(8):
                backend.log(claim.run.id, claim.token, epoch,
                            {"epoch": epoch + 1, "val/accuracy": level - 0.2 / (epoch + 1)})  # fmt: skip
            backend.finish(claim.run.id, claim.token, {"test/accuracy": level})
    monkeypatch.setattr(
        sys, "argv", ["hyperband_folds.py", "--store", str(store), "--min-iter", "2"]
    )
    replay.main()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")}  # fmt: skip
    # fold -> runs, mean best, stopped pooled, stopped per fold
    assert rows["1"][0] == rows["2"][0] == "3"
    assert int(rows["2"][2]) > int(rows["1"][2])  # pooled: the hard fold pays
    assert rows["1"][3] == rows["2"][3] != "0"  # per fold: alike
