"""Synthetic scenes: deterministic, location-disjoint folds, real energy above 4 kHz where designed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from asc_sweep.data import load_dataset
from asc_sweep.data.synth import CLASSES, GENERATORS, SynthSpec, generate, render_clip


def high_band_fraction(x: np.ndarray, sr: int, cutoff: float = 4000.0) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spectrum[f > cutoff].sum() / spectrum.sum())


def test_classes_built_to_need_high_frequencies_have_them() -> None:
    """The scenes alone (before the background mix): energy above 4 kHz where it was designed in."""
    fractions = {}
    for label in CLASSES:
        runs = []
        for loc in range(4):
            rng, loc_rng = np.random.default_rng([1, loc]), np.random.default_rng([2, loc])
            runs.append(high_band_fraction(GENERATORS[label](64000, 32000, rng, loc_rng), 32000))
        fractions[label] = float(np.mean(runs))
    for label in ("rain", "water", "insects", "birdsong"):
        assert fractions[label] > 0.2, (label, fractions[label])
    for label in ("wind", "traffic", "babble", "machinery"):
        assert fractions[label] < 0.05, (label, fractions[label])


def test_low_bands_of_the_paired_classes_match() -> None:
    """Below 4 kHz rain sounds like water and insects like wind, at the same level: only the
    high band tells them apart (so an 8 kHz model cannot)."""
    spec = SynthSpec(seconds=2.0)

    def low_level(label: str) -> float:
        levels = []
        for loc in range(8):
            for take in range(4):
                x = render_clip(spec, label, loc, take).astype(np.float64)
                spectrum = np.abs(np.fft.rfft(x)) ** 2
                f = np.fft.rfftfreq(len(x), 1 / 32000)
                levels.append(10 * np.log10(spectrum[(f > 100) & (f < 3500)].sum()))
        return float(np.mean(levels))

    assert abs(low_level("rain") - low_level("water")) < 1.5
    assert abs(low_level("insects") - low_level("wind")) < 1.5


def test_deterministic_finite_and_location_disjoint(tmp_path: Path) -> None:
    spec = SynthSpec(classes=4, clips_per_class=8, seconds=1.0, sample_rate=16000, seed=3)
    generate(tmp_path / "a", spec, workers=1)
    generate(tmp_path / "b", spec, workers=2)
    a = (tmp_path / "a" / "meta.csv").read_text()
    assert a == (tmp_path / "b" / "meta.csv").read_text()
    index = load_dataset("synth", tmp_path / "a")
    assert index.folds == (1, 2, 3, 4) and len(index.clips) == 32
    for clip in index.clips:
        x, sr = sf.read(tmp_path / "a" / clip.path)
        y, _ = sf.read(tmp_path / "b" / clip.path)
        assert sr == 16000 and len(x) == 16000 and np.array_equal(x, y)
        assert np.isfinite(x).all() and 0.001 < np.abs(x).max() < 1.0
    for fold in index.folds:
        split = index.split(fold)
        assert not {index.clips[i].group for i in split.train} & {
            index.clips[i].group for i in split.test
        }


def test_cli_synth_writes_the_layout(tmp_path: Path, cli: Callable[..., Any]) -> None:
    result = cli(
        "data",
        "synth",
        tmp_path / "s",
        "--classes",
        "3",
        "--clips-per-class",
        "8",
        "--seconds",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    assert len(load_dataset("synth", tmp_path / "s").clips) == 24
    bad = cli("data", "synth", tmp_path / "t", "--clips-per-class", "8", "--seconds", "100")
    assert bad.exit_code == 2
    cut = cli("data", "synth", tmp_path / "u", "--classes", "2", "--clips-per-class", "8",
              "--seconds", "0.5", "--short-share", "1")  # fmt: skip
    assert cut.exit_code == 0, cut.output
    lengths = {sf.info(p).frames for p in (tmp_path / "u" / "audio").rglob("*.wav")}
    assert len(lengths) > 8 and max(lengths) <= 16000  # every clip an excerpt of its own length
    assert cli("data", "synth", tmp_path / "v", "--short-share", "2").exit_code == 2


def test_a_share_of_clips_cut_short_gives_clips_of_many_lengths(tmp_path: Path) -> None:
    """``short_share`` cuts that share of the clips to excerpts of 0.1 s up to the clip's
    length, as UrbanSound8K's are; the clips left whole are those of ``short_share=0``, and the
    excerpts are parts of them. Deterministic, like everything else."""
    from asc_sweep.data.synth import SHORTEST_SECONDS

    whole = SynthSpec(classes=4, clips_per_class=16, seconds=1.0, sample_rate=16000, seed=3)
    cut = SynthSpec(**{**whole.__dict__, "short_share": 0.5})
    generate(tmp_path / "whole", whole, workers=1)
    generate(tmp_path / "cut", cut, workers=2)
    generate(tmp_path / "again", cut, workers=1)
    index = load_dataset("synth", tmp_path / "cut")
    lengths = []
    for clip in index.clips:
        x, _ = sf.read(tmp_path / "cut" / clip.path, dtype="float32")
        full, _ = sf.read(tmp_path / "whole" / clip.path, dtype="float32")
        assert np.array_equal(x, sf.read(tmp_path / "again" / clip.path, dtype="float32")[0])
        assert SHORTEST_SECONDS * 16000 <= len(x) <= len(full) == 16000
        starts = np.flatnonzero(full == x[0])  # where the excerpt may begin in its clip
        assert any(np.array_equal(full[i : i + len(x)], x) for i in starts)
        lengths.append(len(x))
    short = sum(n < 16000 for n in lengths)
    assert 16 <= short <= 48 and len(set(lengths)) > short // 2  # about half, of many lengths
    assert (tmp_path / "cut" / "meta.csv").read_text() == (
        tmp_path / "whole" / "meta.csv"
    ).read_text()
    with pytest.raises(ValueError, match="short_share must be between 0 and 1"):
        SynthSpec(short_share=1.5)
