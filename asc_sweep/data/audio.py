"""Audio decoding (soundfile: WAV, FLAC, OGG), mono downmix and resampling (torchaudio)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from asc_sweep.data.base import DataError


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
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: cannot decode ({_reason(exc)})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples (zero length)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: has NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (torchaudio's windowed sinc); a no-op at the same rate."""
    if orig_rate == new_rate:
        return wave
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(wave), orig_rate, new_rate)
    return out.numpy().astype(np.float32, copy=False)


def load_clip(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode, downmix and resample one clip to ``sample_rate``."""
    wave, rate = decode(path)
    return resample(wave, rate, sample_rate)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
