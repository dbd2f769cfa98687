"""One cache of decoded, resampled waveforms per (dataset fingerprint, sample rate).

Every run at a sample rate (all inits, architectures and folds, in every agent process on
the host) memory-maps the same file, so a 5 x 4 x 4 x 4 grid decodes and resamples the
dataset 5 times, not 320. The cache is a folder holding ``audio.f32`` (all clips, float32,
back to back) and ``index.json`` (offset and length of each clip). It is built in a private
temporary folder and renamed into place (atomic), under an exclusive file lock, so two
processes building the same cache at once end with one valid cache and one of them waits.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from asc_sweep.data.audio import AudioError, load_clip
from asc_sweep.data.base import Clip, DataError, DatasetIndex

FORMAT_VERSION = 1


class CacheError(DataError):
    """The audio cache cannot be written (full disk, read-only folder): names the folder."""


def cache_root() -> Path:
    """``$ASC_SWEEP_CACHE``, else ``~/.cache/asc-sweep``."""
    env = os.environ.get("ASC_SWEEP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "asc-sweep"


class WaveformCache:
    """Read-only, memory-mapped waveforms of one dataset at one sample rate."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        meta = json.loads((directory / "index.json").read_text())
        self.sample_rate: int = meta["sample_rate"]
        self.paths: list[str] = meta["paths"]
        self.offsets = np.asarray(meta["offsets"], dtype=np.int64)
        self.lengths = np.asarray(meta["lengths"], dtype=np.int64)
        total = int(self.offsets[-1] + self.lengths[-1]) if len(self.paths) else 0
        self._audio = (
            np.memmap(directory / "audio.f32", dtype=np.float32, mode="r", shape=(total,))
            if total
            else np.zeros(0, dtype=np.float32)
        )
        self._row = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        """Clip ``i`` (in the dataset index's order) as a read-only float32 view."""
        start = int(self.offsets[i])
        return self._audio[start : start + int(self.lengths[i])]

    def row(self, path: str) -> int:
        return self._row[path]


def cache_key(index: DatasetIndex, sample_rate: int) -> str:
    return f"{index.name}-{index.fingerprint()}-{sample_rate}"


def open_cache(
    index: DatasetIndex,
    sample_rate: int,
    *,
    root: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WaveformCache:
    """The cache for ``index`` at ``sample_rate``, built first if it does not exist yet.

    Args:
        progress: called as ``progress(done, total)`` while clips are decoded.

    Raises:
        AudioError: a clip cannot be decoded (the cache is not written; nothing partial stays).
    """
    root = root or cache_root()
    final = root / cache_key(index, sample_rate)
    for _ in range(3):
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not _complete(final):
                with build_lock(root, final.name):
                    if not _complete(final):  # another process may have built it meanwhile
                        _build(index, sample_rate, final, workers or os.cpu_count() or 1, progress)
            _mark_used(final)
        except OSError as exc:  # a full disk, a read-only folder, a file where the folder goes
            raise CacheError(
                f"{root}: cannot hold the audio cache ({exc.strerror or exc}); nothing partial "
                "was left; free space there or set ASC_SWEEP_CACHE to another folder"
            ) from None
        try:
            return WaveformCache(final)
        except FileNotFoundError:  # removed (`data caches --prune`) since the check: again
            continue
    raise CacheError(f"{final}: removed again each time it was built; is a prune running?")


def _mark_used(directory: Path) -> None:
    """The folder's time stamp says when a run last opened the cache (``data caches
    --unused-days`` reads it); a read-only cache folder keeps its own."""
    with suppress(OSError):
        os.utime(directory)


_KEYS = {"dataset", "fingerprint", "sample_rate", "paths", "offsets", "lengths"}


def read_meta(directory: Path) -> dict[str, Any] | None:
    """A complete cache's ``index.json``; None for anything else (missing, half written, of
    another format version, or damaged: keys missing, or audio of the wrong size)."""
    try:
        meta = json.loads((directory / "index.json").read_text())
        if meta.get("version") != FORMAT_VERSION or not meta.keys() >= _KEYS:
            return None
        total = meta["offsets"][-1] + meta["lengths"][-1] if meta["paths"] else 0
        if not (len(meta["paths"]) == len(meta["offsets"]) == len(meta["lengths"])):
            return None
        if (directory / "audio.f32").stat().st_size != 4 * total:
            return None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None
    return meta


def _complete(directory: Path) -> bool:
    """Whether a run can open the cache at ``directory`` (a damaged one is built again)."""
    return read_meta(directory) is not None


@contextmanager
def build_lock(root: Path, key: str, *, wait: bool = True) -> Iterator[bool]:
    """The exclusive lock a build of cache ``key`` under ``root`` holds (``KEY.lock``): waited
    for, or with ``wait=False`` taken only if free (yields whether it was). Without the lock
    file no build ever ran or runs (a build creates it), so the lock counts as free."""
    path = root / f"{key}.lock"
    if not wait and not path.exists():
        yield True
        return
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(
    index: DatasetIndex,
    sample_rate: int,
    final: Path,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        offsets, lengths = [], []
        position = 0
        paths = [c.path for c in index.clips]

        def load(clip: Clip) -> np.ndarray:
            try:
                return load_clip(index.root / clip.path, sample_rate)
            except AudioError as exc:  # name the clip as its metadata row does
                reason = str(exc).split(": ", 1)[-1]
                raise AudioError(f"{clip.name}: {reason}") from None

        with open(tmp / "audio.f32", "wb") as out, ThreadPoolExecutor(workers) as pool:
            # map() keeps the clips' order; decoding runs ahead in the pool while we write.
            for done, wave in enumerate(pool.map(load, index.clips), start=1):
                out.write(wave.tobytes())
                offsets.append(position)
                lengths.append(len(wave))
                position += len(wave)
                if progress:
                    progress(done, len(paths))
            out.flush()
            os.fsync(out.fileno())
        meta = {
            "version": FORMAT_VERSION,
            "dataset": index.name,
            "root": str(index.root.resolve()),  # for `data caches`: is the dataset still so?
            "fingerprint": index.fingerprint(),
            "sample_rate": sample_rate,
            "paths": paths,
            "offsets": offsets,
            "lengths": lengths,
        }
        (tmp / "index.json").write_text(json.dumps(meta))
        if final.exists():  # an incomplete leftover: we hold the lock and it failed _complete
            shutil.rmtree(final)
        os.replace(tmp, final)  # atomic: readers see no cache or a whole one
    except AudioError as exc:
        raise AudioError(f"{exc}; run `asc-sweep data check` to list every bad clip") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
