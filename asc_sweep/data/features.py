"""The log-mel front end: a torch module that runs batch-wise on the run's device.

``LogMel`` wraps torchaudio's ``MelSpectrogram`` and ``AmplitudeToDB`` with every setting
explicit, and owns per-band normalisation statistics as buffers (computed from the training
part of a fold only, with :func:`fit_normalization`). Bad settings raise ``ValueError`` here,
at construction; sweep specs catch the same impossible combinations at ``create``.

On a GPU the batch goes through torchaudio's ``MelSpectrogram`` as it is. On a CPU the same
computation is arranged for the caches (measured in ``benchmarks/features.py``): a few clips
per pass through buffers allocated once per call, the power spectrum as ``re**2 + im**2``
instead of ``|z| ** 2``, and the mel projection done band by band over the FFT bins each
group of filters covers, skipping most of a dense filterbank's zeros (over 90% of its entries).
The result is the same up to float32 rounding (a test holds the two paths to 1e-5).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torchaudio
from torch import nn
from torch.nn import functional

from asc_sweep.sweep.config import RunConfig, audio_problems

CPU_CHUNK_BINS = 300_000  # spectrogram bins per pass on a CPU (2.4 MB of complex64 spectrum)
PAD_MODES = ("reflect", "constant", "replicate", "circular")  # what torch.stft accepts
MELS_PER_GROUP = 16  # mel filters per banded product on a CPU


def mel_groups(fb: torch.Tensor, size: int = MELS_PER_GROUP) -> list[tuple[int, int, int, int]]:
    """``(first_mel, end_mel, first_bin, end_bin)`` per group of ``size`` filters of ``fb``.

    ``fb`` is ``(n_freqs, n_mels)`` as torchaudio builds it; the bin range is where any filter
    of the group is non-zero (empty when none is).
    """
    groups = []
    for start in range(0, fb.shape[1], size):
        end = min(fb.shape[1], start + size)
        bins = torch.nonzero(fb[:, start:end].abs().sum(dim=1)).flatten()
        low, high = (int(bins[0]), int(bins[-1]) + 1) if len(bins) else (0, 0)
        groups.append((start, end, low, high))
    return groups


class LogMel(nn.Module):
    """Waveforms ``(batch, samples)`` -> log-mel ``(batch, n_mels, frames)`` in dB.

    Args:
        sample_rate: Hz of the input waveforms.
        n_mels: mel bands.
        win_length: analysis window in samples; ``n_fft`` is the next power of two.
        hop_length: hop in samples.
        f_min, f_max: band edges in Hz (``f_max=None``: sample_rate / 2).
        mel_scale: ``"slaney"`` (librosa's default) or ``"htk"``.
        norm: ``"slaney"`` (area-normalised filters) or ``None``.
        center: pad so that frame ``t`` is centred on sample ``t * hop_length``.
        pad_mode: padding used with ``center``.
        top_db: clamp the dynamic range per spectrogram (``None``: no clamp).
        banded: compute with :meth:`banded_mel` (``None``: on CPUs, where it is faster; on
            GPUs torchaudio's dense transform is).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        sample_rate: int,
        n_mels: int = 64,
        win_length: int = 800,
        hop_length: int = 320,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        center: bool = True,
        pad_mode: str = "reflect",
        top_db: float | None = None,
        banded: bool | None = None,
    ) -> None:
        super().__init__()
        if hop_length < 1 or win_length < 1:
            raise ValueError("win_length and hop_length must be >= 1 sample")
        if mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale {mel_scale!r}: allowed: slaney, htk")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode {pad_mode!r}: allowed: {', '.join(PAD_MODES)}")
        self.n_fft = 1 << (win_length - 1).bit_length()
        win_ms = win_length / sample_rate * 1000
        problems = audio_problems(
            sample_rate=sample_rate,
            win_ms=win_ms,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            mel_scale=mel_scale,
        )
        if problems:
            raise ValueError("; ".join(f"{key}: {msg}" for key, msg in problems))
        self.sample_rate, self.hop_length, self.center = sample_rate, hop_length, center
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            window_fn=torch.hann_window,
            power=2.0,
            center=center,
            pad_mode=pad_mode,
            norm=norm,
            mel_scale=mel_scale,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=top_db)
        self.pad_mode, self.banded = pad_mode, banded
        self.groups = mel_groups(self.mel.mel_scale.fb)
        self.register_buffer("mean", torch.zeros(n_mels, 1))
        self.register_buffer("std", torch.ones(n_mels, 1))

    @classmethod
    def from_config(cls, config: RunConfig) -> LogMel:
        """The front end a run's config describes (window and hop given in ms)."""
        sr = config.rate
        win = max(1, round(sr * config.win_ms / 1000))
        return cls(
            sample_rate=sr,
            n_mels=config.n_mels,
            win_length=win,
            hop_length=max(1, round(sr * config.hop_ms / 1000)),
            f_min=config.f_min,
            f_max=config.f_max,
            mel_scale=config.mel_scale,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) float -> (batch, n_mels, frames), normalised with the fitted stats."""
        if waveforms.dim() != 2:
            raise ValueError(f"expected (batch, samples), got shape {tuple(waveforms.shape)}")
        return (self.log_mel(waveforms) - self.mean) / self.std

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB without normalisation."""
        # The STFT runs in float32 even under autocast: half precision loses the quiet bands.
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            waveforms = waveforms.float()
            banded = self.banded
            if banded if banded is not None else waveforms.device.type == "cpu":
                return self.power_to_db_(self.banded_mel(waveforms))
            return self.power_to_db_(self.mel(waveforms))

    def power_to_db_(self, power: torch.Tensor) -> torch.Tensor:
        """``AmplitudeToDB`` in place, with ``top_db`` applied to each clip on its own.

        (torchaudio's transform takes a 3-d input as channels of one spectrogram, so its
        ``top_db`` floor would follow the loudest clip of the batch.)
        """
        to_db = self.to_db
        db = power.clamp_(min=to_db.amin).log10_().mul_(to_db.multiplier)
        if to_db.db_multiplier:
            db.sub_(to_db.multiplier * to_db.db_multiplier)
        if to_db.top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - to_db.top_db
            torch.maximum(db, floor, out=db)
        return db

    def banded_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Power mel spectrogram ``(batch, n_mels, frames)``, what ``self.mel`` computes.

        The STFT is torch.stft's (centred padding, window zero-padded to ``n_fft`` in the
        middle, one-sided), spelled out so that a few clips at a time go through buffers that
        are allocated once per call and stay in the caches (fresh multi-megabyte tensors for
        every clip cost more in page faults than the FFT itself, measured); the mel product
        skips the bins outside each group of filters.
        """
        n_fft, hop = self.n_fft, self.hop_length
        batch, samples = waveforms.shape
        half = n_fft // 2 if self.center else 0
        padded_len = samples + 2 * half
        if padded_len < n_fft:
            raise ValueError(
                f"clips of {samples} samples are shorter than one {n_fft}-sample frame"
            )
        if self.center and self.pad_mode in ("reflect", "circular") and samples <= half:
            raise ValueError(
                f"clips of {samples} samples are too short for {self.pad_mode} padding "
                f"(need more than {half})"
            )
        frames = (padded_len - n_fft) // hop + 1
        bins = n_fft // 2 + 1
        rows = max(1, min(batch, CPU_CHUNK_BINS // (frames * bins)))
        window = self.mel.spectrogram.window
        left = (n_fft - window.shape[0]) // 2
        window = functional.pad(window, (left, n_fft - window.shape[0] - left))
        fb = self.mel.mel_scale.fb  # (bins, n_mels)
        out = waveforms.new_empty(batch, fb.shape[1], frames)
        pad_buf = waveforms.new_empty(rows, padded_len)
        frame_buf = waveforms.new_empty(rows, frames, n_fft)
        power = waveforms.new_empty(rows, frames, bins)
        for first in range(0, batch, rows):
            part = waveforms[first : first + rows]
            n = part.shape[0]
            self._pad_into(pad_buf[:n], part, half)
            torch.mul(pad_buf[:n].unfold(-1, n_fft, hop), window, out=frame_buf[:n])
            # rfft's own output: with ``out=`` torch computes into a temporary and copies it
            # (measured 0.83 against 0.48 ms for a 10 s clip's 1,001 frames).
            spectrum = torch.fft.rfft(frame_buf[:n])
            parts = torch.view_as_real(spectrum).square_()
            torch.add(parts[..., 0], parts[..., 1], out=power[:n])
            dest = out[first : first + n]
            for start, end, low, high in self.groups:
                torch.matmul(
                    fb[low:high, start:end].T,
                    power[:n, :, low:high].transpose(1, 2),
                    out=dest[:, start:end],
                )
        return out

    def _pad_into(self, dest: torch.Tensor, clips: torch.Tensor, half: int) -> None:
        """``functional.pad(clips, (half, half), mode=self.pad_mode)`` written into ``dest``."""
        length = clips.shape[-1]
        dest[:, half : half + length].copy_(clips)
        if not half:
            return
        head, tail = dest[:, :half], dest[:, half + length :]
        if self.pad_mode == "reflect":
            head.copy_(clips[:, 1 : half + 1].flip(-1))
            tail.copy_(clips[:, length - half - 1 : length - 1].flip(-1))
        elif self.pad_mode == "replicate":
            head.copy_(clips[:, :1].expand(-1, half))
            tail.copy_(clips[:, -1:].expand(-1, half))
        elif self.pad_mode == "circular":
            head.copy_(clips[:, length - half :])
            tail.copy_(clips[:, :half])
        else:
            head.zero_()
            tail.zero_()

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        """Frame count for each clip length in samples (what masked pooling needs)."""
        if self.center:
            return samples // self.hop_length + 1
        return torch.clamp((samples - self.n_fft) // self.hop_length + 1, min=0)


@torch.no_grad()
def fit_normalization(
    front_end: LogMel, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Set per-band mean and std from ``(waveforms, lengths)`` batches: the fold's training part.

    Padding frames are left out, so the statistics describe the audio, not the zeros.
    """
    total = torch.zeros(front_end.mean.shape[0], dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    for waves, lengths in batches:
        waves = waves.to(front_end.mean.device)
        spec = front_end.log_mel(waves).double()  # (B, M, T)
        frames = front_end.frames(lengths.to(waves.device)).clamp(max=spec.shape[-1])
        mask = torch.arange(spec.shape[-1], device=spec.device)[None, :] < frames[:, None]  # (B, T)
        m = mask[:, None, :].to(spec.dtype)
        total += (spec * m).sum(dim=(0, 2)).cpu()
        squares += (spec.square() * m).sum(dim=(0, 2)).cpu()
        count += int(mask.sum())
    if count == 0:
        raise ValueError("no training frames to compute normalisation statistics from")
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=1e-8).sqrt()
    front_end.mean.copy_(mean.float()[:, None])
    front_end.std.copy_(std.float()[:, None])
