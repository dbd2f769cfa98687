"""Dataset adapters read each official layout, with its folds, groups and odd labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asc_sweep.data import DATASETS, DataError, DatasetIndex, load_dataset
from asc_sweep.data.audio import load_clip
from asc_sweep.data.splits import carve_validation
from asc_sweep.sweep.config import DATASET_NAMES

from . import layouts


def assert_sound_folds(index: DatasetIndex) -> None:
    """Train and test are disjoint, by clip and by group (no recording leaks across the split)."""
    for fold in index.folds:
        split = index.split(fold)
        assert split.train and split.test
        assert not set(split.train) & set(split.test)
        train_groups = {index.clips[i].group for i in split.train}
        test_groups = {index.clips[i].group for i in split.test}
        assert not train_groups & test_groups, (
            f"fold {fold} leaks groups {train_groups & test_groups}"
        )


def test_registry_names_match_the_spec_contract() -> None:
    assert set(DATASETS) == set(DATASET_NAMES)


@pytest.mark.parametrize(("name", "identifier"), [("dcase2016", False), ("dcase2017", True)])
def test_tut_development_sets(tmp_path: Path, name: str, identifier: bool) -> None:
    layouts.make_tut(tmp_path, with_identifier=identifier)
    index = load_dataset(name, tmp_path)
    assert index.folds == (1, 2, 3, 4)
    assert index.classes == ("beach", "cafe/restaurant", "home")  # a label with '/'
    assert len(index.clips) == 24
    assert {c.group for c in index.clips} == {f"{p}{n:03d}" for p in "abc" for n in range(4)}
    assert_sound_folds(index)
    assert sorted(i for f in index.folds for i in index.split(f).test) == list(range(24))


@pytest.mark.parametrize("name", ["tau2019", "tau2020"])
def test_tau_development_sets(tmp_path: Path, name: str) -> None:
    layouts.make_tau(tmp_path)
    index = load_dataset(name, tmp_path)
    assert index.folds == (1,)
    assert index.classes == ("airport", "metro_station")
    assert {c.group for c in index.clips} == {
        "barcelona-0",
        "barcelona-1",
        "helsinki-0",
        "helsinki-1",
    }
    assert len(index.split(1).train) == len(index.split(1).test) == 8
    assert_sound_folds(index)


def test_esc50_and_esc10(tmp_path: Path) -> None:
    layouts.make_esc50(tmp_path)
    esc50 = load_dataset("esc50", tmp_path)
    assert esc50.folds == (1, 2, 3, 4, 5) and len(esc50.clips) == 30
    assert all(c.path.startswith("audio/") for c in esc50.clips)
    assert_sound_folds(esc50)
    esc10 = load_dataset("esc10", tmp_path)
    assert esc10.classes == ("dog", "rain") and len(esc10.clips) == 20


def test_urbansound8k_mixed_rates_channels_and_lengths(tmp_path: Path) -> None:
    layouts.make_urbansound8k(tmp_path)
    index = load_dataset("urbansound8k", tmp_path)
    assert index.folds == (1, 2, 3) and index.classes == ("air_conditioner", "dog_bark")
    assert_sound_folds(index)
    lengths = set()
    for n, clip in enumerate(index.clips):
        _, _, subtype, seconds, _ = layouts.US8K_FORMATS[n % len(layouts.US8K_FORMATS)]
        wave = load_clip(tmp_path / clip.path, 16000)
        assert wave.ndim == 1 and wave.dtype == np.float32  # stereo downmixed to mono
        extra = round(layouts.ADPCM_BLOCK_SECONDS * 16000) if subtype == "IMA_ADPCM" else 0
        assert -1 <= len(wave) - seconds * 16000 <= 1 + extra  # resampled from `rate` to 16 kHz
        assert np.abs(wave).max() > 0.1
        lengths.add(len(wave))
    assert len(lengths) == len(layouts.US8K_FORMATS)


def test_a_clip_at_an_odd_rate_resamples_in_bounded_memory(tmp_path: Path) -> None:
    """Resampling 44101 Hz to 16 kHz exactly would build 16000 filters of 44101 taps (11 GB);
    the ratio is approximated within MAX_RATIO_TERM instead, and the result is what an exact
    polyphase resampler (scipy's) gives. The rates recorders use stay exact."""
    from scipy.signal import resample_poly

    from asc_sweep.data.audio import MAX_RATIO_TERM, _ratio_terms, resample

    for orig, new in ((44100, 16000), (48000, 22050), (192000, 11025), (8000, 44100)):
        assert _ratio_terms(orig, new) == (orig, new)
    for orig in (44101, 22222, 1001, 767_999):
        o, n = _ratio_terms(orig, 16000)
        assert max(o, n) <= MAX_RATIO_TERM and abs(n / o * orig / 16000 - 1) <= 125e-6
    t = np.arange(44101) / 44101
    wave = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 5000 * t)).astype(
        np.float32
    )
    ours = resample(wave, 44101, 16000)
    exact = resample_poly(wave.astype(np.float64), 16000, 44101)
    assert abs(len(ours) - len(exact)) <= 2
    middle = slice(200, min(len(ours), len(exact)) - 200)
    assert np.abs(ours[middle] - exact[middle]).max() < 0.01


def test_csv_layout(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path)
    index = load_dataset("csv", tmp_path)
    assert index.folds == (1, 2) and len(index.clips) == 8
    assert_sound_folds(index)


def test_folder_layout_gets_stratified_group_aware_folds(tmp_path: Path) -> None:
    layouts.make_folder(tmp_path)
    index = load_dataset("folder", tmp_path)
    assert index.folds == (1, 2, 3, 4)
    assert_sound_folds(index)
    for fold in index.folds:
        labels = [index.clips[i].label for i in index.split(fold).test]
        assert labels.count("park") == labels.count("street") == 4  # stratified
    assert load_dataset("folder", tmp_path).clips == index.clips  # deterministic


def test_path_escaping_the_root_names_file_and_line(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path, rows=[("../secret.wav", "a", 1, "g"), ("ok.wav", "a", 2, "h")])
    layouts.write_wav(tmp_path / "ok.wav")
    with pytest.raises(
        DataError, match=r"meta.csv:2: path '../secret.wav' leaves the dataset folder"
    ):
        load_dataset("csv", tmp_path)
    lenient = load_dataset("csv", tmp_path, strict=False)
    assert [c.path for c in lenient.clips] == ["ok.wav"] and len(lenient.problems) == 1


def test_missing_metadata_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"meta/esc50\.csv: metadata file not found"):
        load_dataset("esc50", tmp_path)
    with pytest.raises(DataError, match="unknown dataset 'audioset'"):
        load_dataset("audioset", tmp_path)
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dataset("csv", tmp_path / "nowhere")
    layouts.make_csv(tmp_path)
    with pytest.raises(DataError, match="no fold 7; folds: 1, 2"):
        load_dataset("csv", tmp_path).split(7)


def test_validation_is_carved_by_group(tmp_path: Path) -> None:
    layouts.make_tut(tmp_path, with_identifier=True)
    index = load_dataset("dcase2017", tmp_path)
    split = index.split(1)
    labels = [c.label for c in index.clips]
    groups = [c.group for c in index.clips]
    train, val = carve_validation(split.train, labels, groups, fraction=0.3, seed=0)
    assert sorted(train + val) == sorted(split.train) and val
    assert not {groups[i] for i in train} & {groups[i] for i in val}


def test_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path)
    before = load_dataset("csv", tmp_path).fingerprint()
    assert load_dataset("csv", tmp_path).fingerprint() == before
    layouts.write_wav(tmp_path / "clips/a_0.wav", seconds=0.7)
    assert load_dataset("csv", tmp_path).fingerprint() != before
