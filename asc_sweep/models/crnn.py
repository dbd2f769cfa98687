"""A small convolutional-recurrent baseline (in the line of Cakir et al., "Convolutional
recurrent neural networks for polyphonic sound event detection", TASLP 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asc_sweep.models.common import AscModel, ModelSpec, masked_mean, time_mask, valid_steps


class CRNN(AscModel):
    """Three conv blocks (3x3, 64 channels, BN, ReLU, frequency-only max pooling 4, 4, 2), a
    bidirectional GRU of 64 units per direction over time, masked mean over time, softmax.

    Not a published model to match in size (about 0.2 M parameters at 64 bands and 10
    classes). Init: PyTorch defaults unless a sweep says otherwise; the recurrent weights get
    the scheme's input-to-hidden rule and orthogonal hidden-to-hidden weights. Here: the GRU
    runs on packed sequences, so padding never enters its state.
    """

    def __init__(self, spec: ModelSpec, channels: int = 64, hidden: int = 64) -> None:
        super().__init__()
        pools = (4, 4, 2)
        freq = spec.n_mels
        convs: list[nn.Module] = []
        c_in = 1
        for p in pools:
            convs += [
                nn.Conv2d(c_in, channels, 3, padding=1),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.MaxPool2d((p, 1)),
            ]
            c_in, freq = channels, freq // p
        if freq < 1:
            raise ValueError(f"crnn needs n_mels >= 32, got {spec.n_mels}")
        self.convs = nn.Sequential(*convs)
        self.gru = nn.GRU(channels * freq, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, spec.n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.convs(x.unsqueeze(1))  # (B, C, F', T)
        seq = x.flatten(1, 2).transpose(1, 2)  # (B, T, C * F')
        steps = valid_steps(lengths, 1, seq.shape[1])
        packed = pack_padded_sequence(seq, steps.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=seq.shape[1])
        out = F.relu(out).transpose(1, 2)  # (B, 2H, T)
        return self.fc(masked_mean(out, time_mask(lengths, 1, out.shape[-1])))
