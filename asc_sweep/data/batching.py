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


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``, without waiting for a GPU: a CPU tensor goes to a CUDA device
    through pinned memory, copied asynchronously. (A plain ``.to`` from pageable memory
    waits until the GPU has run everything queued before it, so each training step's few
    random draws would keep the host from queueing the next step's kernels ahead.)"""
    if device.type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


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

    def window(self, i: int, full: int) -> tuple[int, int]:
        """(start, samples) of item ``i`` of ``full`` samples: a random crop (drawn from
        ``rng``) when training and the clip is longer than the crop, else the whole clip."""
        if self.crop_samples is not None and full > self.crop_samples:
            return int(self.rng.integers(0, full - self.crop_samples + 1)), self.crop_samples
        return 0, full

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        wave = self.source[self.indices[i]]
        start, n = self.window(i, len(wave))
        return np.array(wave[start : start + n], dtype=np.float32), self.labels[i]


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
    reproducible from ``seed`` and the epoch number. A pool's last clip, were it left alone in
    its batch, joins the batch before it: batch norm cannot train on one clip whose last map is
    a single value per channel (short clips, few bands), and one clip's statistics are noise
    anyway.
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
            cut = list(range(0, len(pool), self.batch_size))
            if len(cut) > 1 and len(pool) - cut[-1] == 1:
                cut.pop()  # a last clip alone joins the batch before it (see the class)
            for b, e in zip(cut, [*cut[1:], len(pool)], strict=True):
                batch = pool[b:e].tolist()
                if len(batch) >= self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class ResidentBatches:
    """The batches a ``DataLoader`` over ``dataset`` and ``sampler`` would give, built on
    ``device`` from the clips held there for the whole run.

    The clips are copied once into one flat tensor; each batch is then one gather on the
    device (crop, pad, stack), with no per-clip work on the host and no host-to-device copy.
    Crops are drawn from the dataset's random stream in the same order as the loader draws
    them, so both give the same batches, bit for bit, and a checkpoint restores either. As
    with the loader, the lengths come on the host (pinned where the clips are on a GPU): what
    plans work from them (segment voting) reads them without waiting for the device.
    """

    def __init__(
        self, dataset: WaveformDataset, sampler: LengthBucketSampler, device: torch.device
    ) -> None:
        self.dataset, self.batch_sampler, self.device = dataset, sampler, device
        waves = [np.asarray(dataset.source[i], dtype=np.float32) for i in dataset.indices]
        self.sizes = [len(w) for w in waves]
        starts = np.cumsum([0, *self.sizes[:-1]]) if waves else np.zeros(0, np.int64)
        self.starts = [int(x) for x in starts]
        flat = np.concatenate(waves) if waves else np.zeros(1, np.float32)
        self.flat = torch.from_numpy(flat).to(device)
        self.labels = torch.tensor(dataset.labels, dtype=torch.long, device=device)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        # A DataLoader draws its workers' base seed from torch's (CPU) stream at every pass;
        # drawing it too keeps the runs' random streams, and so their results, the same.
        torch.empty((), dtype=torch.int64).random_()
        for batch in self.batch_sampler:
            windows = [self.dataset.window(i, self.sizes[i]) for i in batch]
            offsets = [self.starts[i] + start for i, (start, _) in zip(batch, windows, strict=True)]
            lengths = [n for _, n in windows]
            # The batch's integers in one asynchronous copy: the host never waits for the GPU.
            numbers = torch.tensor([offsets, lengths, batch], dtype=torch.long)
            starts, on_device, index = to_device(numbers, self.device)
            steps = torch.arange(max(lengths, default=0), device=self.device)
            inside = steps[None, :] < on_device[:, None]
            where = torch.where(inside, starts[:, None] + steps[None, :], 0)
            waves = torch.where(inside, self.flat[where], 0.0)
            host = numbers[1].pin_memory() if self.device.type == "cuda" else numbers[1]
            yield waves, host, self.labels[index]
