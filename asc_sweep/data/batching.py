"""Batches of variable-length clips: length buckets, padding with lengths, random crops.

Training draws a random crop of ``crop_samples`` from each clip (clips shorter than that are
kept whole); evaluation uses whole clips. Either way a batch is ``(waves, lengths, labels)``
with ``waves`` zero-padded to the longest clip, so models pool over time with a mask built
from ``lengths`` and padding never counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class WaveformSource(Protocol):
    """Indexable waveforms (a ``WaveformCache``, or a list of arrays)."""

    def __getitem__(self, i: int) -> np.ndarray: ...

    def __len__(self) -> int: ...


class WaveformDataset(Dataset[tuple[np.ndarray, int]]):
    """Clips ``indices`` of a waveform source (a ``WaveformCache``) with integer labels."""

    def __init__(
        self,
        source: WaveformSource,
        indices: Sequence[int],
        labels: Sequence[int],
        crop_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        self.source, self.indices, self.labels = source, list(indices), list(labels)
        if len(self.indices) != len(self.labels):
            raise ValueError("indices and labels differ in length")
        self.crop_samples = crop_samples
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.indices)

    def length(self, i: int) -> int:
        """Samples item ``i`` will have (after cropping), without reading its audio."""
        full = len(self.source[self.indices[i]])
        return full if self.crop_samples is None else min(full, self.crop_samples)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        wave = self.source[self.indices[i]]
        if self.crop_samples is not None and len(wave) > self.crop_samples:
            start = int(self.rng.integers(0, len(wave) - self.crop_samples + 1))
            wave = wave[start : start + self.crop_samples]
        return np.array(wave, dtype=np.float32), self.labels[i]


def pad_batch(
    items: Sequence[tuple[np.ndarray, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[(wave, label), ...]`` -> ``(waves (B, T_max), lengths (B,), labels (B,))``, zero-padded."""
    lengths = torch.tensor([len(w) for w, _ in items], dtype=torch.long)
    waves = torch.zeros(len(items), int(lengths.max()) if len(items) else 0)
    for row, (wave, _) in enumerate(items):
        waves[row, : len(wave)] = torch.from_numpy(wave)
    labels = torch.tensor([label for _, label in items], dtype=torch.long)
    return waves, lengths, labels


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar length, so that little of each batch is padding.

    Items are sorted by length within pools of ``pool_batches`` batches (shuffled first when
    ``shuffle``), cut into batches, and the batches shuffled; every epoch differs but is
    reproducible from ``seed`` and the epoch number.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.pool = batch_size * pool_batches
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        batches: list[list[int]] = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            for b in range(0, len(pool), self.batch_size):
                batch = pool[b : b + self.batch_size].tolist()
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
