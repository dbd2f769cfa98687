"""What a dataset adapter returns: the clips, their labels and groups, and the official folds."""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TypeVar

from asc_sweep.errors import AscSweepError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
T = TypeVar("T")


class DataError(AscSweepError):
    """A dataset's layout or metadata is wrong; the message names the file (and line)."""


@dataclass(frozen=True)
class Clip:
    """One audio file of a dataset.

    ``path`` is relative to the dataset root, in POSIX form; ``group`` is the recording or
    location it comes from (clips of one group never straddle a train/validation/test split).
    """

    path: str
    label: str
    group: str
    fold: int | None = None  # for datasets whose metadata has a fold column
    where: str = field(default="", compare=False)  # the metadata file and line listing it

    @property
    def name(self) -> str:
        """How messages name the clip: ``meta.csv:12: audio/x.wav``."""
        return f"{self.where}: {self.path}" if self.where else self.path


@dataclass(frozen=True)
class Split:
    """Indices into ``DatasetIndex.clips`` for one fold."""

    train: tuple[int, ...]
    test: tuple[int, ...]


@dataclass(frozen=True)
class DatasetIndex:
    """A dataset as an adapter reads it from its own metadata."""

    name: str
    root: Path
    clips: tuple[Clip, ...]
    splits: Mapping[int, Split]
    classes: tuple[str, ...] = field(default=())
    problems: tuple[str, ...] = ()  # metadata rows left out, each naming file and line

    def __post_init__(self) -> None:
        if not self.classes:
            object.__setattr__(self, "classes", tuple(sorted({c.label for c in self.clips})))

    @property
    def folds(self) -> tuple[int, ...]:
        return tuple(sorted(self.splits))

    def split(self, fold: int) -> Split:
        """The official train/test split of ``fold`` (1-based, as the dataset numbers it)."""
        if fold not in self.splits:
            allowed = ", ".join(map(str, self.folds))
            raise DataError(f"{self.name} at {self.root}: no fold {fold}; folds: {allowed}")
        return self.splits[fold]

    def label_index(self, label: str) -> int:
        return self.classes.index(label)

    def fingerprint(self) -> str:
        """Changes when any clip is added, removed, relabelled or rewritten (size or mtime)."""
        h = hashlib.sha256(self.name.encode())
        for clip in sorted(self.clips, key=lambda c: c.path):
            try:
                st = os.stat(self.root / clip.path)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            h.update(f"{clip.path}\t{clip.label}\t{stamp}\n".encode())
        return h.hexdigest()[:16]

    def without(self, paths: set[str]) -> DatasetIndex:
        """The same dataset without the clips at ``paths`` (a skip list); splits re-indexed."""
        return self.dropping({i for i, c in enumerate(self.clips) if c.path in paths})

    def dropping(self, drop: set[int], problems: Sequence[str] = ()) -> DatasetIndex:
        """The same dataset without the clips at indices ``drop``, with ``problems`` added."""
        keep = [i for i in range(len(self.clips)) if i not in drop]
        new_index = {old: new for new, old in enumerate(keep)}
        splits = {
            fold: Split(
                tuple(new_index[i] for i in s.train if i in new_index),
                tuple(new_index[i] for i in s.test if i in new_index),
            )
            for fold, s in self.splits.items()
        }
        kept = tuple(self.clips[i] for i in keep)
        return DatasetIndex(
            self.name, self.root, kept, splits, self.classes, (*self.problems, *problems)
        )

    def fold_problems(self, fold: int) -> tuple[list[str], list[str]]:
        """What makes ``fold`` unfit to train and test on: classes tested but never trained
        on (fatal: the model cannot predict them), and classes without test clips (their
        accuracy is undefined; fatal for ``data check``, which wants every fold complete)."""
        split = self.split(fold)
        trained = {self.clips[i].label for i in split.train}
        tested = Counter(self.clips[i].label for i in split.test)
        where = f"{self.name} at {self.root}, fold {fold}"
        untrained = [
            f"{where}: class {label!r} is tested but never trained on ({n} test clips, no "
            "training clip); every class needs training clips outside this fold"
            for label, n in sorted(tested.items())
            if label not in trained
        ]
        untested = [
            f"{where}: no test clips of class {label!r}; every fold should test every class"
            for label in self.classes
            if label not in tested
        ]
        return untrained, untested


@dataclass(frozen=True)
class Row:
    """One metadata row with where it came from, for error messages."""

    file: Path
    line: int
    values: Mapping[str, str]

    def get(self, key: str) -> str:
        value = self.values.get(key)
        if value is None or value == "":
            raise DataError(f"{self.file}:{self.line}: no {key!r} in this row")
        return value.strip()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def read_table(
    path: Path, *, delimiter: str, columns: Sequence[str] | None = None
) -> Iterator[Row]:
    """Rows of a metadata file: with a header when ``columns`` is None, else named by ``columns``.

    Raises:
        DataError: the file is missing or a required column is absent.
    """
    if not path.is_file():
        raise DataError(f"{path}: metadata file not found")
    line = 1
    with path.open(newline="", encoding="utf-8-sig") as f:
        try:
            reader = csv.reader(f, delimiter=delimiter)
            header = list(columns) if columns is not None else [h.strip() for h in next(reader, [])]
            start = 1 if columns is not None else 2
            for line, values in enumerate(reader, start=start):
                if any("\x00" in v for v in values):
                    raise DataError(
                        f"{path}:{line}: a NUL byte; the metadata file is binary or damaged"
                    )
                if not values or all(not v.strip() for v in values):
                    continue
                yield Row(path, line, dict(zip(header, values, strict=False)))
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: not valid UTF-8 (byte {exc.object[exc.start]:#x} after line {line}); "
                "save it as UTF-8"
            ) from None
        except csv.Error as exc:
            raise DataError(f"{path}:{line}: not a readable table ({exc})") from None


class RowProblems(list[str]):
    """Collects metadata rows that cannot be used, so that every one is reported at once."""

    def parse(self, rows: Iterator[Row] | list[Row], fn: Callable[[Row], T]) -> list[T]:
        out = []
        for row in rows:
            try:
                item = fn(row)
            except DataError as exc:
                self.append(str(exc))
                continue
            if isinstance(item, Clip) and not item.where:
                item = replace(item, where=row.where)
            out.append(item)
        return out


def require_columns(path: Path, header: Sequence[str], needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header)}"
        )


def safe_relative(row: Row, value: str) -> str:
    """A clip path from metadata: relative, inside the root, in POSIX form."""
    p = PurePosixPath(value.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise DataError(
            f"{row.where}: path {value!r} leaves the dataset folder; paths must be relative, without '..'"
        )
    return str(p)


def splits_from_fold_column(clips: Sequence[Clip]) -> dict[int, Split]:
    """Leave-one-fold-out: fold k tests on the clips marked k and trains on the rest."""
    folds = sorted({c.fold for c in clips if c.fold is not None})
    return {
        k: Split(
            tuple(i for i, c in enumerate(clips) if c.fold != k),
            tuple(i for i, c in enumerate(clips) if c.fold == k),
        )
        for k in folds
    }


def load_fold_column(
    name: str,
    root: Path,
    meta: Path,
    *,
    required: Sequence[str],
    clip: Callable[[Row], Clip],
    keep: Callable[[Row], bool] | None = None,
) -> DatasetIndex:
    """A dataset described by one comma-separated metadata file with a fold column.

    Every row goes through ``clip``; rows it rejects are collected as problems, each naming
    its file and line. Leave-one-fold-out splits follow the fold column.
    """
    rows = list(read_table(meta, delimiter=","))
    if rows:
        require_columns(meta, list(rows[0].values), required)
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    problems = RowProblems()
    clips = problems.parse(rows, clip)
    if not clips:
        raise DataError(f"{meta}: lists no usable clips")
    return DatasetIndex(
        name, root, tuple(clips), splits_from_fold_column(clips), problems=tuple(problems)
    )


def fold_number(row: Row, key: str = "fold") -> int:
    fold = row.get(key)
    if not fold.isdigit() or int(fold) < 1:
        raise DataError(f"{row.where}: {key} {fold!r} is not a whole number >= 1")
    return int(fold)
