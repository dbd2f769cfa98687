"""PANNs CNN6 and CNN10 (Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks
for Audio Pattern Recognition", IEEE/ACM TASLP 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.models.common import (
    AscModel,
    BatchNorm2d,
    ModelSpec,
    dropout,
    masked_max,
    masked_mean,
    time_mask,
    zero_past,
)


class _Block(nn.Module):
    """One or two conv-BN-ReLU layers, then 2x2 average pooling (PANNs' ConvBlock/ConvBlock5x5).

    ``forward(x, valid)``: ``x`` is ``(B, C, T, M)`` and ``valid`` each clip's frames here when
    it is alone (even: the input is padded to whole poolings). Between the convolutions and
    after the pooling, positions past them are zero, as a clip alone is padded there."""

    def __init__(self, c_in: int, c_out: int, kernel: int, layers: int) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        for i in range(layers):
            convs += [
                nn.Conv2d(
                    c_in if i == 0 else c_out, c_out, kernel, padding=kernel // 2, bias=False
                ),
                BatchNorm2d(c_out),
                nn.ReLU(),
            ]
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        layers = list(self.convs)
        for i in range(0, len(layers), 3):
            if i:
                x = zero_past(x, valid, dim=2)
            x = layers[i + 2](layers[i + 1](layers[i](x)))
        return zero_past(F.avg_pool2d(x, 2), valid // 2, dim=2)


class _PANN(AscModel):
    def __init__(self, spec: ModelSpec, kernel: int, layers: int, dropout: float = 0.2) -> None:
        super().__init__()
        if spec.n_mels < 16:
            raise ValueError(f"PANNs CNNs need n_mels >= 16, got {spec.n_mels}")
        self.bn0 = BatchNorm2d(spec.n_mels)  # per mel band, as in PANNs
        widths = (64, 128, 256, 512)
        self.blocks = nn.ModuleList(
            _Block(c_in, c_out, kernel, layers)
            for c_in, c_out in zip((1, *widths[:-1]), widths, strict=True)
        )
        self.dropout = dropout
        self.fc1 = nn.Linear(512, 512)
        self.fc_out = nn.Linear(512, spec.n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.bn0(x.unsqueeze(-1)).squeeze(-1)  # normalise each mel band (B, M, T)
        # Past each clip's end, zeros again, as the padding below and a clip alone have (the
        # band norm's shift would otherwise reach the clip's last frames through conv 1).
        x = zero_past(x, lengths)
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, T, M): PANNs put time first
        x = F.pad(x, (0, 0, 0, -x.shape[2] % 16))  # four 2x poolings over time
        # A clip alone is padded to whole poolings: its frames in each block.
        valid = -(-lengths // 16) * 16
        for block in self.blocks:
            x = dropout(block(x, valid), self.dropout, self.training)
            valid = valid // 2
        x = x.mean(dim=3)  # average over frequency -> (B, 512, T/16)
        mask = time_mask(lengths, 16, x.shape[-1])
        x = masked_max(x, mask) + masked_mean(x, mask)  # PANNs' max + mean over time
        x = dropout(x, 0.5, self.training)
        x = F.relu(self.fc1(x))
        return self.fc_out(dropout(x, 0.5, self.training))


class CNN6(_PANN):
    """PANNs CNN6: four blocks of one 5x5 conv (64, 128, 256, 512 channels), BN, ReLU, 2x2
    average pooling; mean over frequency, max + mean over time; FC 512; output layer.

    Input: 64 log-mel bands at 32 kHz (1024-point window, hop 320). Size: about 4.8 M
    parameters with the 527-class AudioSet head (4,837,455 here). Init: Xavier uniform for
    conv and linear layers, BN weight 1 and bias 0 (the PANNs code's init_layer/init_bn).
    Here: time pooling is masked to each clip's valid frames, and each layer sees zeros past
    a clip's end, so that a clip in a batch is classified as it is alone.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec, kernel=5, layers=1)


class CNN10(_PANN):
    """PANNs CNN10: as CNN6 with two 3x3 convs per block. Size: about 5.2 M parameters with
    the 527-class head (5,219,279 here). Init: as CNN6 (Xavier uniform, BN 1/0)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec, kernel=3, layers=2)
