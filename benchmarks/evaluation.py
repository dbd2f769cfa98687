"""Segment-voting evaluation: asc-sweep's ``segment_vote`` (a batch's segments planned on the
host, clips of few segments gathered into shared calls) against one network call a clip (the
plain loop over clips, which asc-sweep ran before).

The recipes that vote over segments (``piczak2015``: 0.95 s segments every 0.48 s;
``salamon2017``: 3 s segments every 23 ms) evaluate every epoch's validation part this way,
so the cost is paid ``epochs`` times a run. Each recipe's own network (untrained: cost does
not depend on weights) and front end at its own sample rate classify the test part of fold
1 of a synthetic set of 4 s clips (UrbanSound8K's longest); the batches are on the device
before timing. Figures are medians of interleaved passes; the largest difference between the
two modes' clip probabilities is printed too (they must agree).

Usage: python benchmarks/evaluation.py [--device cpu|cuda] [--clips-per-class 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.errors import DeviceUnavailable
from asc_sweep.run.runtime import pick_device
from asc_sweep.run.train import segment_vote, set_up
from asc_sweep.sweep.config import RunConfig

RECIPES = ("piczak2015", "salamon2017")
MODES = {"asc-sweep (batched)": {}, "a call a clip": {"alone": 1}}
Row = tuple[str, str, int, float, dict[str, float], float]


def measure(recipe: str, data: Path, device: torch.device, repeats: int) -> Row:
    """One recipe's row: arch, clips, segments a clip, median seconds a pass per mode, and the
    largest difference between the modes' clip probabilities."""
    config = RunConfig.from_dict({"recipe": recipe, "dataset": "synth", "data_root": str(data),
                                  "fold": 1, "device": device.type})  # fmt: skip
    torch.manual_seed(0)
    setup = set_up(config)
    setup.net.eval()
    config = setup.config
    assert config.eval_segment_seconds is not None
    size = round(config.eval_segment_seconds * config.rate)
    hop = round(config.eval_hop_seconds * config.rate)
    batches = [(w.to(device), n) for w, n, _ in setup.loaders["test"]]
    clips = sum(len(n) for _, n in batches)
    segments = sum(int(((n - size) // hop + 1).clamp(min=1).sum()) for _, n in batches)
    seconds: dict[str, list[float]] = {m: [] for m in MODES}
    probs: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for repeat in range(repeats + 1):  # the modes interleaved (a slow spell hits both)
            order = list(MODES.items())
            for mode, knobs in order if repeat % 2 else order[::-1]:  # neither always first
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                out = [segment_vote(setup.net, w, n, size, hop, config.voting, **knobs)
                       for w, n in batches]  # fmt: skip
                probs[mode] = torch.cat(out).cpu()
                if repeat:  # pass 0 warms up
                    seconds[mode].append(time.perf_counter() - t0)
    first, second = (probs[m] for m in MODES)
    medians = {m: statistics.median(s) for m, s in seconds.items()}
    print(f"{recipe}: {medians}", file=sys.stderr)
    return (
        recipe,
        config.arch,
        clips,
        segments / clips,
        medians,
        (first - second).abs().max().item(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clips-per-class", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        device = pick_device(args.device)  # cuda without a GPU: one line saying so
    except DeviceUnavailable as e:
        raise SystemExit(str(e)) from None
    work = Path(tempfile.mkdtemp(prefix="asc-eval-"))
    os.environ["ASC_SWEEP_CACHE"] = str(work / "cache")
    try:
        spec = SynthSpec(classes=8, clips_per_class=args.clips_per_class, seconds=4.0,
                         sample_rate=44100)  # fmt: skip
        generate(work / "synth", spec, workers=os.cpu_count() or 1)
        rows = [measure(r, work / "synth", device, args.repeats) for r in RECIPES]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"\n{name}{threads}; test part of fold 1 (4 s clips); medians of {args.repeats} "
          "interleaved passes after one to warm up\n")  # fmt: skip
    batched, plain = MODES
    print(f"| recipe | arch | clips | segments a clip | {batched} | {plain} | speed-up | "
          "largest probability difference |")  # fmt: skip
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for recipe, arch, clips, per_clip, medians, diff in rows:
        ms = {m: medians[m] / clips * 1000 for m in MODES}
        print(f"| {recipe} | {arch} | {clips} | {per_clip:.0f} | {ms[batched]:.2f} ms/clip | "
              f"{ms[plain]:.2f} ms/clip | {ms[plain] / ms[batched]:.1f}x | {diff:.1e} |")  # fmt: skip


if __name__ == "__main__":
    main()
