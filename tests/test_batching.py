"""Length-bucketed batches, padding with lengths, random training crops, whole clips at evaluation."""

from __future__ import annotations

import numpy as np

from asc_sweep.data.batching import LengthBucketSampler, WaveformDataset, pad_batch


def test_every_item_once_per_epoch_in_similar_length_batches() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1000, 100000, 500).tolist()
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=1)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(500))
    assert all(len(b) <= 16 for b in epoch0)
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch0])
    random_spread = np.mean([np.ptp(rng.choice(lengths, 16)) for _ in range(100)])
    assert spread < random_spread / 5  # far less padding than random batches
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    sampler.set_epoch(0)
    assert list(sampler) == epoch0  # reproducible


def test_a_last_clip_alone_joins_the_batch_before_it() -> None:
    """17 clips in batches of 16: one batch of 17, not 16 and 1 (batch norm cannot train on
    one short clip); 18 clips: 16 and 2, as before. Every clip still comes once."""
    for n, sizes in ((17, [17]), (18, [2, 16]), (33, [16, 17]), (1, [1])):
        epoch = list(LengthBucketSampler(list(range(100, 100 + n)), batch_size=16, seed=3))
        assert sorted(len(b) for b in epoch) == sizes, n
        assert sorted(i for b in epoch for i in b) == list(range(n))


def test_padding_keeps_lengths_and_labels() -> None:
    waves, lengths, labels = pad_batch([(np.ones(5, np.float32), 2), (np.ones(3, np.float32), 0)])
    assert waves.shape == (2, 5) and lengths.tolist() == [5, 3] and labels.tolist() == [2, 0]
    assert waves[1, 3:].abs().sum() == 0


def test_training_crops_and_whole_clips_at_evaluation() -> None:
    source = [np.arange(n, dtype=np.float32) for n in (100, 40, 250)]
    train = WaveformDataset(source, [0, 1, 2], [0, 1, 0], crop_samples=50, seed=0)
    starts = set()
    for _ in range(20):
        wave, _ = train[2]
        assert len(wave) == 50 and np.all(np.diff(wave) == 1)  # a contiguous crop
        starts.add(int(wave[0]))
    assert len(starts) > 5  # random positions
    assert len(train[1][0]) == 40  # shorter than the crop: kept whole
    assert [train.length(i) for i in range(3)] == [50, 40, 50]
    whole = WaveformDataset(source, [0, 1, 2], [0, 1, 0])
    assert [len(whole[i][0]) for i in range(3)] == [100, 40, 250]


def test_resident_batches_equal_the_host_loader_s_bit_for_bit() -> None:
    """Clips held on the device give the very batches the host loader builds: same crops
    (drawn from the same stream in the same order), padding, lengths and labels, every epoch."""
    import torch
    from torch.utils.data import DataLoader

    from asc_sweep.data.batching import ResidentBatches

    rng = np.random.default_rng(3)
    source = [rng.standard_normal(n).astype(np.float32) for n in rng.integers(20, 400, 37)]
    indices, labels = list(range(3, 37)), [i % 5 for i in range(3, 37)]

    def both(crop: int | None) -> tuple[DataLoader, ResidentBatches]:  # type: ignore[type-arg]
        made = []
        for _ in range(2):
            data = WaveformDataset(source, indices, labels, crop_samples=crop, seed=7)
            sampler = LengthBucketSampler([data.length(i) for i in range(len(data))], 6, seed=7)
            made.append((data, sampler))
        (d1, s1), (d2, s2) = made
        host = DataLoader(d1, batch_sampler=s1, collate_fn=pad_batch)
        return host, ResidentBatches(d2, s2, torch.device("cpu"))

    for crop in (100, None):
        host, resident = both(crop)
        assert len(host) == len(resident) == 6
        for epoch in range(3):
            host.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
            resident.batch_sampler.set_epoch(epoch)
            for a, b in zip(host, resident, strict=True):
                assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        assert host.dataset.rng.bit_generator.state == resident.dataset.rng.bit_generator.state  # type: ignore[attr-defined]
