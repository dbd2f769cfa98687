"""Log-mel throughput: batched LogMel against per-clip librosa, and against the FFT bound.

The same clips, the same settings (window, hop, mel bands, slaney scale and norm, dB), the
same output. librosa is what a user would otherwise call in a data loader, clip by clip;
LogMel runs whole batches on the run's device. More CPU rows put the figures in context:
LogMel with ``banded=False`` (torchaudio's MelSpectrogram on whole batches, the path a GPU
takes), LogMel with ``compiled=False`` (its CPU arrangement in torch ops, what runs where the
C kernel is not built), and the bound: the FFT of the windowed frames alone (window and rfft
over every frame, one clip at a time, nothing before or after it; the fastest arrangement
measured), which no STFT-based front end can beat on this CPU. Clips/s after a warm-up
pass over one batch, the median of ``--repeats`` rounds that take the rows in turn (so a
slow phase of a shared machine hits every row alike); the GPU figure (when a GPU is
present) includes host-to-device copies.

Usage: python benchmarks/features.py [--clips 256] [--seconds 10] [--sample-rate 32000]
       [--batch 64] [--mels 128] [--repeats 5] [--threads N]

``--threads 1`` measures what an agent of one thread runs (the CPU layout ``launch`` picks);
the default is torch's own count (every core), for every row alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import librosa
import numpy as np
import torch

from asc_sweep.data.features import LogMel, kernel_available, kernel_description


def librosa_pass(clips: np.ndarray, sr: int, win: int, hop: int, n_mels: int, n_fft: int) -> None:
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


def torch_pass(
    data: torch.Tensor, step: Callable[[torch.Tensor], object], batch: int, device: str
) -> None:
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            step(data[start : start + batch].to(device, non_blocking=True))
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sample-rate", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--mels", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    sr, b = args.sample_rate, args.batch
    win, hop = round(0.025 * sr), round(0.010 * sr)
    front = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop)
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((args.clips, int(args.seconds * sr))) * 0.1).astype(np.float32)
    data = torch.from_numpy(clips)
    print(
        f"{args.clips} clips x {args.seconds:g} s at {sr} Hz, n_fft {front.n_fft}, hop {hop}, "
        f"{args.mels} mels; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"librosa {librosa.__version__}; CPU front end: {kernel_description()}; "
        f"median of {args.repeats} rounds\n"
    )

    window = torch.hann_window(front.n_fft)
    frames_per_clip = (clips.shape[1] - front.n_fft) // hop + 1  # no centring padding
    frame_buf = torch.empty(frames_per_clip, front.n_fft)

    def fft_alone(x: torch.Tensor) -> object:
        # One clip at a time, windowed into a reused buffer, the FFT into its own output
        # (rfft with out= computes into a temporary and copies): the fastest arrangement
        # measured (parts of 128 to 512 frames a call were no faster).
        for clip in x.unfold(-1, front.n_fft, hop):
            torch.mul(clip, window, out=frame_buf)
            torch.fft.rfft(frame_buf)
        return None

    dense = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop, banded=False)
    ops = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop, compiled=False)
    rows: list[tuple[str, Callable[[int], None]]] = [  # each runs the first n clips
        (
            "librosa, per clip (CPU)",
            lambda n: librosa_pass(clips[:n], sr, win, hop, args.mels, front.n_fft),
        ),
        (
            f"LogMel dense: torchaudio's transforms (the GPU path), batches of {b} (CPU)",
            lambda n: torch_pass(data[:n], dense.log_mel, b, "cpu"),
        ),
        (
            f"LogMel in torch ops (no compiled kernel), batches of {b} (CPU)",
            lambda n: torch_pass(data[:n], ops.log_mel, b, "cpu"),
        ),
    ]
    if kernel_available():
        rows.append(
            (
                f"LogMel, compiled kernel, batches of {b} (CPU)",
                lambda n: torch_pass(data[:n], front.log_mel, b, "cpu"),
            )
        )
    rows.append(
        ("bound: the frames' FFT alone (CPU)", lambda n: torch_pass(data[:n], fft_alone, b, "cpu"))
    )
    if torch.cuda.is_available():
        gpu = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop).to("cuda")
        rows.append(
            (
                f"LogMel, batches of {b} ({torch.cuda.get_device_name()})",
                lambda n: torch_pass(data[:n], gpu.log_mel, b, "cuda"),
            )
        )
    for _, run in rows:  # warm-up on one batch: librosa's numba, torch's plans, caches
        run(b)
    rates: dict[str, list[float]] = {name: [] for name, _ in rows}
    for round_ in range(args.repeats):
        shift = round_ % len(rows)
        for name, run in rows[shift:] + rows[:shift]:
            t0 = time.perf_counter()
            run(len(clips))
            rates[name].append(len(clips) / (time.perf_counter() - t0))
    median = {name: statistics.median(values) for name, values in rates.items()}
    lib = median["librosa, per clip (CPU)"]
    bound = next(rate for name, rate in median.items() if name.startswith("bound"))
    print("| front end | clips/s | vs librosa | share of the CPU's FFT bound |")
    print("| --- | ---: | ---: | ---: |")
    for name, rate in median.items():
        share = f"{rate / bound:.0%}" if name.endswith("(CPU)") else "-"
        print(f"| {name} | {rate:.1f} | {rate / lib:.1f}x | {share} |")


if __name__ == "__main__":
    main()
