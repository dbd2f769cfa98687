"""Synthetic scene generation rate (clips written per second, WAV on disk included).

Usage: python benchmarks/synth.py [--clips-per-class 128] [--seconds 2 10] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from asc_sweep.data.synth import SynthSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips-per-class", type=int, default=128)
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--sample-rate", type=int, default=32000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(
        f"8 classes x {args.clips_per_class} clips at {args.sample_rate} Hz, {args.workers} worker processes\n"
    )
    print("| clip length | clips | seconds | clips/s | audio seconds per second |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for seconds in args.seconds:
        spec = SynthSpec(
            clips_per_class=args.clips_per_class, seconds=seconds, sample_rate=args.sample_rate
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate(Path(tmp), spec, workers=args.workers)
            wall = time.perf_counter() - t0
        n = 8 * args.clips_per_class
        print(f"| {seconds:g} s | {n} | {wall:.1f} | {n / wall:.0f} | {n * seconds / wall:.0f} |")


if __name__ == "__main__":
    main()
