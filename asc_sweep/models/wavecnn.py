"""Raw-waveform CNNs: M5 and M11 (Dai, Dai, Qu, Li, Das, "Very deep convolutional neural
networks for raw waveforms", ICASSP 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.models.common import AscModel, BatchNorm1d, ModelSpec, masked_mean, time_mask


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2),
        BatchNorm1d(c_out),
        nn.ReLU(),
    )


class _WaveCNN(AscModel):
    input_kind = "waveform"

    def __init__(self, spec: ModelSpec, stages: list[list[int]], first: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv(1, first, 80, stride=4), nn.MaxPool1d(4)]
        c_in = first
        for i, stage in enumerate(stages):
            for c_out in stage:
                layers.append(_conv(c_in, c_out, 3))
                c_in = c_out
            if i < len(stages) - 1:
                layers.append(nn.MaxPool1d(4))
        self.features = nn.Sequential(*layers)
        self.factor = 4 * 4 ** len(
            stages
        )  # stride 4, then a 4x pooling after all but the last stage
        self.fc = nn.Linear(c_in, spec.n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.unsqueeze(1), (0, max(0, self.factor * 2 - x.shape[-1])))
        x = self.features(x)  # (B, C, T / factor)
        return self.fc(masked_mean(x, time_mask(lengths, self.factor, x.shape[-1])))


class M5(_WaveCNN):
    """M5: Conv 80/4 (128) -> pool 4 -> Conv 3 (128) -> pool 4 -> Conv 3 (256) -> pool 4 ->
    Conv 3 (512) -> global average pooling -> softmax; BN after every conv.

    Input: 8 kHz waveforms. Size: 0.5 M parameters in the paper (559,114 here, with 10
    classes). Init: Glorot (Xavier) initialisation, as the paper states. Here: global average
    pooling is masked to each clip's valid samples.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec, [[128], [256], [512]], first=128)


class M11(_WaveCNN):
    """M11: Conv 80/4 (64), pool; 2 x Conv 3 (64), pool; 2 x (128), pool; 3 x (256), pool;
    2 x (512); global average pooling; softmax; BN after every conv.

    Input: 8 kHz waveforms. Size: 1.8 M parameters in the paper (1,786,442 here, with 10
    classes). Init: Glorot (Xavier). Here: masked global average pooling.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec, [[64, 64], [128, 128], [256, 256, 256], [512, 512]], first=64)
