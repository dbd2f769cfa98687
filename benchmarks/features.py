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
slow phase of a shared machine hits every row alike).

Where a GPU is present (or with ``--device``), two more rows: LogMel on batches already in
the device's memory (what a run whose fold is held there, ``resident``, computes), and on
batches copied from host memory each time; and the device's memory-bandwidth bound: its copy
bandwidth (a 1 GiB device-to-device copy, read and write counted) over the bytes that a front
end fused into one kernel would move per clip (the clip read once, its log-mel written once).
``--device cpu`` runs those rows' code on the CPU: a smoke test on hosts without a GPU.

Usage: python benchmarks/features.py [--clips 256] [--seconds 10] [--sample-rate 32000]
       [--batch 64] [--mels 128] [--repeats 5] [--threads N] [--device cuda|cpu]

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
from asc_sweep.run.cost import timed_calls


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_pass(
    data: torch.Tensor, step: Callable[[torch.Tensor], object], batch: int, device: torch.device
) -> None:
    """``step`` over ``data`` batch by batch, each batch moved to ``device`` (a no-op where it
    is there already), until the device has finished."""
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            step(data[start : start + batch].to(device, non_blocking=True))
    synchronize(device)


def copy_bandwidth(device: torch.device, nbytes: int, repeats: int = 5) -> float:
    """Bytes/s a device-to-device copy of ``nbytes`` moves (each byte read and written)."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    times = timed_calls(lambda: dst.copy_(src), device, warmup=1, repeats=repeats)
    return 2 * nbytes / statistics.median(times)


def fused_bytes_per_clip(samples: int, mels: int, frames: int) -> int:
    """What a front end fused into one kernel must move per clip: the clip read once
    (float32), its log-mel written once."""
    return 4 * samples + 4 * mels * frames


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
    parser.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        help="the device rows and memory-bandwidth bound (default: cuda where present); "
        "cpu runs them on the CPU, a smoke test of their code",
    )
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

    cpu = torch.device("cpu")
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
            lambda n: torch_pass(data[:n], dense.log_mel, b, cpu),
        ),
        (
            f"LogMel in torch ops (no compiled kernel), batches of {b} (CPU)",
            lambda n: torch_pass(data[:n], ops.log_mel, b, cpu),
        ),
    ]
    if kernel_available():
        rows.append(
            (
                f"LogMel, compiled kernel, batches of {b} (CPU)",
                lambda n: torch_pass(data[:n], front.log_mel, b, cpu),
            )
        )
    rows.append(
        ("bound: the frames' FFT alone (CPU)", lambda n: torch_pass(data[:n], fft_alone, b, cpu))
    )
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    measure_device = args.device is not None or device.type == "cuda"
    if measure_device:
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU as device"
        on_device = LogMel(sr, n_mels=args.mels, win_length=win, hop_length=hop).to(device)
        resident = data.to(device)
        pinned = device.type == "cuda"
        host = data.pin_memory() if pinned else data
        rows += [
            (
                f"LogMel, batches of {b} held in the device's memory ({where})",
                lambda n: torch_pass(resident[:n], on_device.log_mel, b, device),
            ),
            (
                f"LogMel, batches of {b} copied from {'pinned ' * pinned}host memory ({where})",
                lambda n: torch_pass(host[:n], on_device.log_mel, b, device),
            ),
        ]
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
    fft_bound = next(rate for name, rate in median.items() if name.startswith("bound"))
    device_bound, notes = float("nan"), []
    if measure_device:
        size = 1 << 30 if device.type == "cuda" else 1 << 26  # (bytes; a CPU smoke test's less)
        bandwidth = copy_bandwidth(device, size)
        per_clip = fused_bytes_per_clip(clips.shape[1], args.mels, int(front.frames(
            torch.tensor(clips.shape[1]))))  # fmt: skip
        device_bound = bandwidth / per_clip
        notes.append(
            f"The device's memory-bandwidth bound ({where}): its copy bandwidth "
            f"{bandwidth / 1e9:.0f} GB/s ({size >> 20} MiB device to device, read and write "
            f"counted) "
            f"over the {per_clip / 1e6:.2f} MB a front end fused into one kernel moves per "
            f"clip (the clip read once, its log-mel written once): {device_bound:,.0f} clips/s."
        )
    print("| front end | clips/s | vs librosa | share of its bound |")
    print("| --- | ---: | ---: | ---: |")
    for name, rate in median.items():
        bound = fft_bound if name.endswith("(CPU)") else device_bound
        print(f"| {name} | {rate:.1f} | {rate / lib:.1f}x | {rate / bound:.0%} |")
    print(
        "\nShares: CPU rows of the CPU's FFT bound (the last CPU row); device rows of the "
        "device's memory-bandwidth bound."
    )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
