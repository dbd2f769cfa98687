"""One fold of one dataset, ready to train on: cached waveforms, labels, train/val/test indices."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from asc_sweep.data import load_dataset
from asc_sweep.data.base import DataError, DatasetIndex
from asc_sweep.data.batching import (
    LengthBucketSampler,
    ResidentBatches,
    WaveformDataset,
    pad_batch,
)
from asc_sweep.data.cache import WaveformCache, open_cache
from asc_sweep.data.check import read_skip_list
from asc_sweep.data.splits import carve_validation
from asc_sweep.sweep.config import RunConfig
from asc_sweep.sweep.recipes import NATIVE_RATE_CAP


@dataclass(frozen=True)
class FoldData:
    index: DatasetIndex
    cache: WaveformCache
    labels: list[int]  # class index of every clip, in index order
    train: list[int]
    val: list[int]
    test: list[int]
    skipped: list[str]
    upsampled: int = 0  # clips whose native rate is below the run's

    @property
    def classes(self) -> list[str]:
        return list(self.index.classes)


def native_rates(index: DatasetIndex) -> Counter[int]:
    """How many clips the dataset holds at each sample rate (read from the file headers)."""
    rates: Counter[int] = Counter()
    for clip in index.clips:
        try:
            rates[int(sf.info(str(index.root / clip.path)).samplerate)] += 1
        except (sf.LibsndfileError, RuntimeError, OSError):
            continue  # reported, with its name, when the cache decodes it
    return rates


def native_rate(rates: Counter[int]) -> int:
    """The dataset's rate: the median over its clips (most datasets have one)."""
    if not rates:
        return NATIVE_RATE_CAP
    values = np.repeat(list(rates), list(rates.values()))
    return int(np.sort(values)[len(values) // 2])


def prepare_fold(
    config: RunConfig, progress: Callable[[int, int], None] | None = None
) -> tuple[RunConfig, FoldData]:
    """Read the dataset, leave out the skip list, resolve ``sample_rate: null`` to the data's
    native rate, split the fold, open (or build) the cache: ``progress(done, total)`` is
    called as its clips are decoded, where it is built."""
    skipped: set[str] = set()
    if config.skip_list:
        skipped = read_skip_list(Path(config.skip_list))
    index = load_dataset(config.dataset, config.data_root, strict=not config.skip_list)
    if skipped:
        index = index.without(skipped)
    rates = native_rates(index)
    config = config.with_native_rate(native_rate(rates))
    upsampled = sum(n for rate, n in rates.items() if rate < config.rate)
    split = index.split(config.fold)
    untrained, _ = index.fold_problems(config.fold)
    if untrained:
        raise DataError("\n".join(untrained))
    labels = [index.label_index(c.label) for c in index.clips]
    groups = [c.group for c in index.clips]
    names = [c.label for c in index.clips]
    train, val = carve_validation(split.train, names, groups, config.val_fraction, seed=config.seed)
    cache = open_cache(index, config.rate, progress=progress)
    data = FoldData(index, cache, labels, train, val, list(split.test), sorted(skipped), upsampled)
    return config, data


def make_loader(
    data: FoldData,
    indices: list[int],
    *,
    batch_size: int,
    crop_samples: int | None,
    shuffle: bool,
    seed: int,
    pin_memory: bool = False,
    resident: torch.device | None = None,
) -> DataLoader[tuple[object, ...]] | ResidentBatches:
    """Batches of ``indices``: length-bucketed, padded with lengths; crops when training.

    ``resident``: the clips are held on that device for the run and batches built there
    (`ResidentBatches`: the same batches). Otherwise they are built on the host; ``pin_memory``
    (for a CUDA run) builds them in page-locked memory, so that copying them to the GPU is
    asynchronous (``non_blocking``) and overlaps the previous step."""
    dataset = WaveformDataset(
        data.cache, indices, [data.labels[i] for i in indices], crop_samples, seed
    )
    sampler = LengthBucketSampler(
        [dataset.length(i) for i in range(len(dataset))], batch_size, shuffle=shuffle, seed=seed
    )
    if resident is not None:
        return ResidentBatches(dataset, sampler, resident)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=pad_batch,
        num_workers=0,
        pin_memory=pin_memory,
    )


def fold_bytes(data: FoldData) -> int:
    """Bytes the fold's clips (training, validation and test) take as float32."""
    return 4 * sum(int(data.cache.lengths[i]) for i in (*data.train, *data.val, *data.test))


def resident_device(choice: str, device: torch.device, data: FoldData) -> torch.device | None:
    """Where the fold's clips live for the run (``resident`` knob), or None for host batches.

    ``auto``: on a GPU when they take at most a quarter of its free memory (UrbanSound8K's
    8,732 clips at 22.05 kHz are 3 GB); never on a CPU, where the memory-mapped cache already
    is in memory and a copy would only double it. ``always``: on the run's device (a GPU
    that has not the room fails with CUDA's out-of-memory error). ``never``: host batches."""
    if choice == "never" or (choice == "auto" and device.type != "cuda"):
        return None
    if choice == "auto":
        free, _ = torch.cuda.mem_get_info(device)
        if fold_bytes(data) > free // 4:
            return None
    return device
