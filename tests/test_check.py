"""`asc-sweep data check` on a corpus of bad clips: every file named with its problem, no crash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from asc_sweep.data import load_dataset
from asc_sweep.data.check import read_skip_list

from . import layouts

FATAL = {
    "clips/empty.wav": "empty file (0 bytes)",
    "clips/truncated.wav": "cannot decode",
    "clips/nan.wav": "has NaN or infinite samples",
    "clips/zero.wav": "zero length (no samples)",
    "clips/locked.wav": "permissions deny reading (mode 0o0)",
    "clips/missing.wav": "file not found",
    "clips/notaudio.wav": "cannot decode",
}
WARNINGS = {
    "clips/six.wav": "6 channels (downmixed to mono)",
    "clips/eight.wav": "8-bit audio",
    "clips/adpcm.wav": "IMA_ADPCM audio (ADPCM: 3 to 5 bits a sample",
    "clips/flac.wav": "holds FLAC data behind a .wav name",
    "clips/silent.wav": "silent (all samples zero)",
}


@pytest.fixture
def bad_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    clips = root / "clips"
    clips.mkdir(parents=True)
    layouts.write_wav(clips / "good.wav")
    layouts.write_wav(clips / "good2.wav")
    (clips / "empty.wav").write_bytes(b"")
    layouts.write_wav(clips / "full.wav")
    (clips / "truncated.wav").write_bytes((clips / "full.wav").read_bytes()[:20])
    (clips / "full.wav").unlink()
    nan = layouts.tone(0.5, 16000)
    nan[100:200] = np.nan
    sf.write(clips / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(clips / "zero.wav", np.zeros(0), 16000)
    layouts.write_wav(clips / "six.wav", channels=6)
    layouts.write_wav(clips / "eight.wav", subtype="PCM_U8")
    layouts.write_wav(clips / "adpcm.wav", subtype="IMA_ADPCM")  # as a few UrbanSound8K clips
    sf.write(clips / "flac.wav", layouts.tone(0.5, 16000), 16000, format="FLAC")
    sf.write(clips / "silent.wav", np.zeros(8000), 16000)
    layouts.write_wav(clips / "locked.wav")
    os.chmod(clips / "locked.wav", 0)
    (clips / "notaudio.wav").write_text("this is a text file, not audio\n" * 20)
    names = ["good", "good2", *(Path(p).stem for p in [*FATAL, *WARNINGS])]
    rows = [
        (f"clips/{n}.wav", "a" if i % 2 else "b", 1 + i // 2 % 2, f"g{i}")
        for i, n in enumerate(names)
    ]
    rows.append(("../outside.wav", "a", 1, "gx"))
    layouts.make_csv(root, rows)
    return root


def test_every_bad_clip_is_named_with_its_problem(
    bad_corpus: Path, cli: Callable[..., Any]
) -> None:
    result = cli("data", "check", bad_corpus, "--dataset", "csv")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    for path, problem in FATAL.items():
        assert any(line.startswith("error") and f"{path}: {problem}" in line for line in lines), (
            path
        )
    for path, problem in WARNINGS.items():
        assert any(line.startswith("warning") and f"{path}: {problem}" in line for line in lines), (
            path
        )
    assert any(
        "meta.csv:" in line and "'../outside.wav' leaves the dataset folder" in line
        for line in lines
    )
    assert not any("good.wav" in line for line in lines if line.startswith(("error", "warning")))
    assert "8 clips or metadata rows cannot be used" in result.stderr


def test_skip_bad_writes_the_list_and_runs_can_leave_them_out(
    bad_corpus: Path, cli: Callable[..., Any], tmp_path: Path
) -> None:
    skip = tmp_path / "skip.txt"
    result = cli("data", "check", bad_corpus, "--dataset", "csv", "--skip-bad", "--skip-list", skip)
    assert result.exit_code == 0, result.output
    assert read_skip_list(skip) == set(FATAL)
    index = load_dataset("csv", bad_corpus, strict=False).without(read_skip_list(skip))
    assert {c.path for c in index.clips} == {"clips/good.wav", "clips/good2.wav", *WARNINGS}
    assert f"skip_list: {{value: {skip}}}" in result.stdout


def test_a_clean_dataset_passes(tmp_path: Path, cli: Callable[..., Any]) -> None:
    layouts.make_esc50(tmp_path)
    result = cli("data", "check", tmp_path, "-d", "esc50")
    assert result.exit_code == 0, result.output
    assert "every clip of esc50 is usable" in result.stdout
    assert "44100 Hz: 30" in result.stdout
    assert "fold 5" in result.stdout


def test_check_runs_as_a_real_command(bad_corpus: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "data", "check", str(bad_corpus), "-d", "csv"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "clips/nan.wav: has NaN or infinite samples" in proc.stdout


def test_a_header_problem_is_said_once(tmp_path: Path) -> None:
    """64 channels is refused by the header check and by decoding alike: the clip's report
    names it once (decoding is left out where the header already failed the clip)."""
    from asc_sweep.data.base import Clip
    from asc_sweep.data.check import inspect_clip

    sf.write(tmp_path / "array.wav", np.zeros((4000, 64), dtype=np.float32), 16000)
    report = inspect_clip(tmp_path, Clip("array.wav", "a", "g"))
    assert report.errors == (
        "64 channels; at most 8 are downmixed to mono (a microphone-array recording? mix it "
        "down first)",
    )


def test_a_low_rate_clip_is_measured_against_the_rate_most_clips_have(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    """UrbanSound8K keeps each upload's rate: where no rate holds most clips (here six rates,
    two clips each), the warning names the commonest rate and does not say "most"."""
    layouts.make_urbansound8k(tmp_path)
    result = cli("data", "check", tmp_path, "-d", "urbansound8k")
    assert result.exit_code == 0, result.output
    assert "8000 Hz while the commonest rate is" in result.stdout
    assert "while most clips are" not in result.stdout
