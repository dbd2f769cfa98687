"""``asc-sweep data check``: validate a dataset's layout and every clip, and summarise it.

Fatal problems (a clip that cannot be read, decoded or used) make the check fail; warnings
(6 channels, 8-bit or ADPCM audio, FLAC data behind a ``.wav`` name, silence) are reported
and the clip is still used. Metadata rows that cannot be used (a path with ``..``, a bad
fold) are fatal too and are named by file and line.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from asc_sweep.data.audio import MAX_CHANNELS, UNKNOWN_LENGTH, AudioError, decode
from asc_sweep.data.base import AUDIO_EXTENSIONS, Clip, DatasetIndex
from asc_sweep.sweep.config import DEFAULTS, n_fft_for

DEFAULT_WIN_MS = float(DEFAULTS["win_ms"])

FORMAT_OF_EXTENSION = {".wav": {"WAV", "WAVEX", "RF64"}, ".flac": {"FLAC"}, ".ogg": {"OGG"}}


@dataclass(frozen=True)
class ClipReport:
    """What was found in one clip."""

    path: str  # relative to the dataset root
    sample_rate: int | None = None
    channels: int | None = None
    seconds: float | None = None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    where: str = ""  # the metadata file and line that list it

    @property
    def name(self) -> str:
        return f"{self.where}: {self.path}" if self.where else self.path


@dataclass
class CheckReport:
    """The whole dataset: per-clip reports, metadata problems and the summary tables."""

    index: DatasetIndex
    clips: list[ClipReport] = field(default_factory=list)
    fold_problems: list[str] = field(default_factory=list)  # no skip list can mend these

    @property
    def bad_clips(self) -> list[ClipReport]:
        return [c for c in self.clips if c.errors]

    @property
    def fatal(self) -> bool:
        return bool(self.bad_clips or self.index.problems or self.fold_problems)

    def class_fold_counts(self) -> dict[str, dict[int, int]]:
        """Clips per class in each fold's test part (for fold-column datasets: the fold)."""
        table: dict[str, dict[int, int]] = {
            c: dict.fromkeys(self.index.folds, 0) for c in self.index.classes
        }
        for fold in self.index.folds:
            for i in self.index.split(fold).test:
                table[self.index.clips[i].label][fold] += 1
        return table

    def durations(self) -> tuple[float, float, float] | None:
        seconds = [c.seconds for c in self.clips if c.seconds is not None]
        if not seconds:
            return None
        return min(seconds), statistics.median(seconds), max(seconds)

    def rates(self) -> Counter[int]:
        return Counter(c.sample_rate for c in self.clips if c.sample_rate is not None)

    def channels(self) -> Counter[int]:
        return Counter(c.channels for c in self.clips if c.channels is not None)


def inspect_clip(root: Path, clip: Clip) -> ClipReport:
    """Every check on one clip; never raises for a bad file."""
    return replace(_inspect(root, clip), where=clip.where)


def _inspect(root: Path, clip: Clip) -> ClipReport:
    path = root / clip.path
    errors: list[str] = []
    warnings: list[str] = []
    try:
        st = path.stat()
    except FileNotFoundError:
        return ClipReport(clip.path, errors=("file not found",))
    except OSError as exc:
        return ClipReport(clip.path, errors=(f"cannot be read ({exc.strerror})",))
    if not path.is_file():
        return ClipReport(clip.path, errors=("is not a file",))
    if st.st_size == 0:
        return ClipReport(clip.path, errors=("empty file (0 bytes)",))
    if not st.st_mode & 0o444:
        errors.append(f"permissions deny reading (mode {oct(st.st_mode & 0o777)})")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile reports every unreadable format differently
        return ClipReport(clip.path, errors=(*errors, f"cannot decode ({_short(exc)})"))
    ext = path.suffix.lower()
    if ext not in AUDIO_EXTENSIONS:
        warnings.append(f"extension {ext or '(none)'} is not one of {', '.join(AUDIO_EXTENSIONS)}")
    elif info.format not in FORMAT_OF_EXTENSION[ext]:
        warnings.append(f"holds {info.format} data behind a {ext} name")
    if info.channels > MAX_CHANNELS:
        errors.append(
            f"{info.channels} channels; at most {MAX_CHANNELS} are downmixed to mono (a "
            "microphone-array recording? mix it down first)"
        )
    elif info.channels > 2:
        warnings.append(f"{info.channels} channels (downmixed to mono)")
    if info.subtype in ("PCM_U8", "PCM_S8"):
        warnings.append("8-bit audio (coarse: 48 dB of dynamic range)")
    elif "ADPCM" in info.subtype or info.subtype.startswith(("G721", "G723")):
        warnings.append(
            f"{info.subtype} audio (ADPCM: 3 to 5 bits a sample, lossy, coarser than 8-bit)"
        )
    known = info.samplerate and info.frames != UNKNOWN_LENGTH
    seconds = info.frames / info.samplerate if known else None
    window = n_fft_for(info.samplerate, DEFAULT_WIN_MS) if info.samplerate else 0
    if info.frames == 0:
        errors.append("zero length (no samples)")
    elif info.frames < window:
        errors.append(
            f"{info.frames} samples, shorter than one {DEFAULT_WIN_MS:g} ms analysis window "
            f"({window} samples at {info.samplerate} Hz)"
        )
    elif (shortfall := _wav_shortfall(path)) is not None:
        errors.append(
            f"truncated: the header promises {shortfall[0]} bytes of audio, the file holds "
            f"{shortfall[1]}"
        )
    elif not errors:  # decoding would only say again what the header did (channels)
        try:
            wave, _ = decode(path)
        except AudioError as exc:
            errors.append(str(exc).split(": ", 1)[-1])
        else:
            if len(wave) < info.frames:
                errors.append(
                    f"truncated: header says {info.frames} samples, the file holds {len(wave)}"
                )
            elif not np.any(wave):
                warnings.append("silent (all samples zero)")
    return ClipReport(
        clip.path, info.samplerate, info.channels, seconds, tuple(errors), tuple(warnings)
    )


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(promised, present) bytes of a RIFF/WAVE file's data chunk when the file is shorter
    than its header says (a download or copy cut short); None for complete or other files."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(f.fileno()).st_size
            while chunk := f.read(8):
                if len(chunk) < 8:
                    return None
                length = int.from_bytes(chunk[4:], "little")
                if chunk[:4] == b"data":
                    present = size - f.tell()
                    streaming = length in (0, 0xFFFFFFFF)  # written before its length was known
                    return (length, present) if present < length and not streaming else None
                f.seek(length + (length & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None


def _rate_warnings(clips: list[ClipReport]) -> list[ClipReport]:
    """Warn of clips recorded at less than half the dataset's usual rate: runs at that rate
    upsample them, and they have nothing in the upper band the others have."""
    rates = Counter(c.sample_rate for c in clips if c.sample_rate)
    if not rates:
        return clips
    usual, count = rates.most_common(1)[0]
    most = "most clips are" if count * 2 > rates.total() else "the commonest rate is"
    return [
        replace(
            c,
            warnings=(
                *c.warnings,
                f"{c.sample_rate} Hz while {most} {usual} Hz: runs upsample it, and it "
                f"has nothing above {c.sample_rate // 2} Hz",
            ),
        )
        if c.sample_rate and c.sample_rate * 2 <= usual
        else c
        for c in clips
    ]


def check_dataset(
    index: DatasetIndex,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Inspect every clip in parallel (decoding releases the GIL)."""
    report = CheckReport(index)
    with ThreadPoolExecutor(workers or 2 * (os.cpu_count() or 1)) as pool:
        for done, clip_report in enumerate(
            pool.map(lambda c: inspect_clip(index.root, c), index.clips), start=1
        ):
            report.clips.append(clip_report)
            if progress:
                progress(done, len(index.clips))
    report.clips = _rate_warnings(report.clips)
    for fold in index.folds:
        untrained, untested = index.fold_problems(fold)
        report.fold_problems += untrained + untested
    return report


def write_skip_list(report: CheckReport, path: Path) -> int:
    """Write the clips with fatal problems (one relative path per line); returns how many."""
    lines = [
        f"# skip list written by asc-sweep data check for {report.index.name} at {report.index.root}"
    ]
    lines += [f"# metadata row left out: {p}" for p in report.index.problems]
    lines += [c.path for c in report.bad_clips]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return len(report.bad_clips)


def read_skip_list(path: Path) -> set[str]:
    """Clip paths from a skip list (comments and blank lines ignored)."""
    return {
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
