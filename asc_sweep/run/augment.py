"""Training-time augmentation: SpecAugment masking on log-mel, and mixup of batches."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio
from torch import nn


class SpecAugment(nn.Module):
    """Two frequency masks (up to ``freq`` bands) and two time masks (up to ``time`` frames),
    only while training (Park et al., Interspeech 2019)."""

    def __init__(self, freq: int = 8, time: int = 20) -> None:
        super().__init__()
        self.freq = torchaudio.transforms.FrequencyMasking(freq, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(time, iid_masks=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, T)
        if not self.training:
            return x
        x = x.unsqueeze(1)
        for _ in range(2):
            x = self.time(self.freq(x))
        return x.squeeze(1)


def mixup(
    x: torch.Tensor, targets: torch.Tensor, alpha: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a shuffled partner (Zhang et al., ICLR 2018); soft targets."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


def random_gain(waves: torch.Tensor, max_db: float) -> torch.Tensor:
    """Each clip scaled by a gain drawn uniformly in +/- ``max_db`` dB (torch's random stream)."""
    db = (torch.rand(waves.shape[0], 1) * 2 - 1) * max_db
    return waves * (10 ** (db / 20)).to(waves.device, waves.dtype)


def shift_bands(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each clip's log-mel ``(B, M, T)`` shifted along the mel axis by a whole number of bands
    drawn in +/- ``max_shift``; bands shifted in are zero (the normalised mean). A cheap
    stand-in for pitch shifting (a constant shift on the mel scale is close to a pitch shift
    in the upper, logarithmic part of the scale)."""
    batch, bands = x.shape[0], x.shape[1]
    shift = torch.randint(-max_shift, max_shift + 1, (batch, 1)).to(x.device)
    source = torch.arange(bands, device=x.device)[None, :] - shift  # (B, M)
    valid = (source >= 0) & (source < bands)
    index = source.clamp(0, bands - 1)[:, :, None].expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, index) * valid[:, :, None].to(x.dtype)


def freq_mixstyle(x: torch.Tensor, probability: float, alpha: float = 0.3) -> torch.Tensor:
    """Freq-MixStyle (Schmid et al., DCASE 2022): with ``probability``, each clip's per-band
    mean and standard deviation over time are mixed with those of another clip of the batch
    (weight ~ Beta(alpha, alpha)). The per-band statistics carry the microphone, room and
    background of a recording location; mixing them teaches the network to ignore them."""
    if probability <= 0 or x.shape[0] < 2 or float(torch.rand(())) >= probability:
        return x
    mean = x.mean(dim=2, keepdim=True)
    std = (x.var(dim=2, keepdim=True) + 1e-5).sqrt()
    normed = (x - mean) / std
    lam = torch.distributions.Beta(alpha, alpha).sample((x.shape[0], 1, 1)).to(x.device, x.dtype)
    perm = torch.randperm(x.shape[0]).to(x.device)
    mixed_mean = lam * mean + (1 - lam) * mean[perm]
    mixed_std = lam * std + (1 - lam) * std[perm]
    return normed * mixed_std + mixed_mean
