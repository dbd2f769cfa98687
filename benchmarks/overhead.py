"""Per-run overhead: asc-sweep's agent (one process, runs in-process, one shared audio cache)
against one fresh process per run, as `wandb agent` with a `program`, and the `wandb`
backend's command mode, run them.

Three ways to run the same 8 short runs (dcase2018_cnn, 2 epochs, 4 folds x 2 seeds of a small
synthetic set), each timed end to end, median of repeats:

* ``agent``: ``asc-sweep agent`` over a local sweep: one interpreter, torch imported once,
  the dataset decoded once into the shared cache;
* ``process, shared cache``: ``asc-sweep train`` per run, one after the other, sharing the
  host's cache (what asc-sweep's `wandb` backend pays: a process per run, data decoded once);
* ``process, own data``: ``asc-sweep train`` per run with an empty cache each (what a script
  that decodes its own data pays under `wandb agent`).

Also the cost of starting one process: importing what a run needs (torch, torchaudio, the
trainer; wandb where tracking is on). Caches are emptied before each repeat, so every mode
decodes the data at least once.

Usage: python benchmarks/overhead.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from asc_sweep.backends import LocalBackend
from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.sweep.spec import parse_spec

KNOBS = {"dataset": "synth", "arch": "dcase2018_cnn", "epochs": 2, "n_mels": 40,
         "sample_rate": 16000, "crop_seconds": 1.0, "batch_size": 16, "device": "cpu",
         "recipe": "modern"}  # fmt: skip
GRID = [{"fold": f, "seed": s} for f in (1, 2, 3, 4) for s in (0, 1)]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def run_agent(data: Path, work: Path, env: dict[str, str], threads: int) -> float:
    params = {k: {"value": v} for k, v in {**KNOBS, "data_root": str(data)}.items()}
    folds = sorted({cell["fold"] for cell in GRID})
    params["fold"], params["seed"] = {"values": folds}, {"values": [0, 1]}
    spec = {"method": "grid", "metric": {"name": "val/accuracy", "goal": "maximize"},
            "parameters": params}  # fmt: skip
    store = work / f"sweeps-{time.monotonic_ns()}.db"
    with LocalBackend(store) as backend:
        sweep_id = backend.create_sweep(parse_spec(yaml.safe_dump(spec))).id
    return timed([sys.executable, "-m", "asc_sweep", "agent", sweep_id, "--store", str(store),
                  "--tracking", "off", "--threads", str(threads), "--poll-seconds", "0.1"], env)  # fmt: skip


def run_processes(data: Path, env: dict[str, str], cache: Path, own_data: bool) -> float:
    total = 0.0
    for i, cell in enumerate(GRID):
        knobs = {**KNOBS, "data_root": str(data), **cell}
        sets = [a for k, v in knobs.items() for a in ("--set", f"{k}={v}")]
        run_env = dict(env)
        if own_data:
            run_env["ASC_SWEEP_CACHE"] = str(cache / f"own-{i}")
        total += timed(
            [sys.executable, "-m", "asc_sweep", "train", "--tracking", "off", *sets], run_env
        )
    return total


def import_seconds(env: dict[str, str], modules: str) -> float:
    return timed([sys.executable, "-c", f"import {modules}"], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument(
        "--folds", type=int, default=4, choices=range(1, 5), help="runs: 2 seeds a fold"
    )
    args = parser.parse_args()
    GRID[:] = [cell for cell in GRID if cell["fold"] <= args.folds]
    work = Path(tempfile.mkdtemp(prefix="asc-overhead-"))
    try:
        data = work / "synth"
        generate(data, SynthSpec(classes=4, clips_per_class=16, seconds=2.0, sample_rate=16000),
                 workers=1)  # fmt: skip
        cache = work / "cache"
        env = dict(os.environ, ASC_SWEEP_CACHE=str(cache), OMP_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))  # fmt: skip
        rows: dict[str, list[float]] = {"agent": [], "process, shared cache": [],
                                        "process, own data": []}  # fmt: skip
        imports: dict[str, list[float]] = {"torch, torchaudio, trainer": [], "+ wandb": []}
        for repeat in range(args.repeats):
            for name in rows:
                shutil.rmtree(cache, ignore_errors=True)
                if name == "agent":
                    rows[name].append(run_agent(data, work, env, args.threads))
                else:
                    rows[name].append(run_processes(data, env, cache, name.endswith("own data")))
                print(f"repeat {repeat + 1}: {name}: {rows[name][-1]:.1f} s", file=sys.stderr)
            imports["torch, torchaudio, trainer"].append(
                import_seconds(env, "torch, torchaudio, asc_sweep.run.train")
            )
            imports["+ wandb"].append(
                import_seconds(env, "torch, torchaudio, asc_sweep.run.train, wandb")
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(GRID)
    base = statistics.median(rows["agent"])
    print(f"\n{n} runs of {KNOBS['arch']}, {KNOBS['epochs']} epochs, {len(GRID) // 2} folds x 2 "
          f"seeds, {args.threads} thread(s) per process; median of {args.repeats}\n")  # fmt: skip
    print("| how the runs are run | sweep wall time | per run | vs the agent | overhead share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, times in rows.items():
        t = statistics.median(times)
        share = (t - base) / t
        print(f"| {name} | {t:.1f} s | {t / n:.2f} s | {t / base:.2f}x | {share:.0%} |")
    print("\n| one process imports | seconds (median) |\n| --- | ---: |")
    for name, times in imports.items():
        print(f"| {name} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
