"""What each architecture costs: parameters, MACs per clip, training clips/s, batch-1 latency
(median and p95) and batch-64 inference throughput, per sample rate, on one device.

Training is asc-sweep's step: log-mel front end (float32) or the raw waveform, then the model
with channels-last weights, AdamW, batches of 32 random 2 s crops; timed in float32 and in the
mixed precision runs use where the device has it (CUDA: bf16 where the GPU has it, else fp16
with loss scaling; CPUs with AMX or AVX512-BF16: bf16), side by side. Inference is whole 4 s clips at the
runs' precision. Figures are medians of timed repeats after warm-up, synchronised on GPUs;
inputs are random (cost does not depend on content).

Usage: python benchmarks/models.py [--device cpu|cuda] [--rates 16000 32000] [--arch NAME ...]
                                   [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import nn

from asc_sweep.data.features import LogMel
from asc_sweep.errors import DeviceUnavailable
from asc_sweep.models import ARCHITECTURES, ModelSpec, build_model, count_parameters
from asc_sweep.run.cost import count_macs, timed_calls
from asc_sweep.run.runtime import pick_device
from asc_sweep.run.train import make_optimizer, mixed_precision
from asc_sweep.sweep.config import RunConfig

N_CLASSES, N_MELS = 10, 64


class Net(nn.Module):
    """Front end (for log-mel models) and model, as a run chains them."""

    def __init__(self, arch: str, rate: int) -> None:
        super().__init__()
        self.model = build_model(arch, ModelSpec(N_CLASSES, N_MELS, rate))
        waveform = self.model.input_kind == "waveform"
        win, hop = round(rate * 0.04), round(rate * 0.02)
        self.front = None if waveform else LogMel(rate, N_MELS, win, hop)
        self.hop = 1 if waveform else hop

        self.amp: torch.dtype | None = None  # the model's autocast type

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        x = waves if self.front is None else self.front(waves)
        steps = torch.full((waves.shape[0],), x.shape[-1], device=waves.device)
        with torch.autocast(waves.device.type, self.amp, enabled=self.amp is not None):
            return self.model(x, steps)


def run_precision(device: torch.device) -> torch.dtype | None:
    """The autocast type a run uses on ``device`` with the default knobs (None: float32)."""
    return mixed_precision(RunConfig.from_dict({}), device)


def train_rate(net: Net, device: torch.device, rate: int, repeats: int) -> float:
    """Training clips/s at the net's precision."""
    crop = torch.randn(32, 2 * rate, device=device)
    labels = torch.randint(0, N_CLASSES, (32,), device=device)
    opt = make_optimizer(RunConfig.from_dict({"lr": 1e-3}), net)  # the runs' AdamW
    scaler = torch.amp.GradScaler("cuda", enabled=net.amp == torch.float16)

    def train_step() -> None:
        loss = nn.functional.cross_entropy(net(crop).float(), labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    net.train()
    return 32 / statistics.median(timed_calls(train_step, device, warmup=2, repeats=repeats))


def measure(arch: str, rate: int, device: torch.device, repeats: int) -> dict[str, float]:
    net = Net(arch, rate).to(device)
    net.to(memory_format=torch.channels_last)
    clip1 = torch.randn(1, 4 * rate, device=device)
    clips64 = torch.randn(64, 4 * rate, device=device)
    float32 = train_rate(net, device, rate, repeats)
    net.amp = run_precision(device)
    mixed = train_rate(net, device, rate, repeats) if net.amp is not None else float("nan")

    def infer(x: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return net(x)

        return run

    net.eval()
    macs = count_macs(net, infer(clip1))
    latency = sorted(timed_calls(infer(clip1), device, warmup=3, repeats=max(20, 4 * repeats)))
    batch = timed_calls(infer(clips64), device, warmup=2, repeats=repeats)
    return {
        "params": count_parameters(net.model),
        "macs": macs,
        "train_float32": float32,
        "train_mixed": mixed,
        "latency_ms": statistics.median(latency) * 1000,
        "p95_ms": latency[int(0.95 * (len(latency) - 1))] * 1000,
        "infer_clips_s": 64 / statistics.median(batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 32000])
    parser.add_argument("--arch", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        device = pick_device(args.device)  # cuda without a GPU: one line saying so
    except DeviceUnavailable as e:
        raise SystemExit(str(e)) from None
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    amp = run_precision(device)
    mixed = "-" if amp is None else str(amp).removeprefix("torch.")
    print(
        f"{where}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"runs' mixed precision here: {mixed}\n"
    )
    print(
        "| arch | rate | params | MMACs/4 s clip | train clips/s float32 (batch 32, 2 s) "
        f"| train clips/s {mixed} | {mixed} vs float32 "
        "| batch-1 latency median / p95 ms | inference clips/s (batch 64, 4 s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch in args.arch:
        for rate in args.rates:
            try:
                r = measure(arch, rate, device, args.repeats)
            except (ValueError, RuntimeError) as exc:  # e.g. a model that needs other settings
                why = " ".join(str(exc).split())[:60]
                print(f"| {arch} | {rate} | - | - | - | - | - | - | {why} |")
                continue
            mixed_s, ratio = "- | -", r["train_mixed"] / r["train_float32"]
            if amp is not None:
                mixed_s = f"{r['train_mixed']:,.0f} | {ratio:.2f}x"
            print(
                f"| {arch} | {rate} | {r['params']:,.0f} | {r['macs'] / 1e6:,.1f} "
                f"| {r['train_float32']:,.0f} | {mixed_s} "
                f"| {r['latency_ms']:.2f} / {r['p95_ms']:.2f} | {r['infer_clips_s']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
