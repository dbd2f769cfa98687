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
