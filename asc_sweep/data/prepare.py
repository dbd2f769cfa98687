"""One fold of one dataset, ready to train on: cached waveforms, labels, train/val/test indices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from asc_sweep.data import load_dataset
from asc_sweep.data.base import DatasetIndex
from asc_sweep.data.batching import LengthBucketSampler, WaveformDataset, pad_batch
from asc_sweep.data.cache import WaveformCache, open_cache
from asc_sweep.data.check import read_skip_list
from asc_sweep.data.splits import carve_validation
from asc_sweep.sweep.config import RunConfig


@dataclass(frozen=True)
class FoldData:
    index: DatasetIndex
    cache: WaveformCache
    labels: list[int]  # class index of every clip, in index order
    train: list[int]
    val: list[int]
    test: list[int]
    skipped: list[str]

    @property
    def classes(self) -> list[str]:
        return list(self.index.classes)


def prepare_fold(config: RunConfig) -> FoldData:
    """Read the dataset, leave out the skip list, split the fold, open (or build) the cache."""
    skipped: set[str] = set()
    if config.skip_list:
        skipped = read_skip_list(Path(config.skip_list))
    index = load_dataset(config.dataset, config.data_root, strict=not config.skip_list)
    if skipped:
        index = index.without(skipped)
    split = index.split(config.fold)
    labels = [index.label_index(c.label) for c in index.clips]
    groups = [c.group for c in index.clips]
    names = [c.label for c in index.clips]
    train, val = carve_validation(split.train, names, groups, config.val_fraction, seed=config.seed)
    cache = open_cache(index, config.sample_rate)
    return FoldData(index, cache, labels, train, val, list(split.test), sorted(skipped))


def make_loader(
    data: FoldData,
    indices: list[int],
    *,
    batch_size: int,
    crop_samples: int | None,
    shuffle: bool,
    seed: int,
) -> DataLoader[tuple[object, ...]]:
    """Batches of ``indices``: length-bucketed, padded with lengths; crops when training."""
    dataset = WaveformDataset(
        data.cache, indices, [data.labels[i] for i in indices], crop_samples, seed
    )
    sampler = LengthBucketSampler(
        [dataset.length(i) for i in range(len(dataset))], batch_size, shuffle=shuffle, seed=seed
    )
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=pad_batch, num_workers=0)
