"""The waveform cache: built once per (dataset, sample rate), reused by every run and process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asc_sweep.data import load_dataset
from asc_sweep.data.audio import DECODES, AudioError, load_clip
from asc_sweep.data.cache import open_cache

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
