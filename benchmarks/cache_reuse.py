"""Cache reuse: decode and resample passes, and data-preparation time, of a 5 sample rates x
2 inits x 2 architectures x 4 folds grid (80 runs), with asc-sweep's shared audio cache and
with none (every run decodes and resamples the dataset itself, as a script run per
configuration does).

Each run's data preparation is asc-sweep's own (``prepare_fold``: read the metadata, split the
fold, open or build the cache); training is left out, since it is the same either way. Passes
are counted by the decoder itself (``asc_sweep.data.audio.DECODES``, one per clip decoded).

Usage: python benchmarks/cache_reuse.py [--clips-per-class 20] [--seconds 4]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from asc_sweep.data.audio import DECODES
from asc_sweep.data.prepare import prepare_fold
from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.sweep.config import RunConfig

RATES = (8000, 16000, 22050, 32000, 44100)
INITS = ("default", "he_normal")
ARCHS = ("dcase2018_cnn", "cnn6")
FOLDS = (1, 2, 3, 4)


def prepare_all(data: Path, cache: Path, shared: bool) -> tuple[float, int]:
    """Seconds and clip decodes to prepare every run of the grid."""
    decodes_before, start = DECODES.value, time.perf_counter()
    grid = list(itertools.product(RATES, INITS, ARCHS, FOLDS))
    for i, (rate, init, arch, fold) in enumerate(grid):
        os.environ["ASC_SWEEP_CACHE"] = str(cache if shared else cache / f"run-{i}")
        config = RunConfig.from_dict({"dataset": "synth", "data_root": str(data), "sample_rate": rate,
                                      "init": init, "arch": arch, "fold": fold})  # fmt: skip
        prepare_fold(config)
        if not shared:  # a run without the cache keeps nothing for the next one
            shutil.rmtree(cache / f"run-{i}", ignore_errors=True)
    return time.perf_counter() - start, DECODES.value - decodes_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="asc-cache-reuse-"))
    try:
        data = work / "synth"
        spec = SynthSpec(classes=8, clips_per_class=args.clips_per_class, seconds=args.seconds,
                         sample_rate=44100)  # fmt: skip
        generate(data, spec, workers=1)
        clips = sum(1 for _ in (data / "audio").rglob("*.wav"))
        rows = {}
        for shared in (True, False):
            seconds, decodes = prepare_all(data, work / ("shared" if shared else "none"), shared)
            rows["shared cache" if shared else "no cache"] = (seconds, decodes)
            print(f"{'shared' if shared else 'no'} cache: {seconds:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    runs = len(RATES) * len(INITS) * len(ARCHS) * len(FOLDS)
    print(f"\n{runs} runs (5 rates x 2 inits x 2 archs x 4 folds) over {clips} clips of "
          f"{args.seconds:g} s at 44.1 kHz; data preparation only\n")  # fmt: skip
    print("| | decode + resample passes | clips decoded | data preparation | per run |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (seconds, decodes) in rows.items():
        print(
            f"| {name} | {decodes / clips:.0f} | {decodes} | {seconds:.1f} s | {seconds / runs:.2f} s |"
        )
    ratio = rows["no cache"][0] / rows["shared cache"][0]
    print(f"\nthe shared cache prepares the grid's data {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
