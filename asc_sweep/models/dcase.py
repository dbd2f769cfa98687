"""The DCASE challenge baselines for acoustic scene classification."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.models.common import (
    AscModel,
    BatchNorm2d,
    Dropout,
    ModelSpec,
    masked_max,
    masked_mean,
    steps_mask,
    time_mask,
    valid_steps,
    zero_past,
)


class DCASE2017MLP(AscModel):
    """DCASE 2017 task 1 baseline (Heittola, Mesaros et al., DCASE 2017 Workshop baseline system).

    Published: 40 log-mel bands in a 5-frame context (200 inputs), two dense layers of 50 ReLU
    units with dropout 0.2, softmax over 15 scenes, frame-wise decisions combined per clip.
    Size: 13,365 parameters with 15 classes. Init: Keras defaults (Glorot uniform).
    Here: frame-wise logits averaged over the clip's valid frames; with ``frame_targets`` (the
    ``dcase2017`` recipe) every frame is a training example and the frames' decisions are
    voted into the clip's, as the baseline did.
    """

    frame_wise = True

    def __init__(
        self, spec: ModelSpec, context: int = 5, hidden: int = 50, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.context = context
        self.net = nn.Sequential(
            nn.Linear(spec.n_mels * context, hidden),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(hidden, spec.n_classes),
        )

    def frame_logits(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-1] < self.context:  # a clip shorter than the context window
            x = F.pad(x, (0, self.context - x.shape[-1]))
        frames = x.unfold(-1, self.context, 1)  # (B, M, T', context)
        frames = frames.permute(0, 2, 1, 3).flatten(2)  # (B, T', M * context)
        logits = self.net(frames).transpose(1, 2)  # (B, classes, T')
        mask = time_mask(torch.clamp(lengths - self.context + 1, min=1), 1, logits.shape[-1])
        return logits, mask

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return masked_mean(*self.frame_logits(x, lengths))


class DCASE2018CNN(AscModel):
    """DCASE 2018/2019 task 1 baseline (Heittola et al., DCASE 2018 Workshop baseline system).

    Published: 40 log-mel bands x 500 frames; Conv 7x7 (32) -> BN -> ReLU -> MaxPool 5x5 ->
    Dropout 0.3; Conv 7x7 (64) -> BN -> ReLU -> MaxPool 4x100 -> Dropout 0.3; Dense 100 ->
    Dropout 0.3 -> softmax over 10 scenes. Size: 116,118 trainable parameters in that setting.
    Init: Keras defaults (Glorot uniform). Here: the final 4x100 max pooling (which spans the
    whole 10 s clip) becomes frequency pooling by 4 and a masked max over all valid frames,
    so any clip length works and the published size is kept exactly.
    """

    def __init__(self, spec: ModelSpec, dropout: float = 0.3) -> None:
        super().__init__()
        # ReLU is applied after each max pooling: the same values and gradients (ReLU is
        # monotonic, so it commutes with the max), on 25 (block 1) and 4 times fewer elements.
        self.block1 = nn.Sequential(nn.Conv2d(1, 32, 7, padding=3), BatchNorm2d(32))
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 7, padding=3), BatchNorm2d(64))
        self.drop = Dropout(dropout)
        freq = spec.n_mels // 5 // 4
        if freq < 1:
            raise ValueError(f"dcase2018_cnn needs n_mels >= 20, got {spec.n_mels}")
        self.head = nn.Sequential(
            nn.Linear(64 * freq, 100),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(100, spec.n_classes),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)  # (B, 1, M, T)
        x = F.pad(x, (0, -x.shape[-1] % 5))  # whole pooling windows over time; masked below
        x = self.drop(F.relu(F.max_pool2d(self.block1(x), 5)))
        # Past each clip's end, zeros, as block 2's convolution pads at the tensor's edge (the
        # batch-normalised padding there is not zero): a clip is seen as it is alone.
        valid = valid_steps(lengths, 5, x.shape[-1])
        x = zero_past(x, valid)
        x = self.drop(F.relu(F.max_pool2d(self.block2(x), (4, 1))))  # (B, 64, M/20, T/5)
        pooled = masked_max(x, steps_mask(valid, x.shape[-1]))  # (B, 64, M/20)
        return self.head(pooled.flatten(1))
