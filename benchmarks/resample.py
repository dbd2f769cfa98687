"""Resampling a clip at an odd sample rate: asc-sweep's bounded ratio against the exact one.

torchaudio's ``resample`` builds ``new / gcd`` filters of about ``orig / gcd`` taps each: for
the rates recorders use the terms are small (44.1 kHz to 16 kHz: 160 and 441), but a clip whose
header says 44,101 Hz makes it 16,000 filters of 44,101 taps. asc-sweep resamples such a clip
through the nearest ratio whose terms are at most ``MAX_RATIO_TERM``
(``asc_sweep.data.audio.resample``); the alternative is calling torchaudio with the exact
rates, as a script of one's own would. Each way runs in a fresh process (torch imported and
warmed on a 1 s clip first); the table gives the median seconds of ``--repeats`` calls, how far
the process's peak resident memory rose above the warmed process's, the reduced terms of the
ratio used (original rate's, new rate's), how far that ratio is from the exact one (a time
scale error: the clip comes out that many parts per million longer or shorter, and its pitch
moves as much), and the outputs' lengths.

Usage: python benchmarks/resample.py [--seconds 4] [--rates 44100 44056 22222 44101] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, math, resource, sys, time
import numpy as np, torch, torchaudio.functional as AF
from asc_sweep.data.audio import _ratio_terms, resample
orig, new, seconds, repeats, how, out = sys.argv[1:]
orig, new, seconds, repeats = int(orig), int(new), float(seconds), int(repeats)
torch.set_num_threads(1)
t = np.arange(int(orig * seconds)) / orig
wave = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32)
exact = lambda w: AF.resample(torch.from_numpy(w), orig, new).numpy()
call = exact if how == "exact" else (lambda w: resample(w, orig, new))
AF.resample(torch.zeros(44100), 44100, 16000)  # torch's own start-up, outside the figures
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(repeats):
    start = time.perf_counter()
    result = call(wave)
    times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(out, result)
o, n = _ratio_terms(orig, new)
g = math.gcd(o, n)
print(json.dumps({"seconds": times, "extra_mb": (peak - before) / 1024, "terms": [o // g, n // g]}))
"""


def run(orig: int, new: int, seconds: float, repeats: int, how: str, out: Path) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(orig),
            str(new),
            str(seconds),
            str(repeats),
            how,
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[44100, 44056, 22222, 44101])
    parser.add_argument("--to", type=int, default=16000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-exact",
        action="store_true",
        help="skip the exact calls (44101 Hz: about 20 s and 12 GB each)",
    )
    args = parser.parse_args()
    import numpy as np

    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"a {args.seconds:g} s clip to {args.to} Hz, median of {args.repeats}\n")  # fmt: skip
    print("| clip rate | terms used | ratio error, ppm | asc-sweep s | asc-sweep MB | exact s "
          "| exact MB | samples (asc-sweep, exact) |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory(prefix="asc-resample-") as work:
        for rate in args.rates:
            ours = run(rate, args.to, args.seconds, args.repeats, "ours", Path(work, "ours.npy"))
            o, n = ours["terms"]
            error = abs(n / o * rate / args.to - 1) * 1e6
            row = [f"{rate:,}", f"{o} / {n}", f"{error:.2f}",
                   f"{statistics.median(ours['seconds']):.3f}", f"{ours['extra_mb']:.0f}"]  # fmt: skip
            length = len(np.load(Path(work, "ours.npy")))
            if args.no_exact:
                row += ["-", "-", f"{length:,}"]
            else:
                exact = run(
                    rate, args.to, args.seconds, args.repeats, "exact", Path(work, "exact.npy")
                )
                row += [f"{statistics.median(exact['seconds']):.3f}", f"{exact['extra_mb']:.0f}",
                        f"{length:,}, {len(np.load(Path(work, 'exact.npy'))):,}"]  # fmt: skip
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
