"""Time to report on a 320-run sweep (5 sample rates x 4 inits x 4 architectures x 4 folds),
each run with 40 epochs of history, read from a real local store: what `asc-sweep report` does.

Usage: python benchmarks/report.py [--epochs 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from asc_sweep.backends import LocalBackend
from asc_sweep.backends.local import LocalController
from asc_sweep.report import write_report
from asc_sweep.sweep.spec import parse_spec

SPEC = """
method: grid
parameters:
  sample_rate: {{values: [8000, 16000, 22050, 32000, 44100]}}
  init: {{values: [default, he_normal, he_uniform, xavier_uniform]}}
  arch: {{values: [dcase2018_cnn, sb_cnn, cnn6, cp_resnet]}}
  fold: {{values: [1, 2, 3, 4]}}
  seed: {{values: {seeds}}}
"""


def fill(backend: LocalBackend, epochs: int, seeds: int) -> str:
    rng = np.random.default_rng(0)
    sweep = backend.create_sweep(parse_spec(SPEC.format(seeds=list(range(seeds)))))
    while (claim := backend.claim(sweep.id, "bench")).status == "claimed":
        assert claim.run and claim.token
        for e in range(epochs):
            backend.log(
                claim.run.id,
                claim.token,
                e,
                {"epoch": e + 1, "val/accuracy": float(rng.uniform(0.4, 0.9))},
            )
        backend.finish(claim.run.id, claim.token, {
            "test/accuracy": float(rng.uniform(0.6, 0.9)), "test/macro_f1": float(rng.uniform(0.5, 0.9)),
            "test/log_loss": float(rng.uniform(0.3, 1.2)), "epochs_to_90": int(rng.integers(3, 20)),
            "time/inference_ms_per_clip": float(rng.uniform(1, 20)), "parameters": int(rng.integers(1e5, 5e6))})  # fmt: skip
    return sweep.id


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1, help="320 runs a seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalBackend(Path(tmp) / "s.db") as backend:
        sweep_id = fill(backend, args.epochs, args.seeds)
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            records = LocalController(backend, backend.get_sweep(sweep_id)).records()
            t1 = time.perf_counter()
            write_report(records, Path(tmp) / f"r{i}", sweep_id=sweep_id)
            times.append((t1 - t0, time.perf_counter() - t1))
    print(f"{len(records)} runs x {args.epochs} epochs of history, {args.repeats} repeats\n")
    print("| step | median s |")
    print("| --- | ---: |")
    for name, values in (("read runs and history from the store", [a for a, _ in times]),
                         ("analyse and write every file and plot", [b for _, b in times]),
                         ("total", [a + b for a, b in times])):  # fmt: skip
        print(f"| {name} | {sorted(values)[len(values) // 2]:.2f} |")


if __name__ == "__main__":
    main()
