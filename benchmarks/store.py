"""Orchestration overhead of the SQL stores: claim + report round trip per run, N agents.

Each agent process loops claim -> one history step -> finish with a run that does nothing,
so the time measured is all orchestration: SQLite transactions (WAL, BEGIN IMMEDIATE) under
contention from N processes on this host, or PostgreSQL transactions over TCP on 127.0.0.1
(a row lock on the sweep serialises claims), plus the sweep engine where it is consulted.

* grid: configurations are expanded at create, a claim takes the next pending row;
* random: the engine is asked for every new configuration (run_cap bounds the sweep);
* bayes: the engine fits a Gaussian process over all runs for every new configuration;
* hyperband: a grid with early termination; each run logs up to 9 epochs (random scores), and
  every epoch the engine is asked, over every run's history, which runs to stop.

The last column times the bare engine call in one process with no store at all: what any
controller built on this engine (W&B's own local controller included) pays per suggestion.

The PostgreSQL rows use ``--postgres URL`` (an empty database), else a temporary server
started from Debian's binaries as the tests start one; ``--stores sqlite`` skips them.

Usage: python benchmarks/store.py [--agents 8 32] [--runs 512] [--bayes-runs 64]
                                  [--hyperband-runs 128] [--stores sqlite postgres]
                                  [--postgres URL]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from asc_sweep.backends.sql import SqlStore
from asc_sweep.sweep import engine
from asc_sweep.sweep.spec import parse_spec

SPECS = {
    "grid": "method: grid\nparameters:\n  seed: {{min: 1, max: {runs}}}\n",
    "random": "method: random\nrun_cap: {runs}\nparameters:\n  lr: {{min: 0.0001, max: 0.1}}\n",
    "bayes": (
        "method: bayes\nrun_cap: {runs}\nmetric: {{name: val/accuracy, goal: maximize}}\n"
        "parameters:\n  lr: {{min: 0.0001, max: 0.1}}\n  mixup: {{min: 0.0, max: 1.0}}\n"
    ),
    "hyperband": (
        "method: grid\nmetric: {{name: val/accuracy, goal: maximize}}\n"
        "early_terminate: {{type: hyperband, min_iter: 3, eta: 3}}\n"
        "parameters:\n  patience: {{min: 1, max: {runs}}}\n"
    ),
}
EPOCHS = {"hyperband": 9}  # history steps a run logs (1 for the other methods)


def open_only(store: str) -> SqlStore:
    """The store, importing nothing else of asc-sweep (its CLI and W&B backend cost seconds to
    import, which would stagger the agents' start)."""
    if store.startswith("postgresql://"):
        from asc_sweep.backends.postgres import PostgresStore

        return PostgresStore(store)
    from asc_sweep.backends.local import LocalBackend

    return LocalBackend(store)


def agent(store: str, sweep_id: str, epochs: int, ready: Any, out: mp.Queue) -> None:  # type: ignore[type-arg]
    backend = open_only(store)
    # Agents import the sweep engine (a second) before their first claim, outside the lock:
    # that start-up is not orchestration, so it ends before the clock starts.
    engine.warm_up()
    times: list[float] = []
    ready.wait()  # all agents begin together, once every one has started up
    began = time.time()
    while True:
        t0 = time.perf_counter()
        claim = backend.claim(sweep_id, "bench")
        if claim.status == "done":
            break
        if claim.status == "wait":
            time.sleep(0.01)
            continue
        assert claim.run is not None and claim.token is not None
        scores = random.Random(claim.run.number)
        for epoch in range(epochs):
            score = {"val/accuracy": scores.random()}
            if backend.log(claim.run.id, claim.token, epoch, score):
                break  # stopped early
        backend.finish(claim.run.id, claim.token, {"val/accuracy": claim.run.number / 1000})
        times.append(time.perf_counter() - t0)
    out.put((times, began, time.time()))


def measure(new_store: Callable[[], str], method: str, runs: int, agents: int) -> dict[str, float]:
    store = new_store()
    with open_only(store) as backend:
        sweep = backend.create_sweep(parse_spec(SPECS[method].format(runs=runs)), seed=0)
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    ready = ctx.Barrier(agents)
    epochs = EPOCHS.get(method, 1)
    procs = [
        ctx.Process(target=agent, args=(store, sweep.id, epochs, ready, queue))
        for _ in range(agents)
    ]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    times = [t for agent_times, _, _ in results for t in agent_times]
    wall = max(ended for _, _, ended in results) - min(began for _, began, _ in results)
    for p in procs:
        p.join()
    times.sort()
    return {
        "runs": len(times),
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[int(0.95 * (len(times) - 1))] * 1000,
        "runs_per_s": len(times) / wall,
    }


@contextmanager
def sqlite_stores() -> Iterator[Callable[[], str]]:
    with tempfile.TemporaryDirectory() as tmp:
        names = itertools.count()
        yield lambda: str(Path(tmp) / f"bench-{next(names)}.db")


@contextmanager
def postgres_stores(url: str | None) -> Iterator[Callable[[], str]]:
    """A new empty database per measurement on a temporary server (or the one given)."""
    if url is not None:
        yield lambda: url  # the user's database: measurements share it, as sweeps would
        return
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.pgserver import PostgresServer, skip_reason

    reason = skip_reason()
    if reason:
        raise SystemExit(f"no PostgreSQL rows: {reason} (or give --postgres URL)")
    server = PostgresServer()
    # A SIGTERM (a timeout, a kill) ends the script through the finally below, which stops
    # the temporary server instead of leaving it running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = itertools.count()
    try:
        yield lambda: server.create_database(f"bench{next(names)}")
    finally:
        server.close()


def engine_alone(method: str, runs: int) -> float:
    """Median ms of the bare engine call over a sweep's life (0..runs-1 finished runs)."""
    spec = parse_spec(SPECS[method].format(runs=runs)).config
    done: list[engine.EngineRun] = []
    times = []
    for k in range(runs):
        t0 = time.perf_counter()
        params = engine.suggest(spec, [] if method == "random" else done, seed=k)
        times.append(time.perf_counter() - t0)
        assert params is not None
        done.append(engine.EngineRun(str(k), "finished", params, [], {"val/accuracy": k / runs}))
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--runs", type=int, default=512)
    parser.add_argument("--bayes-runs", type=int, default=64)
    parser.add_argument("--hyperband-runs", type=int, default=128)
    parser.add_argument(
        "--stores", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database")
    args = parser.parse_args()
    print(
        "agent processes each loop claim + 1 history step (hyperband: up to 9) + finish per run\n"
    )
    print(
        "| store | agents | method | runs | median ms | p95 ms | runs/s (all agents) "
        "| engine alone, median ms |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    alone = {m: engine_alone(m, args.bayes_runs if m == "bayes" else args.runs)
             for m in ("random", "bayes")}  # fmt: skip
    for kind in args.stores:
        stores = sqlite_stores() if kind == "sqlite" else postgres_stores(args.postgres)
        with stores as new_store:
            for agents in args.agents:
                for method in ("grid", "random", "bayes", "hyperband"):
                    n = {"bayes": args.bayes_runs, "hyperband": args.hyperband_runs}.get(
                        method, args.runs
                    )
                    r = measure(new_store, method, n, agents)
                    bare = f"{alone[method]:.1f}" if method in alone else "-"
                    print(
                        f"| {kind} | {agents} | {method} | {int(r['runs'])} "
                        f"| {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['runs_per_s']:.0f} "
                        f"| {bare} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
