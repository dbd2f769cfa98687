"""What padding does to runs on clips of mixed lengths: test accuracy, and how much of it
depends on the clips a test batch holds, for one or more source trees of asc-sweep.

Synthetic field scenes (8 classes, 4 s clips at 16 kHz, location-disjoint folds) with
``--short-share`` of the clips cut to excerpts of 0.1 to 4 s, as UrbanSound8K's are, are
generated once by this tree. Each source tree (default: this one; an older revision:
``git archive REV | tar -x -C DIR``, with this tree's compiled kernel copied beside its
``features.py`` or without it) trains ``--arch`` under the default recipe on every fold for
``--epochs`` epochs (seed 0, in float32 on any host since bf16 kernels round by a batch's
shape, one thread a run, two runs at a time), then evaluates the
fold's test part twice with the same weights: in the run's own batches (length-bucketed,
each padded to its longest clip) and one clip at a time. Where a clip is classified as it is
alone, the two agree to the last digit.

Usage: python benchmarks/padding.py [--src DIR ...] [--arch dcase2018_cnn] [--epochs 12]
                                    [--short-share 0.3] [--folds 1 2 3 4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(src: str, arch: str, fold: int, data: str, epochs: int) -> None:
    """One run from the source tree ``src``: train, then evaluate batched and clip by clip."""
    sys.path.insert(0, src)
    import torch

    import asc_sweep

    assert asc_sweep.__file__ and asc_sweep.__file__.startswith(src), asc_sweep.__file__
    torch.set_num_threads(1)
    from asc_sweep.run import train
    from asc_sweep.run.context import StopFlag
    from asc_sweep.run.runtime import seed_everything
    from asc_sweep.sweep.config import RunConfig

    config = RunConfig.from_dict({"dataset": "synth", "data_root": data, "arch": arch,
                                  "fold": fold, "epochs": epochs, "device": "cpu",
                                  "sample_rate": 16000, "seed": 0,
                                  "amp": False})  # fmt: skip
    seed_everything(0)
    setup = train.set_up(config)
    state = train.initial_state(setup.config, setup)
    if setup.net.front is not None:  # a log-mel model
        batches = ((w, n) for w, n, _ in setup.loaders["train"])
        train.fit_normalization(setup.net.front, batches)
    stop = StopFlag()
    for _ in range(epochs):
        train.train_epoch(setup, state, stop)
        state.epoch += 1
    batched = train.evaluate(setup, "test")
    setup.loaders["test"] = train.make_loader(
        setup.data, setup.data.test, batch_size=1, crop_samples=None, shuffle=False, seed=0
    )
    alone = train.evaluate(setup, "test")
    print(json.dumps({"batched": batched["accuracy"], "alone": alone["accuracy"],
                      "batched_ll": batched["log_loss"], "alone_ll": alone["log_loss"]}))  # fmt: skip


def run(src: Path, arch: str, fold: int, data: Path, epochs: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", str(src), arch, str(fold), str(data), str(epochs)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if out.returncode:
        sys.exit(f"{src} fold {fold} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, action="append", help="source tree (repeatable)")
    parser.add_argument("--arch", default="dcase2018_cnn")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--short-share", type=float, default=0.3)
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--clips-per-class", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="toy sizes: proves the script runs")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.folds, args.clips_per_class = 1, [1], 8
    sources = [s.resolve() for s in (args.src or [ROOT])]

    sys.path.insert(0, str(ROOT))
    from asc_sweep.data.synth import SynthSpec, clip_count, generate

    spec = SynthSpec(classes=8, clips_per_class=args.clips_per_class, seconds=4.0,
                     sample_rate=16000, realism="field", short_share=args.short_share)  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="asc-sweep-padding-"))
    try:
        os.environ["ASC_SWEEP_CACHE"] = str(work / "cache")
        generate(work / "data", spec)
        jobs = [(src, fold) for src in sources for fold in args.folds]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda j: run(j[0], args.arch, j[1], work / "data",
                                                  args.epochs), jobs))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_src: dict[Path, list[dict[str, float]]] = {}
    for (src, _), result in zip(jobs, results, strict=True):
        by_src.setdefault(src, []).append(result)

    epochs = f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}"
    print(f"\n{args.arch}, default recipe, {epochs}, seed 0; synthetic field scenes, "
          f"{clip_count(spec)} clips of 4 s at 16 kHz, {args.short_share:.0%} cut to 0.1-4 s; "
          f"test accuracy per fold in the run's batches / one clip at a time\n")  # fmt: skip
    folds = " | ".join(f"fold {f}" for f in args.folds)
    print(f"| source | {folds} | mean (batched) | largest change of accuracy, of log-loss |")
    print("| --- |" + " ---: |" * (len(args.folds) + 2))
    for src, rows in by_src.items():
        cells = " | ".join(f"{r['batched']:.3f} / {r['alone']:.3f}" for r in rows)
        mean = statistics.fmean(r["batched"] for r in rows)
        acc = max(abs(r["batched"] - r["alone"]) for r in rows)
        loss = max(abs(r["batched_ll"] - r["alone_ll"]) for r in rows)
        print(f"| {src.name} | {cells} | {mean:.3f} | {acc:.3f}, {loss:.1e} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        source, arch, fold, data, epochs = sys.argv[2:7]
        worker(source, arch, int(fold), data, int(epochs))
    else:
        main()
