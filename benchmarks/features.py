"""Log-mel throughput: batched torchaudio (asc-sweep's LogMel) against per-clip librosa.

The same clips, the same settings (window, hop, mel bands, slaney scale and norm, dB), the
same output. librosa is what a user would otherwise call in a data loader, clip by clip;
LogMel runs whole batches on the run's device. Two more CPU rows put the figures in context:
LogMel with ``banded=False`` (torchaudio's MelSpectrogram on whole batches, the path a GPU
takes) on the same batches, and the FFT of the windowed frames alone (rfft over every frame, nothing before or after it), which
no STFT-based front end can beat on this CPU. Throughput is clips per second after one
warm-up pass; the GPU figure (when a GPU is present) includes host-to-device copies.

Usage: python benchmarks/features.py [--clips 256] [--seconds 10] [--sample-rate 32000] [--batch 64]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import librosa
import numpy as np
import torch

from asc_sweep.data.features import LogMel


def bench_librosa(clips: np.ndarray, sr: int, win: int, hop: int, n_mels: int, n_fft: int) -> float:
    def run() -> None:
        for x in clips:
            mel = librosa.feature.melspectrogram(
                y=x,
                sr=sr,
                n_fft=n_fft,
                hop_length=hop,
                win_length=win,
                n_mels=n_mels,
                norm="slaney",
                htk=False,
            )
            librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)

    run()  # warm-up (numba, caches)
    t0 = time.perf_counter()
    run()
    return len(clips) / (time.perf_counter() - t0)


def bench_torch(
    clips: np.ndarray, step: Callable[[torch.Tensor], object], batch: int, device: str
) -> float:
    data = torch.from_numpy(clips)

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(data), batch):
                step(data[start : start + batch].to(device, non_blocking=True))
        if device == "cuda":
            torch.cuda.synchronize()

    run()
    t0 = time.perf_counter()
    run()
    return len(clips) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--mels", type=int, default=128)
    args = parser.parse_args()
    sr = args.sample_rate
    win, hop = round(0.025 * sr), round(0.010 * sr)
    front = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop)
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((args.clips, int(args.seconds * sr))) * 0.1).astype(np.float32)
    print(
        f"{args.clips} clips x {args.seconds:g} s at {sr} Hz, n_fft {front.n_fft}, hop {hop}, "
        f"{args.mels} mels; torch {torch.__version__}, {torch.get_num_threads()} threads, librosa {librosa.__version__}\n"
    )
    lib = bench_librosa(clips, sr, win, hop, args.mels, front.n_fft)
    rows = [("librosa, per clip (CPU)", lib)]

    dense = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop, banded=False)

    window = torch.hann_window(front.n_fft)
    frames_per_clip = (clips.shape[1] - front.n_fft) // hop + 1  # no centring padding
    frame_buf = torch.empty(frames_per_clip, front.n_fft)

    def fft_alone(x: torch.Tensor) -> object:
        # One clip at a time, windowed into a reused buffer, the FFT into its own output
        # (rfft with out= computes into a temporary and copies): the fastest arrangement measured.
        for clip in x.unfold(-1, front.n_fft, hop):
            torch.mul(clip, window, out=frame_buf)
            torch.fft.rfft(frame_buf)
        return None

    b = args.batch
    rows.append(
        (
            f"LogMel dense: torchaudio's transforms (the GPU path), batches of {b} (CPU)",
            bench_torch(clips, dense.log_mel, b, "cpu"),
        )
    )
    rows.append((f"LogMel, batches of {b} (CPU)", bench_torch(clips, front.log_mel, b, "cpu")))
    rows.append(("bound: the frames' FFT alone (CPU)", bench_torch(clips, fft_alone, b, "cpu")))
    if torch.cuda.is_available():
        gpu = front.to("cuda")
        rows.append(
            (
                f"LogMel, batches of {b} ({torch.cuda.get_device_name()})",
                bench_torch(clips, gpu.log_mel, b, "cuda"),
            )
        )
    bound = next(rate for name, rate in rows if name.startswith("bound"))
    print("| front end | clips/s | vs librosa | share of the CPU's FFT bound |")
    print("| --- | ---: | ---: | ---: |")
    for name, rate in rows:
        share = f"{rate / bound:.0%}" if name.endswith("(CPU)") else "-"
        print(f"| {name} | {rate:.1f} | {rate / lib:.1f}x | {share} |")


if __name__ == "__main__":
    main()
