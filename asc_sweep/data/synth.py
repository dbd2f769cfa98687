"""Procedurally generated acoustic scenes, for running the whole pipeline without a dataset.

Eight scene classes with real structure: rain, water, wind, insects, birdsong, traffic,
babble and machinery. Two pairs are built to differ *only above 4 kHz*: rain and water share
their low band (broadband noise) and differ in the high band (droplet clicks above 5.6 kHz
against a bubbling hiss at 4.4-5.4 kHz); wind and insects share gusty low-frequency noise and differ by cricket chirps at
5-7 kHz. Resampled to 8 kHz (Nyquist 4 kHz) those pairs become indistinguishable, so the
sample-rate ablation shows a real effect. Every clip is mixed with a background scene of
another class at a random SNR, over a noise floor, so that no model is trivially perfect.

Each class is recorded at several "locations": a location fixes the generator's parameters
(rain intensity, hum frequency, voice pitch, spectral colouring) and all its clips go to one
fold, so folds are location-disjoint as in DCASE.

``realism="field"`` makes the scenes behave like field recordings, where a model that fits
its training locations does not carry over to new ones: each location has its own
microphone (band limits and a resonance), room (reverberation of 0.1 to 1.2 s RT60) and
background (a noise bed with its own spectrum and a hum), all shared by every clip recorded
there, so that they are cues a network can memorise within a fold and that do not hold in
the next; per-clip SNR spreads from -3 to 20 dB; classes are imbalanced (the rarest has 40 %
of the clips of the most frequent). ``short_share`` cuts that share of the clips to an
excerpt of random length and offset (``SHORTEST_SECONDS`` up to the clip's length), as
UrbanSound8K's excerpts, up to 4 s and most of them 4 s, are cut from longer recordings: a
batch then holds clips of several lengths, and padding is exercised as on that dataset. The
clips left whole are those of ``short_share=0``, sample for sample. The output is the
``csv`` layout:
``OUT/audio/<label>/<location>_<n>.wav`` and ``OUT/meta.csv`` (filename,label,fold,group).
Everything is deterministic given the seed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

CLASSES = ("rain", "water", "wind", "insects", "birdsong", "traffic", "babble", "machinery")
FOLDS = 4
LOCATIONS_PER_CLASS = 8  # two per fold
REALISM = ("easy", "field")
SHORTEST_SECONDS = 0.1  # of a clip cut short (``short_share``): several 40 ms windows


@dataclass(frozen=True)
class SynthSpec:
    """What to generate."""

    classes: int = 8
    clips_per_class: int = 40
    seconds: float = 2.0
    sample_rate: int = 32000
    seed: int = 0
    realism: str = "easy"
    short_share: float = 0.0

    def __post_init__(self) -> None:
        if self.realism not in REALISM:
            raise ValueError(f"realism {self.realism!r} is not one of {', '.join(REALISM)}")
        if not 0.0 <= self.short_share <= 1.0:
            raise ValueError(f"short_share must be between 0 and 1, got {self.short_share:g}")
        if not 2 <= self.classes <= len(CLASSES):
            raise ValueError(f"classes must be 2..{len(CLASSES)}")
        if self.clips_per_class < LOCATIONS_PER_CLASS:
            raise ValueError(f"clips_per_class must be >= {LOCATIONS_PER_CLASS} (one per location)")
        if not 0.5 <= self.seconds <= 60:
            raise ValueError("seconds must be between 0.5 and 60")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError("sample_rate must be between 8000 and 96000")


# --- building blocks (all return float64 arrays of n samples) --------------------------------


def _white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean white noise, unit variance. Uniform draws are several times cheaper than
    Gaussian ones, and after band-pass filtering the result is Gaussian anyway."""
    return (rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(3.4641016)


@lru_cache(maxsize=256)
def _bandpass(lo: float, hi: float, sr: int) -> np.ndarray:
    """A 4th-order Butterworth band (second-order sections), clipped to what ``sr`` carries."""
    nyquist = sr / 2
    lo, hi = max(lo, 10.0), min(hi, 0.95 * nyquist)
    if lo <= 10.0:
        return np.asarray(butter(4, hi, btype="lowpass", fs=sr, output="sos"), dtype=np.float32)
    return np.asarray(butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos"), dtype=np.float32)


def _noise(
    n: int, sr: int, rng: np.random.Generator, lo: float, hi: float, tilt: float = 0.0
) -> np.ndarray:
    """Band-limited Gaussian noise, unit variance; ``tilt`` in (0, 1) darkens it (one-pole low-pass)."""
    x = sosfilt(_bandpass(lo, hi, sr), _white(n, rng))
    if tilt:
        x = lfilter([1.0 - tilt], [1.0, -tilt], x)
    return x / (np.std(x) + 1e-12)


def _slow_envelope(
    n: int, sr: int, rng: np.random.Generator, rate_hz: float, depth: float
) -> np.ndarray:
    """A smooth random loudness curve (gusts, passing sources) between 1 - depth and 1."""
    knots = max(2, int(n / sr * rate_hz) + 2)
    values = 1 - depth * rng.random(knots)
    step = 64  # interpolate on a coarse grid, then hold: the curve is slow anyway
    coarse = np.interp(np.arange(0, n, step), np.linspace(0, n, knots), values)
    return np.repeat(coarse, step)[:n]


def _events(
    n: int, sr: int, rng: np.random.Generator, rate_hz: float, kernel: np.ndarray
) -> np.ndarray:
    """Sparse events (Poisson times, random amplitudes) each shaped by ``kernel``."""
    count = rng.poisson(rate_hz * n / sr)
    starts = rng.integers(0, max(1, n - len(kernel)), count)
    amps = rng.uniform(0.3, 1.0, count) * rng.choice([-1, 1], count)
    x = np.zeros(n)
    # Add a scaled copy of the kernel at each start (sparse: far cheaper than a convolution).
    np.add.at(x, starts[:, None] + np.arange(len(kernel)), amps[:, None] * kernel)
    return x


def _tone_burst(sr: int, freq: float, ms: float) -> np.ndarray:
    t = np.arange(int(sr * ms / 1000)) / sr
    return np.sin(2 * np.pi * freq * t) * np.hanning(len(t))


def _click(sr: int, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """A ~2 ms droplet: a decaying burst between ``lo`` and ``hi`` Hz."""
    t = np.arange(int(sr * 0.002)) / sr
    freq = rng.uniform(lo, hi)
    return np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.0006)


def _hf(sr: int, lo: float, hi: float) -> tuple[float, float] | None:
    """A high band clipped to below Nyquist, or None when the rate cannot carry it."""
    top = min(hi, 0.45 * sr)
    return (lo, top) if top > lo else None


# --- the scenes: each takes (n, sr, rng, location parameters) --------------------------------


def _rain(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    low = _noise(n, sr, rng, 80, 4000, tilt=0.3)
    x = low
    if band := _hf(sr, 5600, 11000):
        kernel = _click(sr, loc, *band)
        drops = _events(n, sr, rng, rate_hz=loc.uniform(150, 400), kernel=kernel)
        x = x + drops / (np.std(drops) + 1e-12)
    return x


def _water(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    low = _noise(n, sr, rng, 80, 4000, tilt=0.3)
    x = low
    if band := _hf(sr, 4400, 5400):
        hiss = _noise(n, sr, rng, *band)
        x = x + 1.2 * hiss * _slow_envelope(n, sr, rng, rate_hz=loc.uniform(1, 3), depth=0.5)
    return x


def _wind(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    gusts = _slow_envelope(n, sr, rng, rate_hz=loc.uniform(0.3, 1.0), depth=0.8)
    return _noise(n, sr, rng, 20, 600, tilt=0.5) * gusts


def _insects(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    x = _wind(n, sr, rng, loc)
    if band := _hf(sr, 5000, 7000):
        freq = loc.uniform(*band)
        chirp = _tone_burst(sr, freq, ms=12)
        pulses = _events(n, sr, rng, rate_hz=loc.uniform(15, 35), kernel=chirp)
        x = x + pulses / (np.std(pulses) + 1e-12)
    return x


def _birdsong(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    x = 0.3 * _noise(n, sr, rng, 100, 2000, tilt=0.3)
    top = min(7000.0, 0.45 * sr)
    for _ in range(rng.poisson(3 * n / sr) + 1):
        ms = rng.uniform(60, 200)
        length = int(sr * ms / 1000)
        start = int(rng.integers(0, max(1, n - length)))
        t = np.arange(length) / sr
        f0, f1 = rng.uniform(2000, top), rng.uniform(2000, top)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))
        x[start : start + length] += np.sin(phase) * np.hanning(length) * rng.uniform(0.8, 2.0)
    return x


def _traffic(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    rumble = _noise(n, sr, rng, 20, 300)
    cars = _noise(n, sr, rng, 100, 2500, tilt=0.3)
    passing = _slow_envelope(n, sr, rng, rate_hz=loc.uniform(0.5, 1.5), depth=0.95) ** 2
    return rumble + 2.0 * cars * passing


def _babble(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    step = 32  # vibrato and syllable rates are slow: compute them coarsely, then hold
    t = np.arange(0, n, step) / sr
    x = np.zeros(n)
    for _ in range(int(loc.integers(3, 7))):
        f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
        phase = np.cumsum(np.repeat(f0, step)[:n]) / sr
        pulses = np.diff(np.floor(phase), prepend=0.0)  # one glottal pulse per period
        syllables = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6.3))
        x += pulses * np.repeat(syllables, step)[:n]
    # Vowel-like colouring: the glottal pulses through three formant bands.
    y = sum(
        sosfilt(_bandpass(fc - bw, fc + bw, sr), x)
        for fc, bw in ((500, 150), (1500, 250), (2500, 300))
    )
    return y / (np.std(y) + 1e-12)


def _machinery(n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator) -> np.ndarray:
    mains = float(loc.choice([50.0, 60.0]))
    # Mains hum and its harmonics: one period (rounded to whole samples), tiled.
    t = np.arange(round(sr / mains)) / sr
    cycle = np.sum(
        [np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 12)], axis=0
    )
    hum = np.tile(cycle, n // len(cycle) + 1)[:n]
    length = int(0.03 * sr)
    clank = _noise(length, sr, rng, 200, 3000) * np.exp(-np.arange(length) / (0.006 * sr))
    clanks = np.zeros(n)
    for start in range(int(rng.integers(0, length)), n - length, int(sr * loc.uniform(0.3, 0.8))):
        clanks[start : start + length] += clank
    whine = np.sin(2 * np.pi * loc.uniform(1500, 3000) * np.arange(n) / sr)
    return hum / np.std(hum) + 1.5 * clanks + 0.3 * whine


GENERATORS = dict(
    zip(
        CLASSES,
        (_rain, _water, _wind, _insects, _birdsong, _traffic, _babble, _machinery),
        strict=True,
    )
)


def _colour(x: np.ndarray, coefficient: float) -> np.ndarray:
    """A location's microphone and room: a first-order tilt (y[n] = x[n] - c * x[n-1])."""
    return lfilter([1.0, -coefficient], [1.0], x)


def _microphone(x: np.ndarray, sr: int, loc: np.random.Generator) -> np.ndarray:
    """A location's microphone: its own band limits and a resonance of +/- 10 dB."""
    low, high = loc.uniform(60, 400), min(loc.uniform(3500, 12000), 0.45 * sr)
    x = sosfilt(_bandpass(low, high, sr), x)
    centre = loc.uniform(400, min(5000.0, 0.4 * sr))
    bump = sosfilt(_bandpass(centre / 1.3, centre * 1.3, sr), x)
    return x + (10 ** (loc.uniform(-10, 10) / 20) - 1) * bump


def _room(x: np.ndarray, sr: int, loc: np.random.Generator) -> np.ndarray:
    """A location's room: exponentially decaying noise as the impulse response (RT60 0.1 to
    1.2 s), a direct path of its own level."""
    rt60 = loc.uniform(0.1, 1.2)
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = loc.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail *= 10 ** (-loc.uniform(0, 12) / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] += 1.0
    return fftconvolve(x, tail)[: len(x)]


def _location_bed(
    n: int, sr: int, rng: np.random.Generator, loc: np.random.Generator
) -> np.ndarray:
    """A location's background: three noise bands of its own and a hum, unit level."""
    bed = np.zeros(n)
    for _ in range(3):
        centre = loc.uniform(100, min(6000.0, 0.4 * sr))
        bed += loc.uniform(0.2, 1.0) * _noise(n, sr, rng, centre / 1.5, centre * 1.5)
    hum = loc.uniform(40, 400)
    bed += loc.uniform(0.0, 0.8) * np.sin(2 * np.pi * hum * np.arange(n) / sr + rng.uniform(0, 6.3))
    return bed / (np.std(bed) + 1e-12)


def render_clip(spec: SynthSpec, label: str, location: int, take: int) -> np.ndarray:
    """One clip of ``label`` recorded at ``location``: scene + background + noise floor."""
    n, sr = int(spec.seconds * spec.sample_rate), spec.sample_rate
    class_id = CLASSES.index(label)
    loc = np.random.default_rng([spec.seed, class_id, location, 0])
    tilt = loc.uniform(-0.6, 0.6)
    loc_state = loc.bit_generator.state
    rng = np.random.default_rng([spec.seed, class_id, location, take + 1])

    def location_rng() -> np.random.Generator:
        g = np.random.default_rng()
        g.bit_generator.state = loc_state  # every clip of a location draws the same parameters
        return g

    scene = GENERATORS[label](n, sr, rng, location_rng())
    others = [c for c in CLASSES[: spec.classes] if c != label]
    background_label = others[int(rng.integers(len(others)))]
    bg_loc = np.random.default_rng(
        [spec.seed, CLASSES.index(background_label), int(rng.integers(1000)), 0]
    )
    background = GENERATORS[background_label](n, sr, rng, bg_loc)
    snr_db = rng.uniform(3.0, 15.0)
    # The scene is not normalised by its own level: rain and water (wind and insects) share a
    # unit-level low band, and only their high bands differ. Normalising by the total level,
    # or by the peak, would leak the high band into the low band's loudness.
    mix = scene + background / (np.std(background) + 1e-12) * 10 ** (-snr_db / 20)
    if spec.realism == "field":
        acoustics = np.random.default_rng([spec.seed, class_id, location, 7])
        bed = _location_bed(n, sr, rng, acoustics)
        mix = _room(mix, sr, acoustics) + bed * np.std(mix) * 10 ** (-rng.uniform(-3, 20) / 20)
        mix = _microphone(mix, sr, acoustics)
        mix = mix / (np.std(mix) + 1e-12)
    mix = mix + _white(n, rng) * 10 ** (-35 / 20)
    mix = _colour(mix, tilt) * 0.05 * 10 ** (rng.uniform(-6, 3) / 20)
    peak = np.max(np.abs(mix))
    if peak > 0.99:  # rare: keep clear of clipping
        mix *= 0.99 / peak
    if spec.short_share:  # a generator of its own: the clips left whole are unchanged
        cut = np.random.default_rng([spec.seed, class_id, location, take + 1, 11])
        if cut.random() < spec.short_share:
            length = round(cut.uniform(SHORTEST_SECONDS, spec.seconds) * sr)
            start = int(cut.integers(0, n - length + 1))
            mix = mix[start : start + length]
    return mix.astype(np.float32)


def _clip_jobs(spec: SynthSpec) -> list[tuple[str, int, int, int]]:
    """(label, location, take, fold) for every clip, locations spread over the folds."""
    jobs = []
    labels = CLASSES[: spec.classes]
    for c, label in enumerate(labels):
        count = spec.clips_per_class
        if spec.realism == "field":  # imbalance: from 100 % down to 40 % of clips_per_class
            share = 1.0 - 0.6 * c / max(1, len(labels) - 1)
            count = max(LOCATIONS_PER_CLASS, round(spec.clips_per_class * share))
        for k in range(count):
            location = k % LOCATIONS_PER_CLASS
            jobs.append((label, location, k // LOCATIONS_PER_CLASS, location % FOLDS + 1))
    return jobs


def clip_count(spec: SynthSpec) -> int:
    """How many clips ``generate`` writes for ``spec``."""
    return len(_clip_jobs(spec))


def _write(args: tuple[SynthSpec, Path, str, int, int, int]) -> tuple[str, str, int, str]:
    spec, out, label, location, take, fold = args
    group = f"{label}-loc{location}"
    rel = f"audio/{label}/{group}_{take:04d}.wav"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, render_clip(spec, label, location, take), spec.sample_rate, subtype="PCM_16")
    return rel, label, fold, group


def generate(
    out: Path,
    spec: SynthSpec,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the synthetic dataset to ``out`` (csv layout) and return the meta file's path."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(spec, out, *job) for job in _clip_jobs(spec)]
    workers = workers or min(os.cpu_count() or 1, 8)
    rows = []
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for done, row in enumerate(pool.map(_write, jobs, chunksize=16), start=1):
                rows.append(row)
                if progress:
                    progress(done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            rows.append(_write(job))
            if progress:
                progress(done, len(jobs))
    meta = out / "meta.csv"
    tmp = out / ".meta.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "fold", "group"])
        writer.writerows(rows)
    os.replace(tmp, meta)
    return meta
