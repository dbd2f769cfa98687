"""The log-mel front end: a torch module that runs batch-wise on the run's device.

``LogMel`` wraps torchaudio's ``MelSpectrogram`` and ``AmplitudeToDB`` with every setting
explicit, and owns per-band normalisation statistics as buffers (computed from the training
part of a fold only, with :func:`fit_normalization`). Bad settings raise ``ValueError`` here,
at construction; sweep specs catch the same impossible combinations at ``create``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torchaudio
from torch import nn

from .config import RunConfig, audio_problems

CPU_CHUNK_BINS = 1_000_000  # spectrogram bins per pass on a CPU (about 4 MB of float32)


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
    ) -> None:
        super().__init__()
        if hop_length < 1 or win_length < 1:
            raise ValueError("win_length and hop_length must be >= 1 sample")
        if mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale {mel_scale!r}: allowed: slaney, htk")
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
        self.register_buffer("mean", torch.zeros(n_mels, 1))
        self.register_buffer("std", torch.ones(n_mels, 1))

    @classmethod
    def from_config(cls, config: RunConfig) -> LogMel:
        """The front end a run's config describes (window and hop given in ms)."""
        sr = config.sample_rate
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
            if waveforms.device.type == "cpu":
                # On a CPU the spectrogram of a large batch overflows the caches and the pass
                # becomes memory-bound (4x slower per clip, measured): go a few clips at a time.
                frames = waveforms.shape[-1] // self.hop_length + 1
                rows = max(1, CPU_CHUNK_BINS // (frames * (self.n_fft // 2 + 1)))
                if waveforms.shape[0] > rows:
                    return torch.cat([self.to_db(self.mel(part)) for part in waveforms.split(rows)])
            return self.to_db(self.mel(waveforms))

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
