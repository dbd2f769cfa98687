"""Orchestration overhead of the local store: claim + report round trip per run, 8 agents.

Each agent process loops claim -> one history step -> finish with a run that does nothing,
so the time measured is all orchestration: SQLite transactions (WAL, BEGIN IMMEDIATE) under
contention from 8 processes on this host, plus the sweep engine where it is consulted.

* grid: configurations are expanded at create, a claim takes the next pending row;
* random: the engine is asked for every new configuration (run_cap bounds the sweep);
* bayes: the engine fits a Gaussian process over all runs for every new configuration.

The last column times the bare engine call in one process with no store at all: what any
controller built on this engine (W&B's own local controller included) pays per suggestion.

Usage: python benchmarks/store.py [--agents 8] [--runs 512] [--bayes-runs 64]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from pathlib import Path

from asc_sweep.backends import LocalBackend
from asc_sweep.sweep import engine
from asc_sweep.sweep.spec import parse_spec

SPECS = {
    "grid": "method: grid\nparameters:\n  seed: {{min: 1, max: {runs}}}\n",
    "random": "method: random\nrun_cap: {runs}\nparameters:\n  lr: {{min: 0.0001, max: 0.1}}\n",
    "bayes": (
        "method: bayes\nrun_cap: {runs}\nmetric: {{name: val/accuracy, goal: maximize}}\n"
        "parameters:\n  lr: {{min: 0.0001, max: 0.1}}\n  mixup: {{min: 0.0, max: 1.0}}\n"
    ),
}


def agent(store: str, sweep_id: str, start: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    backend = LocalBackend(store)
    times: list[float] = []
    while time.time() < start:  # all agents begin together
        time.sleep(0.001)
    while True:
        t0 = time.perf_counter()
        claim = backend.claim(sweep_id, "bench")
        if claim.status == "done":
            break
        if claim.status == "wait":
            time.sleep(0.01)
            continue
        assert claim.run is not None and claim.token is not None
        backend.log(claim.run.id, claim.token, 0, {"val/accuracy": claim.run.number / 1000})
        backend.finish(claim.run.id, claim.token, {"val/accuracy": claim.run.number / 1000})
        times.append(time.perf_counter() - t0)
    out.put(times)


def measure(method: str, runs: int, agents: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.db")
        with LocalBackend(store) as backend:
            sweep = backend.create_sweep(parse_spec(SPECS[method].format(runs=runs)), seed=0)
        ctx = mp.get_context("spawn")
        queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        start = time.time() + 2.0
        procs = [
            ctx.Process(target=agent, args=(store, sweep.id, start, queue)) for _ in range(agents)
        ]
        for p in procs:
            p.start()
        times = [t for _ in procs for t in queue.get()]
        wall = time.time() - start
        for p in procs:
            p.join()
    times.sort()
    return {
        "runs": len(times),
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": times[int(0.95 * (len(times) - 1))] * 1000,
        "runs_per_s": len(times) / wall,
    }


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
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--runs", type=int, default=512)
    parser.add_argument("--bayes-runs", type=int, default=64)
    args = parser.parse_args()
    print(f"{args.agents} agent processes, claim + 1 history step + finish per run\n")
    print("| method | runs | median ms | p95 ms | runs/s (all agents) | engine alone, median ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for method in ("grid", "random", "bayes"):
        n = args.bayes_runs if method == "bayes" else args.runs
        r = measure(method, n, args.agents)
        alone = "-" if method == "grid" else f"{engine_alone(method, n):.1f}"
        print(
            f"| {method} | {int(r['runs'])} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} "
            f"| {r['runs_per_s']:.0f} | {alone} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
