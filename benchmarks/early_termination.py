"""What early termination costs an epoch, as a sweep grows: one ``log`` of a hyperband sweep.

Every epoch a run logs, its agent asks the engine which runs hyperband would stop, over the
history of every run of the sweep. The store keeps the records of the runs that ended (they
never change) and reads only the histories of the runs still going and of those that ended
since its last call. The alternative, side by side on the same store: reading every run's
every step at every log (what the store did before, and what a controller without such a
record does), each step whole.

A sweep of N runs x E epochs is stored (N - 1 ended, with E steps each of the trainer's 9
metrics), then one running run logs: the median of 7 logs after its first, and the first
(which reads every ended run once in either case: an agent's first decision of a sweep).

Usage: python benchmarks/early_termination.py [--sizes 150x9 500x30 1000x50]
                                              [--stores sqlite postgres] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from store import open_only, postgres_stores, sqlite_stores

from asc_sweep.backends.sql import Conn, SqlStore, _histories
from asc_sweep.sweep import engine
from asc_sweep.sweep.spec import parse_spec

SPEC = (
    "method: grid\nmetric: {{name: val/accuracy, goal: maximize}}\n"
    "early_terminate: {{type: hyperband, min_iter: 3, eta: 3}}\n"
    "parameters:\n  patience: {{min: 1, max: {runs}}}\n"
)
LOGS = 7


def step(epoch: int, rng: random.Random) -> dict[str, Any]:
    """One epoch's metrics as the trainer logs them."""
    return {
        "epoch": epoch,
        "train/loss": rng.random(),
        "train/accuracy": rng.random(),
        "lr": 0.003,
        "time/epoch_seconds": rng.random(),
        "val/loss": rng.random(),
        "val/accuracy": rng.random(),
        "val/macro_f1": rng.random(),
        "time/val_seconds": rng.random(),
    }


def full_read(store: SqlStore) -> None:
    """Make ``store`` read every run's whole history at every decision (the alternative)."""

    def every_step(conn: Conn, sweep: str, metric: Any, **_: Any) -> list[engine.EngineRun]:
        histories = _histories(conn, sweep)  # what the report reads: every step, whole
        return [
            engine.EngineRun(
                str(run_id),
                state,
                json.loads(params),
                histories.get(run_id, []),
                json.loads(summary) if summary else {},
            )
            for run_id, state, params, summary in conn.execute(
                "SELECT id, state, params, summary FROM runs WHERE sweep_id = ? ORDER BY number",
                (sweep,),
            ).fetchall()
        ]

    store._engine_runs = every_step  # type: ignore[method-assign]


def measure(location: str, runs: int, epochs: int, full: bool) -> dict[str, float]:
    rng = random.Random(1)
    with open_only(location) as store:
        sweep = store.create_sweep(parse_spec(SPEC.format(runs=runs)))
        for _ in range(runs - 1):
            claim = store.claim(sweep.id, "a")
            assert claim.run and claim.token
            rows = [(claim.run.id, e, json.dumps(step(e, rng))) for e in range(epochs)]
            store._write(
                lambda conn, _, rows=rows: conn.executemany(
                    "INSERT INTO history (run_id, step, metrics) VALUES (?, ?, ?)", rows
                )
            )
            store.finish(claim.run.id, claim.token, {"val/accuracy": rng.random()})
    # A fresh connection, as an agent process has.
    with open_only(location) as store:
        if full:
            full_read(store)
        live = store.claim(sweep.id, "b")
        assert live.run and live.token
        t0 = time.perf_counter()
        store.log(live.run.id, live.token, 0, step(0, rng))
        first = time.perf_counter() - t0
        times = []
        for epoch in range(1, LOGS + 1):
            t0 = time.perf_counter()
            store.log(live.run.id, live.token, epoch, step(epoch, rng))
            times.append(time.perf_counter() - t0)
    return {"first_ms": first * 1000, "median_ms": statistics.median(times) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["150x9", "500x30", "1000x50"])
    parser.add_argument(
        "--stores", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes]
    # The engine's imports and its first record, before the first row rather than inside it.
    engine.warm_up()
    engine.runs_to_stop(
        parse_spec(SPEC.format(runs=2)).config, [engine.EngineRun("0", "finished", {}, [{}])]
    )
    print(
        "| store | runs x epochs | steps stored | per log: records kept (ms) | per log: every "
        "step read (ms) | ratio | first log, kept / every step (ms) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for kind in args.stores:
        stores = sqlite_stores() if kind == "sqlite" else postgres_stores(args.postgres)
        with stores as new_location:
            measure(new_location(), 150, 9, full=True)  # a process's first store reads: not timed
            for runs, epochs in sizes:
                kept = measure(new_location(), runs, epochs, full=False)
                every = measure(new_location(), runs, epochs, full=True)
                print(
                    f"| {kind} | {runs} x {epochs} | {(runs - 1) * epochs:,} | "
                    f"{kept['median_ms']:.1f} | {every['median_ms']:.1f} | "
                    f"{every['median_ms'] / kept['median_ms']:.1f}x | "
                    f"{kept['first_ms']:.0f} / {every['first_ms']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
