"""The waveform cache: built once per (dataset, sample rate), reused by every run and process."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asc_sweep.data import cache as cache_module
from asc_sweep.data import load_dataset
from asc_sweep.data.audio import DECODES, AudioError, load_clip
from asc_sweep.data.cache import open_cache
from asc_sweep.data.cache_admin import prunable, remove, scan

from . import layouts
from .conftest import ROOT


def test_second_run_at_a_rate_decodes_nothing(tmp_path: Path) -> None:
    layouts.make_urbansound8k(tmp_path / "us8k")
    index = load_dataset("urbansound8k", tmp_path / "us8k")
    before = DECODES.value
    first = open_cache(index, 16000, root=tmp_path / "cache")
    assert DECODES.value - before == len(index.clips)
    before = DECODES.value
    again = open_cache(
        load_dataset("urbansound8k", tmp_path / "us8k"), 16000, root=tmp_path / "cache"
    )
    assert DECODES.value == before  # zero decodes: the memory-mapped cache is reused
    assert again.directory == first.directory
    for i, clip in enumerate(index.clips):
        np.testing.assert_array_equal(again[i], load_clip(index.root / clip.path, 16000))
    before = DECODES.value
    open_cache(index, 8000, root=tmp_path / "cache")  # another rate is another cache
    assert DECODES.value == before + len(index.clips)


def test_changed_files_make_a_new_cache(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path / "d")
    first = open_cache(load_dataset("csv", tmp_path / "d"), 16000, root=tmp_path / "cache")
    layouts.write_wav(tmp_path / "d/clips/a_0.wav", seconds=0.9)
    second = open_cache(load_dataset("csv", tmp_path / "d"), 16000, root=tmp_path / "cache")
    assert second.directory != first.directory
    assert len(second[second.row("clips/a_0.wav")]) == int(0.9 * 16000)


def test_a_bad_clip_leaves_no_partial_cache(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path / "d")
    (tmp_path / "d/clips/b_1.wav").write_bytes(b"RIFF")
    with pytest.raises(AudioError, match=r"b_1.wav: cannot decode .*data check"):
        open_cache(load_dataset("csv", tmp_path / "d"), 16000, root=tmp_path / "cache")
    assert [p for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"] == []


BUILD = """
import json, sys
from asc_sweep.data import load_dataset
from asc_sweep.data.audio import DECODES
from asc_sweep.data.cache import open_cache
cache = open_cache(load_dataset("urbansound8k", sys.argv[1]), 22050, root=__import__("pathlib").Path(sys.argv[2]), workers=1)
print(json.dumps({"decodes": DECODES.value, "dir": str(cache.directory), "n": len(cache)}))
"""


def test_two_processes_building_at_once_end_with_one_valid_cache(tmp_path: Path) -> None:
    layouts.make_urbansound8k(tmp_path / "us8k", folds=6)
    cmd = [sys.executable, "-c", BUILD, str(tmp_path / "us8k"), str(tmp_path / "cache")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    n = results[0]["n"]
    assert n == 24 and results[1]["n"] == n
    assert results[0]["dir"] == results[1]["dir"]
    assert sorted(r["decodes"] for r in results) == [0, n]  # one built it, the other waited
    entries = [p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".lock"]
    assert entries == [Path(results[0]["dir"]).name]  # no temporary folder left behind


# --- listing and pruning (`asc-sweep data caches`) -------------------------------------------


def _cached(root: Path, rate: int, cache: Path, dataset: str = "csv") -> Path:
    return open_cache(load_dataset(dataset, root), rate, root=cache).directory


def test_prune_removes_stale_caches_and_killed_builds_and_keeps_current_ones(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    layouts.make_csv(tmp_path / "d")
    layouts.make_csv(tmp_path / "gone")
    old = _cached(tmp_path / "d", 16000, cache)
    orphan = _cached(tmp_path / "gone", 16000, cache)
    layouts.write_wav(tmp_path / "d/clips/a_0.wav", seconds=0.9)  # rewritten: a new fingerprint
    new = _cached(tmp_path / "d", 16000, cache)
    shutil.rmtree(tmp_path / "gone")
    killed = cache / f".{new.name}.tmp-4242"  # a build killed mid-way (nobody holds its lock)
    killed.mkdir()
    (killed / "audio.f32").write_bytes(b"\0" * 4096)
    (cache / "not-a-cache").mkdir()  # a shared folder: anything else is not ours to look at
    entries, leftovers = scan(cache)
    states = {e.directory: e.state for e in entries}
    assert states == {
        old: "stale: dataset changed",
        orphan: "dataset folder not found",
        new: "current",
    }
    assert [(lo.directory, lo.why, lo.bytes) for lo in leftovers] == [
        (killed, "interrupted build", 4096)
    ]
    current = next(e for e in entries if e.directory == new)
    assert (current.dataset, current.sample_rate, current.clips) == ("csv", 16000, 8)
    assert current.source == (tmp_path / "d").resolve() and current.bytes > 8 * 8000 * 4

    for entry in entries:
        if prunable(entry, unused_days=None):
            assert remove(entry.directory)
    assert all(remove(lo.directory) for lo in leftovers)
    # Kept: the current cache, the one whose dataset folder is not found (a mount may be
    # absent just now; it goes when unused for long enough) and what is not a cache.
    left = sorted(p.name for p in cache.iterdir() if p.suffix != ".lock")
    assert left == sorted([new.name, orphan.name, "not-a-cache"])
    assert len(open_cache(load_dataset("csv", tmp_path / "d"), 16000, root=cache)) == 8


def test_a_cache_built_with_a_skip_list_is_current(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path / "d")
    index = load_dataset("csv", tmp_path / "d").without({"clips/b_3.wav"})
    open_cache(index, 16000, root=tmp_path / "cache")
    (entry,), _ = scan(tmp_path / "cache")
    assert entry.clips == 7 and entry.state == "current"
    layouts.write_wav(tmp_path / "d/clips/b_3.wav", seconds=0.9)  # a clip the cache leaves out
    assert scan(tmp_path / "cache")[0][0].state == "current"
    layouts.write_wav(tmp_path / "d/clips/b_2.wav", seconds=0.9)  # one it holds
    assert scan(tmp_path / "cache")[0][0].state == "stale: dataset changed"


def test_unused_days_count_from_the_last_run_that_opened_the_cache(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path / "d")
    directory = _cached(tmp_path / "d", 16000, tmp_path / "cache")
    month_ago = time.time() - 30 * 86400
    os.utime(directory, (month_ago, month_ago))
    (entry,), _ = scan(tmp_path / "cache")
    assert entry.unused_days() == pytest.approx(30, abs=0.01)
    assert prunable(entry, unused_days=29) and not prunable(entry, unused_days=31)
    _cached(tmp_path / "d", 16000, tmp_path / "cache")  # a run opens it: used today
    assert scan(tmp_path / "cache")[0][0].unused_days() < 0.01


def test_a_cache_whose_build_lock_is_held_is_not_removed(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path / "d")
    directory = _cached(tmp_path / "d", 16000, tmp_path / "cache")
    with open(tmp_path / "cache" / f"{directory.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a process building it holds it
        assert not remove(directory)
        building = tmp_path / "cache" / f".{directory.name}.tmp-{os.getpid()}"
        building.mkdir()
        assert not remove(building)
        assert scan(tmp_path / "cache")[1] == []  # a build running now is no leftover
    assert directory.is_dir() and building.is_dir()
    assert remove(building) and remove(directory)
    assert not directory.exists() and not building.exists()


def test_a_damaged_cache_is_built_again(tmp_path: Path) -> None:
    layouts.make_csv(tmp_path / "d")
    directory = _cached(tmp_path / "d", 16000, tmp_path / "cache")
    with open(directory / "audio.f32", "r+b") as f:  # cut short (a disk that filled up, a copy)
        f.truncate(1000)
    assert scan(tmp_path / "cache")[1][0].why == "damaged, or of an older format"
    before = DECODES.value
    again = open_cache(load_dataset("csv", tmp_path / "d"), 16000, root=tmp_path / "cache")
    assert DECODES.value == before + 8 and again.directory == directory and len(again) == 8


def test_a_cache_pruned_between_check_and_open_is_built_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layouts.make_csv(tmp_path / "d")
    directory = _cached(tmp_path / "d", 16000, tmp_path / "cache")
    pruned = []

    def prune_once(path: Path) -> None:  # a prune that lands just after the check
        if not pruned:
            pruned.append(remove(path))

    monkeypatch.setattr(cache_module, "_mark_used", prune_once)
    again = open_cache(load_dataset("csv", tmp_path / "d"), 16000, root=tmp_path / "cache")
    assert pruned == [True] and again.directory == directory and len(again) == 8


def test_data_caches_lists_and_prunes_from_the_command_line(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASC_SWEEP_CACHE", str(tmp_path / "cache"))
    layouts.make_csv(tmp_path / "d")
    stale = _cached(tmp_path / "d", 16000, tmp_path / "cache")
    layouts.write_wav(tmp_path / "d/clips/a_0.wav", seconds=0.9)
    current = _cached(tmp_path / "d", 8000, tmp_path / "cache")
    listing = cli("data", "caches")
    assert listing.exit_code == 0, listing.output
    assert "stale: dataset changed" in listing.output and "current" in listing.output
    assert "2 caches and 0 leftovers" in listing.output
    dry = cli("data", "caches", "--prune", "--dry-run")
    assert dry.exit_code == 0 and f"would remove {stale.name}" in dry.output
    assert stale.is_dir()
    unused = cli("data", "caches", "--unused-days", "0", "--prune")
    assert unused.exit_code == 0 and "(2 folders)" in unused.output
    assert not stale.exists() and not current.exists()
