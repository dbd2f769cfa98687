"""What every architecture shares: its construction arguments and masked pooling over time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn


class BatchNorm1d(nn.BatchNorm1d):
    """Batch norm that trains on a batch of one value per channel (see ``_one_value``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _one_value(self, x) if _single(self, x) else super().forward(x)


class BatchNorm2d(nn.BatchNorm2d):
    """Batch norm that trains on a batch of one value per channel (see ``_one_value``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _one_value(self, x) if _single(self, x) else super().forward(x)


def _single(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> bool:
    return bn.training and x.numel() == x.shape[1]


def _one_value(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """A training batch that holds one value per channel (one short clip with few bands, at
    ``batch_size: 1``) has no batch statistics: torch raises. It is normalised with the running
    statistics instead, as evaluation does, and leaves them as they are."""
    return nn.functional.batch_norm(
        x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
    )


@dataclass(frozen=True)
class ModelSpec:
    """What a builder needs to know about the data."""

    n_classes: int
    n_mels: int = 64
    sample_rate: int = 32000


class AscModel(nn.Module):
    """Base of every architecture.

    ``forward(x, lengths)``: ``x`` is log-mel ``(batch, n_mels, frames)`` or waveform
    ``(batch, samples)`` as ``input_kind`` says; ``lengths`` are the valid frames (samples) of
    each clip, so that padding never reaches the pooled clip embedding. Returns logits.
    """

    input_kind: ClassVar[Literal["logmel", "waveform"]] = "logmel"
    # A frame-wise model classifies each frame (with its context) on its own and pools the
    # frames' logits; it implements ``frame_logits`` and can train on frame targets.
    frame_wise: ClassVar[bool] = False

    def frame_logits(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame logits ``(batch, classes, frames')`` and the mask of valid frames
        ``(batch, frames')``: frame-wise models only."""
        raise NotImplementedError(f"{type(self).__name__} is not a frame-wise model")


def valid_steps(lengths: torch.Tensor, factor: int, steps: int) -> torch.Tensor:
    """Valid positions left after downsampling time by ``factor`` (at least one per clip)."""
    return torch.clamp((lengths + factor - 1) // factor, min=1, max=steps)


def time_mask(lengths: torch.Tensor, factor: int, steps: int) -> torch.Tensor:
    """(batch, steps) boolean mask of the positions that come from real audio."""
    return steps_mask(valid_steps(lengths, factor, steps), steps)


def unpadded_steps(
    lengths: torch.Tensor, layers: Sequence[tuple[int, int]], steps: int
) -> torch.Tensor:
    """Valid positions left after a chain of unpadded convolutions and poolings over time,
    each ``(kernel, stride)``: those whose receptive field lies within the clip, which are the
    positions the clip has when it is alone (at least one per clip). Counting
    ``lengths / factor`` instead kept a few positions whose fields reach past the clip's end
    into its padding, which a clip alone does not have."""
    for kernel, stride in layers:
        lengths = conv_steps(lengths, kernel, stride)
    return torch.clamp(lengths, min=1, max=steps)


def conv_steps(lengths: torch.Tensor, kernel: int, stride: int, padding: int = 0) -> torch.Tensor:
    """Positions a convolution or pooling over time leaves of ``lengths`` positions."""
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


def steps_mask(valid: torch.Tensor, steps: int) -> torch.Tensor:
    """(batch, steps) boolean mask of each clip's first ``valid`` positions."""
    return torch.arange(steps, device=valid.device)[None, :] < valid[:, None]


def zero_past(x: torch.Tensor, valid: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``x`` with each clip's positions along ``dim`` (time) from its ``valid`` count on set to
    zero: what a convolution reads past the tensor's edge when the clip is alone.

    A layer's output past a clip's end is not zero in a batch (a "same" convolution's window
    reaches back into the clip, and batch norm shifts what it reads), so the next layer would
    see a short clip batched with a longer one otherwise than alone. Architectures call this
    before every layer that reads over time, with ``valid`` the positions the clip has alone
    there, so that its figures do not depend on what it was batched with. On a CPU a batch
    that no clip leaves short is returned as it is; on a GPU the multiply always runs, since
    asking would wait for the device.
    """
    steps = x.shape[dim]
    if valid.device.type == "cpu" and bool((valid >= steps).all()):
        return x
    shape = [1] * x.dim()
    shape[0], shape[dim] = x.shape[0], steps
    return x * steps_mask(valid, steps).view(shape).to(x.device, x.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of ``x`` (..., T) where ``mask`` (batch, T) is true.

    Sums and counts in float32 whatever ``x``'s dtype (under bf16 autocast, a frame count above
    256 is not representable in bf16, nor is a sum over hundreds of frames), then returns
    ``x``'s dtype.
    """
    m = mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[1]).float()
    return ((x.float() * m).sum(-1) / m.sum(-1).clamp(min=1)).to(x.dtype)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over the last axis of ``x`` (..., T) where ``mask`` (batch, T) is true."""
    m = mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[1])
    return x.masked_fill(~m, torch.finfo(x.dtype).min).amax(-1)


# Mask draws are uniform 31-bit integers: random_() on int32 gives [0, 2**31).
_DRAW_RANGE = 2**31


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` with a cheaper mask on CPUs; the same function elsewhere.

    torch draws a CPU dropout mask with ``bernoulli_``, one generator call and a float
    comparison per element: on the demo's runs 20% of an MLP step and 6% of a dcase2018_cnn
    step (1 thread). Drawing 31-bit integers with ``random_`` from the same generator (so
    seeds and checkpointed random state govern it as before) and keeping those at or above
    ``p * 2**31`` is 2.5-4x faster for the same Bernoulli(1 - p) mask (p exact to 2**-31),
    scaled by 1 / (1 - p) as torch scales it. CUDA keeps torch's fused kernel.
    """
    if not training or p == 0.0 or x.device.type != "cpu":
        return nn.functional.dropout(x, p, training)
    if p >= 1.0:
        return x * 0.0
    draws = torch.empty(x.shape, dtype=torch.int32).random_()
    keep = (draws >= round(p * _DRAW_RANGE)).to(x.dtype)
    return x * keep.mul_(1.0 / (1.0 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (no parameters: state dicts are unchanged)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(input)
        return dropout(input, self.p, self.training)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (batch-norm running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
