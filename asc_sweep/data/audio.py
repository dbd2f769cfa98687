"""Audio decoding (soundfile: WAV, FLAC, OGG), mono downmix and resampling (torchaudio)."""

from __future__ import annotations

import threading
from fractions import Fraction
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from asc_sweep.data.base import DataError

# What a clip's header may say. Outside these bounds it is damaged (or not a recording a scene
# classifier can use), and believing it would cost the host its memory: a header that claims
# billions of frames has its buffer allocated before a sample is read, and resampling from a
# rate of a few hertz makes a filter bank of gigabytes.
MIN_RATE, MAX_RATE = 1000, 768_000
MAX_CHANNELS = 8
MAX_CLIP_SECONDS = 3600
# What libsndfile reports as the frame count of a file whose header does not say.
UNKNOWN_LENGTH = 2**63 - 1
# Frames decoded at a time (a header's frame count is checked, not trusted to size a buffer).
BLOCK_SAMPLES = 1 << 22
# Resampling ratios whose reduced terms exceed this are approximated (see ``resample``).
MAX_RATIO_TERM = 4096


class AudioError(DataError):
    """A clip that cannot be used; the message names the file and the problem."""


class _Counter:
    """Counts decodes in this process (the cache's tests assert that reuse decodes nothing)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def increment(self) -> None:
        with self._lock:
            self.value += 1


DECODES = _Counter()


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """A file's samples as mono float32 in [-1, 1], and its sample rate.

    Raises:
        AudioError: unreadable, undecodable, empty, or non-finite audio.
    """
    DECODES.increment()
    if not Path(path).is_file():
        why = "is not a file" if Path(path).exists() else "file not found"
        raise AudioError(f"{path}: {why}")
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels = int(f.samplerate), int(f.channels)
            if not MIN_RATE <= rate <= MAX_RATE:
                raise AudioError(
                    f"{path}: sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz "
                    "(a damaged header?)"
                )
            if channels > MAX_CHANNELS:
                raise AudioError(
                    f"{path}: {channels} channels; at most {MAX_CHANNELS} are downmixed to mono"
                )
            most = MAX_CLIP_SECONDS * rate
            if f.frames == UNKNOWN_LENGTH:
                raise AudioError(
                    f"{path}: its header gives no length (a FLAC written to a pipe?), which "
                    "soundfile cannot decode; re-encode the file"
                )
            if f.frames > most:
                raise AudioError(f"{path}: {_too_long(f.frames, rate, 'by its header')}")
            blocks, total = [], 0
            while len(block := f.read(BLOCK_SAMPLES // channels, "float32", always_2d=True)):
                blocks.append(block)
                total += len(block)
                if total > most:
                    raise AudioError(f"{path}: {_too_long(total, rate, 'at least')}")
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: cannot decode ({_reason(exc)})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if total == 0:
        raise AudioError(f"{path}: holds no samples (zero length)")
    data = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)  # (frames, channels)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: has NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def _too_long(frames: int, rate: int, how: str) -> str:
    return (
        f"{frames / rate / 60:.0f} minutes long {how}; clips of at most {MAX_CLIP_SECONDS // 60} "
        "minutes are held in memory (cut long recordings into clips)"
    )


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc); a no-op at the same rate.

    torchaudio builds one filter per output phase, ``new / gcd`` filters of about
    ``orig / gcd`` taps: tiny for the rates recorders use (44.1 to 16 kHz: 160 of 441), but
    11 GB and 30 s for a 4 s clip at 44101 Hz (BENCHMARKS.md). A ratio whose reduced terms
    exceed ``MAX_RATIO_TERM`` is replaced by the nearest one within it: a time-scale (and
    pitch) error of at most 125 parts per million (a fifth of a cent), and as many samples
    more or fewer.
    """
    if orig_rate == new_rate:
        return wave
    import torch
    import torchaudio.functional as AF

    orig, new = _ratio_terms(orig_rate, new_rate)
    out = AF.resample(torch.from_numpy(wave), orig, new)
    return out.numpy().astype(np.float32, copy=False)


def _ratio_terms(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """``(orig, new)`` with ``new / orig`` (nearly) ``new_rate / orig_rate``, both at most
    ``MAX_RATIO_TERM`` once reduced (exactly the rates, where that holds already)."""
    g = gcd(orig_rate, new_rate)
    if max(orig_rate, new_rate) // g <= MAX_RATIO_TERM:
        return orig_rate, new_rate
    if new_rate > orig_rate:
        up = Fraction(orig_rate, new_rate).limit_denominator(MAX_RATIO_TERM)
        return up.numerator, up.denominator
    down = Fraction(new_rate, orig_rate).limit_denominator(MAX_RATIO_TERM)
    return down.denominator, down.numerator


def load_clip(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode, downmix and resample one clip to ``sample_rate``."""
    wave, rate = decode(path)
    return resample(wave, rate, sample_rate)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
