"""Raw-waveform CNNs: M5 and M11 (Dai, Dai, Qu, Li, Das, "Very deep convolutional neural
networks for raw waveforms", ICASSP 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.models.common import (
    AscModel,
    BatchNorm1d,
    ModelSpec,
    conv_steps,
    masked_mean,
    steps_mask,
    valid_steps,
    zero_past,
)


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
        # Each layer with its (kernel, stride, padding) over time, to count a clip's positions.
        plan: list[tuple[nn.Module, tuple[int, int, int]]] = [
            (_conv(1, first, 80, stride=4), (80, 4, 40)),
            (nn.MaxPool1d(4), (4, 4, 0)),
        ]
        c_in = first
        for i, stage in enumerate(stages):
            for c_out in stage:
                plan.append((_conv(c_in, c_out, 3), (3, 1, 1)))
                c_in = c_out
            if i < len(stages) - 1:
                plan.append((nn.MaxPool1d(4), (4, 4, 0)))
        self.features = nn.Sequential(*(layer for layer, _ in plan))
        self.time_layers = [shape for _, shape in plan]
        self.factor = 4 * 4 ** len(
            stages
        )  # stride 4, then a 4x pooling after all but the last stage
        self.fc = nn.Linear(c_in, spec.n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.unsqueeze(1), (0, max(0, self.factor * 2 - x.shape[-1])))
        # Each clip's positions, layer by layer, as it has them alone (padded as above); every
        # conv but the first (whose input is zero past a clip's end) reads zeros past them.
        valid = torch.clamp(lengths, min=self.factor * 2)
        for i, (layer, (kernel, stride, padding)) in enumerate(
            zip(self.features, self.time_layers, strict=True)
        ):
            if i and padding:  # a conv
                x = zero_past(x, valid)
            x = layer(x)
            valid = conv_steps(valid, kernel, stride, padding)
        # (B, C, T / factor): pooled over the positions that hold at least a sample of the clip
        valid = torch.minimum(valid, valid_steps(lengths, self.factor, x.shape[-1]))
        return self.fc(masked_mean(x, steps_mask(valid, x.shape[-1])))


class M5(_WaveCNN):
    """M5: Conv 80/4 (128) -> pool 4 -> Conv 3 (128) -> pool 4 -> Conv 3 (256) -> pool 4 ->
    Conv 3 (512) -> global average pooling -> softmax; BN after every conv.

    Input: 8 kHz waveforms. Size: 0.5 M parameters in the paper (559,114 here, with 10
    classes). Init: Glorot (Xavier) initialisation, as the paper states. Here: global average
    pooling is masked to each clip's valid samples, and each conv reads zeros past a clip's
    end, so that a clip in a batch is classified as it is alone.
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
