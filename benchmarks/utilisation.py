"""How busy a sweep keeps one GPU: the same sweep run with 1, 2 and 4 agents per GPU.

Synthetic scenes (8 classes, 4 s clips at 32 kHz) are generated and cached once (in a folder of
the script's own, so every setting finds the cache warm); each setting registers the same grid
(``--runs`` runs of ``--arch`` at 32 kHz for ``--epochs`` epochs: more than any GPU finishes
in the time given) in a fresh store and runs it with ``asc-sweep launch --agents-per-gpu K
--gpus 0`` for ``--seconds`` (then SIGTERM: the agents put their runs back and stop), while
the GPU's utilisation is sampled every 0.2 s (NVML, else ``nvidia-smi``). So the step takes
the same time on any GPU, and a fast one cannot finish the sweep during its start-up.
Reported: runs finished, runs per hour, and mean utilisation from the GPU's first kernel to
the stop (the sweep's steady state) and over the whole window (agent start-up included, as a
user pays it).

Usage: python benchmarks/utilisation.py [--agents-per-gpu 1 2 4] [--arch cnn10] [--seconds 50]
                                        [--runs 64] [--epochs 10] [--clips-per-class 120]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from asc_sweep.backends import LocalBackend
from asc_sweep.data import load_dataset
from asc_sweep.data.cache import open_cache
from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.sweep.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]


class Sampler(threading.Thread):
    """Samples GPU 0's utilisation (percent) every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval, self._halt = interval, threading.Event()
        self.samples: list[float] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self.read = lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # no NVML bindings: ask nvidia-smi
            self.read = self._smi

    @staticmethod
    def _smi() -> float:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i",
             "0"], capture_output=True, text=True, check=True,
        )  # fmt: skip
        return float(out.stdout.strip().splitlines()[0])

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.read())
            self._halt.wait(self.interval)

    def stop(self) -> tuple[float, float]:
        """Mean utilisation from the first busy sample on, and over every sample."""
        self._halt.set()
        self.join()
        first = next((i for i, v in enumerate(self.samples) if v > 0), len(self.samples))
        steady = self.samples[first:]
        return (
            statistics.fmean(steady) if steady else 0.0,
            statistics.fmean(self.samples) if self.samples else float("nan"),
        )


def spec(data: Path, arch: str, runs: int, epochs: int, device: str) -> str:
    seeds = ", ".join(str(i) for i in range(1, max(1, runs // 4) + 1))
    return (
        "method: grid\nparameters:\n  dataset: {value: synth}\n"
        f"  data_root: {{value: {data}}}\n  arch: {{value: {arch}}}\n"
        f"  sample_rate: {{value: 32000}}\n  device: {{value: {device}}}\n"
        f"  epochs: {{value: {epochs}}}\n  fold: {{values: [1, 2, 3, 4]}}\n"
        f"  seed: {{values: [{seeds}]}}\n"
    )


def measure(tmp: Path, data: Path, per_gpu: int, args: argparse.Namespace) -> dict[str, float]:
    """The sweep with ``per_gpu`` agents on GPU 0 for ``args.seconds`` (or until done)."""
    store = tmp / f"k{per_gpu}.db"
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec(spec(data, args.arch, args.runs, args.epochs, args.device))
        )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    cmd = [sys.executable, "-m", "asc_sweep", "launch", sweep.id, "--store", str(store),
           "--agents-per-gpu", str(per_gpu), "--gpus", "0", "--tracking", "off"]  # fmt: skip
    sampler = Sampler() if args.device == "cuda" else None
    if sampler is not None:
        sampler.start()
    log = tmp / f"k{per_gpu}.log"  # (a file: a pipe left unread could fill and stall it)
    with log.open("w") as err:
        t0 = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp)
        try:
            proc.wait(timeout=args.seconds)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the agents put their runs back and stop
        wall = time.time() - t0
        steady, whole = sampler.stop() if sampler is not None else (float("nan"),) * 2
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    # Done, or stopped by the SIGTERM above (143; -15 where it came as the launcher was
    # leaving a finished sweep, its own handler already gone).
    if code not in (0, 143, -signal.SIGTERM):
        tail = log.read_text()[-2000:]
        raise SystemExit(f"launch with {per_gpu} agents per GPU failed ({code}):\n{tail}")
    with LocalBackend(store) as backend:
        done = backend.counts(sweep.id)["finished"]
    return {"runs": done, "wall": wall, "runs_per_hour": done / wall * 3600, "steady": steady,
            "whole": whole}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents-per-gpu", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--arch", default="cnn10")
    parser.add_argument("--seconds", type=float, default=50.0, help="per setting")
    parser.add_argument("--runs", type=int, default=64, help="the grid (4 folds x runs/4 seeds)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--clips-per-class", type=int, default=120)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run of the script alone")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU on this host: the utilisation table needs one")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        data = tmp / "synth"
        generate(data, SynthSpec(clips_per_class=args.clips_per_class, seconds=4.0))
        # An audio cache of its own (removed with the folder), built before any setting is
        # timed, so that each finds it warm as on a host that ran a sweep before.
        os.environ["ASC_SWEEP_CACHE"] = str(tmp / "cache")
        open_cache(load_dataset("synth", data), 32000)
        where = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
        print(f"{where}: {args.arch} at 32 kHz, runs of {args.epochs} epochs on "
              f"{8 * args.clips_per_class} 4-s clips, {args.seconds:g} s per setting\n")  # fmt: skip
        print("| agents per GPU | runs finished | wall s | runs/hour | mean GPU utilisation %, "
              "from the first kernel | the same, start-up included |")  # fmt: skip
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for k in args.agents_per_gpu:
            r = measure(tmp, data, k, args)
            print(
                f"| {k} | {r['runs']:.0f} | {r['wall']:.0f} | {r['runs_per_hour']:.0f} "
                f"| {r['steady']:.0f} | {r['whole']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
