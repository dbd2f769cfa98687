"""Scaling of the demo sweep on one host: agents x threads, and where the time goes.

The demo's 32 runs (`sweeps/demo.yaml`: 2 sample rates x 2 inits x 2 architectures x 4 folds,
16 epochs each) on its synthetic scenes, run by `asc-sweep launch` as `make demo` runs them
(W&B offline), once per layout of the host's cores: one agent with every core, one agent per
core, and, with `--float32`, the runs' precision turned off (`amp: false`) for the agent-per-core
layout (the models table compares the precisions per architecture too). Each
sweep is timed end to end (agent start-up included); the runs' stored timings split the agents'
busy time into data preparation, training epochs, validation and test evaluation, and the rest
of a run (set-up, W&B, checkpoints, the cost probe); what is left of agents x wall time is
start-up and waiting (the last runs of a sweep leave an agent idle).

Usage: python benchmarks/scaling.py [--quick | --default-only] [--float32] [--repeats 1] [--cpus N]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from asc_sweep.backends import LocalBackend
from asc_sweep.cli.demo import DEMO_SPEC, DEMO_SYNTH, quick_spec
from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.sweep.spec import SweepSpec

QUICK_SYNTH = SynthSpec(classes=8, clips_per_class=16, seconds=1.0, sample_rate=16000)


def layouts(cpus: int, float32: bool) -> list[tuple[str, int, int, bool]]:
    """(name, agents, threads per agent, amp): every core in one agent, an agent per core,
    then, with ``float32``, the agent-per-core layout in float32."""
    rows = [(f"1 agent x {cpus} threads", 1, cpus, True)]
    if cpus > 1:
        rows.append((f"{cpus} agents x 1 thread", cpus, 1, True))
    if float32:
        name, agents, threads, _ = rows[-1]
        rows.append((f"{name}, float32 (amp: false)", agents, threads, False))
    return rows


def run_sweep(spec: dict[str, Any], work: Path, agents: int, threads: int) -> dict[str, float]:
    store = work / f"sweeps-{time.monotonic_ns()}.db"
    with LocalBackend(store) as backend:
        sweep_id = backend.create_sweep(SweepSpec(spec, source="scaling")).id
    # The audio cache in the work folder: shared by the layouts (the first decodes), removed
    # with it (the user's own cache is left alone).
    env = dict(os.environ, WANDB_DIR=str(work), WANDB_SILENT="true",
               ASC_SWEEP_CACHE=str(work / "cache"))  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "asc_sweep", "launch", sweep_id, "--store", str(store),
         "--agents", str(agents), "--threads", str(threads), "--tracking", "offline"],
        env=env, cwd=work, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    wall = time.perf_counter() - start
    with LocalBackend(store) as backend:
        runs = backend.runs(sweep_id)
        epochs = {r.id: backend.history(r.id) for r in runs}
    assert all(r.state == "finished" for r in runs), [r.state for r in runs]
    busy = sum((r.ended_at or 0) - (r.started_at or 0) for r in runs)
    summaries = [r.summary or {} for r in runs]
    data = sum(s.get("time/data_seconds", 0.0) for s in summaries)
    train = sum(s.get("time/train_seconds", 0.0) for s in summaries)
    test = sum(s.get("time/eval_seconds", 0.0) for s in summaries)
    val = sum(h.get("time/val_seconds", 0.0) for rows in epochs.values() for h in rows)
    return {"wall": wall, "runs": len(runs), "busy": busy, "data": data, "train": train,
            "val": val, "test": test, "agents": agents}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: the quick demo's fold 1 (8 runs, 3 epochs), default layout only",
    )
    parser.add_argument(
        "--default-only",
        action="store_true",
        help="only launch's default layout (an agent per core): a before/after check",
    )
    parser.add_argument(
        "--float32",
        action="store_true",
        help="also the agent-per-core layout with amp: false (2 more minutes on 2 cores)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="asc-scaling-"))
    try:
        data = work / "synth"
        generate(data, QUICK_SYNTH if args.quick else DEMO_SYNTH)
        base = quick_spec(DEMO_SPEC) if args.quick else copy.deepcopy(DEMO_SPEC)
        if args.quick:
            base["parameters"]["fold"] = {"value": 1}
        base["parameters"]["data_root"] = {"value": str(data)}
        results: dict[str, list[dict[str, float]]] = {}
        chosen = layouts(args.cpus, args.float32)
        if args.quick or args.default_only:
            chosen = [[row for row in chosen if row[3]][-1]]  # launch's default: agent per core
        for repeat in range(args.repeats):
            for name, agents, threads, amp in chosen:
                spec = copy.deepcopy(base)
                spec["parameters"]["amp"] = {"value": amp}
                r = run_sweep(spec, work, agents, threads)
                results.setdefault(name, []).append(r)
                print(f"repeat {repeat + 1}: {name}: {r['wall']:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    runs = int(next(iter(results.values()))[0]["runs"])
    print(f"\nthe {'quick ' if args.quick else ''}demo sweep, {runs} runs, on {args.cpus} CPUs; "
          f"median of {args.repeats}\n")  # fmt: skip
    print("| layout | sweep wall time | runs/hour | vs 1 agent | per run: data | training "
          "epochs | validation | test | rest of the run | start-up and idle |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    first = None
    for name, rows in results.items():
        pick = sorted(rows, key=lambda r: r["wall"])[len(rows) // 2]
        wall = statistics.median(r["wall"] for r in rows)
        first = first or wall
        n = pick["runs"]
        rest = pick["busy"] - pick["data"] - pick["train"] - pick["val"] - pick["test"]
        idle = pick["agents"] * pick["wall"] - pick["busy"]
        print(f"| {name} | {wall:.1f} s | {n / wall * 3600:,.0f} | {first / wall:.2f}x "
              f"| {pick['data'] / n:.2f} s | {pick['train'] / n:.2f} s | {pick['val'] / n:.2f} s "
              f"| {pick['test'] / n:.2f} s | {rest / n:.2f} s | {idle / pick['agents']:.1f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
