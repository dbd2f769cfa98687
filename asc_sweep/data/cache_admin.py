"""What the audio caches hold, and pruning them (``asc-sweep data caches``).

Nothing else ever removes a cache, and they are large (UrbanSound8K at 44.1 kHz: about 6 GB a
sample rate). Three kinds become garbage:

* **stale**: its dataset changed (clips added, removed, relabelled or rewritten give a new
  fingerprint, so runs build a new cache and never read this one again);
* **unused**: no run has opened it for a while (``--unused-days``; every ``open_cache`` marks
  the folder as used);
* **leftovers** of builds that were killed (``.NAME.tmp-PID`` folders, as large as the
  cache they were becoming), and damaged caches.

A cache whose dataset folder cannot be found is not called stale: the folder may be a mount
that is absent just now (a container started without ``/data``, a network share), and its
cache worth gigabytes of decoding. Such caches go when unused for long enough.

A cache is removed under its build lock, taken without waiting (one being built is left
alone): renamed out of the way first, then deleted, so no reader ever sees half a cache.
Runs that already have it memory-mapped keep reading it (the space is freed when they end).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asc_sweep.data.base import DataError, DatasetIndex
from asc_sweep.data.cache import build_lock, cache_root, read_meta

CURRENT = "current"
UNKNOWN = "unknown source"  # built before caches recorded their dataset folder
UNREADABLE = "metadata unreadable"  # kept: the metadata may be in the middle of an edit
MISSING = "dataset folder not found"  # kept: it may be a mount that is absent just now


@dataclass(frozen=True)
class CacheEntry:
    """One complete cache: what it holds and whether runs can still open it."""

    directory: Path
    dataset: str
    sample_rate: int
    clips: int
    bytes: int
    last_used: float  # seconds since the epoch: the last time a run or `data cache` opened it
    source: Path | None  # the dataset folder it was decoded from
    state: str  # CURRENT, UNKNOWN, UNREADABLE, MISSING, or "stale: why"

    @property
    def stale(self) -> bool:
        return self.state.startswith("stale")

    def unused_days(self, now: float | None = None) -> float:
        return ((now or time.time()) - self.last_used) / 86400


@dataclass(frozen=True)
class Leftover:
    """A folder under the cache root that no run will open: a killed build's temporary folder,
    a removal that was interrupted, or a damaged cache (or one of an older format)."""

    directory: Path
    bytes: int
    why: str


_KEY = r"[a-z0-9_]+-[0-9a-f]{16}-[0-9]+"  # cache.cache_key: DATASET-FINGERPRINT-RATE
_CACHE = re.compile(_KEY)
_TEMPORARY = re.compile(rf"\.({_KEY})\.(tmp|removing)-[0-9]+")


def scan(root: Path | None = None) -> tuple[list[CacheEntry], list[Leftover]]:
    """The complete caches under ``root`` (default: ``cache_root()``), sorted by dataset and
    rate, each with its state, and what is left of builds and removals. Folders not named as
    asc-sweep names them are not looked at (a cache root may be shared with other things)."""
    root = root or cache_root()
    if not root.is_dir():
        return [], []
    entries, leftovers = [], []
    indexes: dict[tuple[str, str], DatasetIndex | None] = {}  # one read per dataset folder
    for path in sorted(root.iterdir()):
        temporary = _TEMPORARY.fullmatch(path.name)
        if not path.is_dir() or not (temporary or _CACHE.fullmatch(path.name)):
            continue
        if temporary:
            with build_lock(root, temporary[1], wait=False) as free:
                if not free:
                    continue  # a build (or a removal) running now, not a leftover
            why = "interrupted build" if temporary[2] == "tmp" else "interrupted removal"
            leftovers.append(Leftover(path, _size(path), why))
            continue
        meta = read_meta(path)
        if meta is None and not path.exists():
            continue  # removed meanwhile (another prune)
        if meta is None:
            leftovers.append(Leftover(path, _size(path), "damaged, or of an older format"))
            continue
        source = Path(meta["root"]) if meta.get("root") else None
        entries.append(
            CacheEntry(
                directory=path,
                dataset=meta["dataset"],
                sample_rate=meta["sample_rate"],
                clips=len(meta["paths"]),
                bytes=_size(path),
                last_used=path.stat().st_mtime,
                source=source,
                state=_state(meta, source, indexes),
            )
        )
    entries.sort(key=lambda e: (e.dataset, str(e.source), e.sample_rate))
    return entries, leftovers


def _state(
    meta: dict[str, Any], source: Path | None, indexes: dict[tuple[str, str], DatasetIndex | None]
) -> str:
    """Whether a run could still open this cache: its dataset, read now, has the same clips
    (the cache's own subset of them, for caches built with a skip list) unchanged."""
    from asc_sweep.data import load_dataset

    if source is None:
        return UNKNOWN
    if not source.is_dir():
        return MISSING
    key = (meta["dataset"], str(source))
    if key not in indexes:
        try:
            indexes[key] = load_dataset(meta["dataset"], source, strict=False)
        except DataError:
            indexes[key] = None
    index = indexes[key]
    if index is None:
        return UNREADABLE
    held = set(meta["paths"])
    present = {c.path for c in index.clips}
    if not held <= present:
        return "stale: clips removed"
    if index.without(present - held).fingerprint() != meta["fingerprint"]:
        return "stale: dataset changed"
    return CURRENT


def prunable(entry: CacheEntry, unused_days: float | None, now: float | None = None) -> bool:
    """Stale caches, and with ``unused_days`` those unopened for that long."""
    return entry.stale or (unused_days is not None and entry.unused_days(now) >= unused_days)


def remove(directory: Path) -> bool:
    """Remove a cache or a leftover (``scan``'s) unless its build lock is held, as while a
    build of the same cache runs; False when it is."""
    temporary = _TEMPORARY.fullmatch(directory.name)
    key = temporary[1] if temporary else directory.name
    with build_lock(directory.parent, key, wait=False) as free:
        if not free:
            return False
        if temporary:
            _delete(directory)
            return True
        doomed = directory.parent / f".{key}.removing-{os.getpid()}"
        try:
            os.replace(directory, doomed)  # readers see the whole cache or none
        except FileNotFoundError:
            return True  # another prune took it first
        _delete(doomed)  # under the lock: a scan meanwhile sees no leftover
    return True


def _delete(directory: Path) -> None:
    """Delete a folder; one that another prune deletes at the same time is no error."""
    with suppress(FileNotFoundError):
        shutil.rmtree(directory)


def _size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total
