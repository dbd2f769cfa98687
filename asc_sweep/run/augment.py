"""Training-time augmentation: on waveforms (random gain), on log-mel (SpecAugment's masks,
band shifts, random filters, Freq-MixStyle) and on batches (mixup).

Random draws come from the CPU's streams (the same on every device, so a run's draws do not
depend on where it runs) and reach a GPU through :func:`to_device`, without a wait."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from asc_sweep.data.batching import to_device
from asc_sweep.models.common import time_mask


class SpecAugment(nn.Module):
    """Two frequency masks (up to ``freq`` bands) and two time masks (up to ``time`` frames)
    per clip, only while training (Park et al., Interspeech 2019). A masked region is set to
    zero, the normalised mean.

    :meth:`scaled` sizes the masks as PANNs do (Kong et al. 2020: 8 of 64 bands, 64 of 1,001
    frames): an eighth of the bands and a sixteenth of the training example's frames each, so a
    2 s crop is not masked three times harder than a 10 s clip.

    Each mask's width is uniform in ``[0, limit)`` and its start uniform over the positions
    where it fits, as torchaudio's ``iid_masks`` draw them; but a clip's time masks fall
    within its own ``frames``, so a short clip batched with longer ones is masked as it would
    be alone (torchaudio places them over the batch's length, where most of a short clip's
    masks landed in its padding and hid nothing). The draws come from torch's CPU stream, like
    every other augmentation's, so a run draws the same masks on any device.
    """

    def __init__(self, freq: int = 8, time: int = 20) -> None:
        super().__init__()
        self.freq, self.time = freq, time

    @classmethod
    def scaled(cls, bands: int, frames: int) -> SpecAugment:
        return cls(freq=max(1, round(bands / 8)), time=max(1, round(frames / 16)))

    def forward(self, x: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, M, T)``; ``frames`` ``(B,)`` each clip's valid frames (all ``T``
        if not given)."""
        if not self.training:
            return x
        batch, bands, steps = x.shape
        # (mask, {width, start}, clip): two frequency masks, then two time masks.
        u = to_device(torch.rand(4, 2, batch), x.device)
        ones = torch.ones(batch, device=x.device)
        clip = ones * steps if frames is None else frames.to(x.device, torch.float32)
        hidden = torch.zeros(batch, bands, steps, dtype=torch.bool, device=x.device)
        for axis, (limit, extent) in enumerate(((self.freq, ones * bands), (self.time, clip))):
            index = torch.arange(bands if axis == 0 else steps, device=x.device)
            for draw in u[2 * axis : 2 * axis + 2]:
                width = draw[0] * limit
                start = draw[1] * (extent - width).clamp(min=0)
                # A mask wider than the clip covers all of it (as torchaudio's does), no more.
                end = torch.minimum(start + width, extent)
                inside = (index >= start.long()[:, None]) & (index < end.long()[:, None])
                hidden |= inside[:, :, None] if axis == 0 else inside[:, None, :]
        return x.masked_fill(hidden, 0.0)


def mixup(
    x: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    rng: np.random.Generator,
    steps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example with a shuffled partner (Zhang et al., ICLR 2018); soft targets.

    ``steps`` (B,) are each example's valid frames (samples, for a waveform) along the last
    axis: they are mixed only where the partner has frames too, and elsewhere keep their own.
    A padded frame is digital silence, in normalised log-mel far below any recording (-38
    units in one measured batch): mixed in, it dragged down every frame of a longer clip past
    its short partner's end."""
    lam = float(rng.beta(alpha, alpha))
    perm = to_device(torch.from_numpy(rng.permutation(x.shape[0])), x.device)
    mixed = lam * x + (1 - lam) * x[perm]
    if steps is not None:
        both = time_mask(steps, 1, x.shape[-1]) & time_mask(steps[perm], 1, x.shape[-1])
        mixed = torch.where(both.view(x.shape[0], *[1] * (x.dim() - 2), x.shape[-1]), mixed, x)
    return mixed, lam * targets + (1 - lam) * targets[perm]


def random_gain(waves: torch.Tensor, max_db: float) -> torch.Tensor:
    """Each clip scaled by a gain drawn uniformly in +/- ``max_db`` dB (torch's random stream)."""
    db = (torch.rand(waves.shape[0], 1) * 2 - 1) * max_db
    return waves * to_device((10 ** (db / 20)).to(waves.dtype), waves.device)


def shift_bands(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each clip's log-mel ``(B, M, T)`` shifted along the mel axis by a whole number of bands
    drawn in +/- ``max_shift``; bands shifted in are zero (the normalised mean). A cheap
    stand-in for pitch shifting (a constant shift on the mel scale is close to a pitch shift
    in the upper, logarithmic part of the scale)."""
    batch, bands = x.shape[0], x.shape[1]
    shift = to_device(torch.randint(-max_shift, max_shift + 1, (batch, 1)), x.device)
    source = torch.arange(bands, device=x.device)[None, :] - shift  # (B, M)
    valid = (source >= 0) & (source < bands)
    index = source.clamp(0, bands - 1)[:, :, None].expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, index) * valid[:, :, None].to(x.dtype)


def freq_mixstyle(
    x: torch.Tensor, probability: float, frames: torch.Tensor | None = None, alpha: float = 0.3
) -> torch.Tensor:
    """Freq-MixStyle (Schmid et al., DCASE 2022): with ``probability``, each clip's per-band
    mean and standard deviation over time are mixed with those of another clip of the batch
    (weight ~ Beta(alpha, alpha)). The per-band statistics carry the microphone, room and
    background of a recording location; mixing them teaches the network to ignore them.

    ``frames`` (B,) are each clip's valid frames: the statistics are of those alone, and the
    padding past them is left as it is. (Counted in, the padding of a short clip in a batch of
    long ones, far below any sound after normalisation, dominated its statistics, and mixing
    passed them on to the clip it was paired with.)"""
    if probability <= 0 or x.shape[0] < 2 or float(torch.rand(())) >= probability:
        return x
    if frames is None:
        frames = torch.full((x.shape[0],), x.shape[2], device=x.device)
    valid = time_mask(frames, 1, x.shape[2])  # (B, T)
    mask = valid[:, None, :].to(x.dtype)
    count = mask.sum(dim=2, keepdim=True).clamp(min=1)  # (B, 1, 1)
    mean = (x * mask).sum(dim=2, keepdim=True) / count
    # The unbiased variance (torch's default); a clip of one frame has none.
    var = ((x - mean).square() * mask).sum(dim=2, keepdim=True) / (count - 1).clamp(min=1)
    std = (var + 1e-5).sqrt()
    normed = (x - mean) / std
    lam = torch.distributions.Beta(alpha, alpha).sample((x.shape[0], 1, 1)).to(x.dtype)
    lam, perm = to_device(lam, x.device), to_device(torch.randperm(x.shape[0]), x.device)
    mixed_mean = lam * mean + (1 - lam) * mean[perm]
    mixed_std = lam * std + (1 - lam) * std[perm]
    return torch.where(valid[:, None, :], normed * mixed_std + mixed_mean, x)


def random_filter(x: torch.Tensor, max_db: float, band_std: torch.Tensor) -> torch.Tensor:
    """FilterAugment (Nam, Kim & Park, ICASSP 2022), its piecewise-linear form: each clip's
    log-mel ``(B, M, T)`` gets a smooth random gain over the mel axis, drawn through 3 to 6
    control points at random bands with gains uniform in +/- ``max_db`` dB, linearly
    interpolated between them. It simulates what a recording location's microphone and room do
    to the spectrum (a fixed coloration), so the network learns to ignore it.

    ``x`` is normalised per band: ``band_std`` ``(M, 1)`` (the front end's fitted dB
    standard deviations) turns the gain in dB into normalised units.
    """
    batch, bands = x.shape[0], x.shape[1]
    points = int(torch.randint(3, 7, ()))
    # Control points: both ends of the mel axis and points - 2 random bands between them.
    inner = torch.rand(batch, points - 2) * (bands - 1)
    ends = torch.tensor([0.0, bands - 1.0]).expand(batch, 2)
    where, _ = torch.sort(torch.cat([ends, inner], dim=1), dim=1)  # (B, P)
    gain = (torch.rand(batch, points) * 2 - 1) * max_db  # (B, P)
    band = torch.arange(bands, dtype=torch.float32)
    # For every band, the segment [where[k], where[k+1]] holding it, and the position within.
    k = torch.searchsorted(where.contiguous(), band.expand(batch, bands).contiguous()) - 1
    k = k.clamp(0, points - 2)
    left, right = where.gather(1, k), where.gather(1, k + 1)
    t = ((band - left) / (right - left).clamp_min(1e-6)).clamp(0, 1)
    curve = gain.gather(1, k) * (1 - t) + gain.gather(1, k + 1) * t  # (B, M), dB
    curve = to_device(curve.to(x.dtype), x.device)[:, :, None] / band_std.to(x.dtype)[None]
    return x + curve
