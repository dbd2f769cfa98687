"""CP-ResNet (Koutini, Eghbal-zadeh, Dorfer, Widmer, "The receptive field as a regularizer in
deep convolutional neural networks for acoustic scene classification", EUSIPCO 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.models.common import (
    AscModel,
    BatchNorm2d,
    ModelSpec,
    masked_mean,
    time_mask,
    zero_past,
)


class _Basic(nn.Module):
    """A residual block of two convs whose kernel is 3 or 1 (1 once the receptive field is spent)."""

    def __init__(self, c_in: int, c_out: int, k1: int, k2: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, k1, padding=k1 // 2, bias=False)
        self.bn1 = BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, k2, padding=k2 // 2, bias=False)
        self.bn2 = BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), BatchNorm2d(c_out))
            if c_in != c_out
            else nn.Identity()
        )
        self.k1, self.k2 = k1, k2

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``valid``: each clip's positions over time when it is alone; past them the 3x3
        conv reads zeros, as alone (a 1x1 conv reads no neighbour)."""
        y = F.relu(self.bn1(self.conv1(zero_past(x, valid) if self.k1 > 1 else x)))
        if self.k2 > 1:
            y = zero_past(y, valid)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class CPResNet(AscModel):
    """CP-ResNet: a 5x5 stride-2 stem (BN, ReLU), then three stages of residual blocks
    (width, 2 x width, 4 x width) with 2x2 max pooling after stage-1 blocks 1, 2 and 4; each
    3x3 kernel becomes 1x1 once the receptive field would exceed the limit that ``rho`` sets,
    which is the paper's regulariser; a 1x1 conv to the classes, BN, and global average
    pooling.

    Input: 256 log-mel bands at 22.05 kHz in the paper (2048-point window). Size: depends on
    rho and width (the paper's rho=7, width 128 model has about 3.5 M parameters; not checked
    here). Init: He (Kaiming) normal for convs, as in the authors' code. Here: pooling over
    time is masked to the valid frames, and each 3x3 or 5x5 conv reads zeros past a clip's end,
    so that a clip in a batch is classified as it is alone; ``rho`` defaults to 7.
    """

    def __init__(self, spec: ModelSpec, width: int = 128, rho: int = 7) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 5, stride=2, padding=2, bias=False),
            BatchNorm2d(width),
            nn.ReLU(),
        )
        # The receptive field grows by (k - 1) * jump per conv; kernels are 1 beyond the limit.
        limit = 2 * rho + 1 + 4  # in stem-output units, after the 5x5 stem
        field, jump = 5, 2
        blocks: list[nn.Module] = []
        self.pool_after: set[int] = set()
        c_in = width
        plan = [(width, 4, {0, 1, 3}), (2 * width, 4, set()), (4 * width, 4, set())]
        for c_out, n_blocks, pools in plan:
            for b in range(n_blocks):
                kernels = []
                for _ in range(2):
                    k = 3 if field + 2 * jump <= limit * 2 else 1
                    field += (k - 1) * jump
                    kernels.append(k)
                blocks.append(_Basic(c_in, c_out, *kernels))
                c_in = c_out
                if b in pools:
                    self.pool_after.add(len(blocks) - 1)
                    jump *= 2
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Sequential(
            nn.Conv2d(c_in, spec.n_classes, 1, bias=False), BatchNorm2d(spec.n_classes)
        )
        self.factor = 2 * 2 ** len(self.pool_after)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        x = F.pad(x, (0, -x.shape[-1] % self.factor))
        x = self.stem(x)
        valid = -(-lengths // self.factor) * (self.factor // 2)  # alone: whole poolings
        for i, block in enumerate(self.blocks):
            x = block(x, valid)
            if i in self.pool_after:
                x = F.max_pool2d(x, 2, ceil_mode=True)
                valid = valid // 2
        x = self.classifier(x).mean(dim=2)  # (B, classes, T')
        return masked_mean(x, time_mask(lengths, self.factor, x.shape[-1]))
