"""DCASE acoustic scene sets: TUT Acoustic Scenes 2016/2017 and TAU Urban Acoustic Scenes 2019/2020.

TUT 2016/2017 development sets: ``meta.txt`` (tab-separated, no header: file, scene label and,
in 2017, the recording location) and ``evaluation_setup/foldN_train.txt`` /
``foldN_evaluate.txt`` (file, scene label), four folds, paths relative to the root starting
with ``audio/``. The location is the file-name prefix (``b086`` in ``audio/b086_90_120.wav``).

TAU 2019/2020 development sets: ``meta.csv`` and ``evaluation_setup/fold1_train.csv``,
``fold1_evaluate.csv``, tab-separated *with* a header (``filename``, ``scene_label``,
``identifier``, ...), one fold; the group is the ``identifier`` (city and location).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from asc_sweep.data.base import (
    Clip,
    DataError,
    DatasetIndex,
    Row,
    RowProblems,
    Split,
    read_table,
    require_columns,
    safe_relative,
)


def _location_prefix(path: str) -> str:
    return PurePosixPath(path).stem.split("_")[0]


def _tau_identifier(path: str) -> str:
    # airport-barcelona-0-0-a.wav -> barcelona-0
    parts = PurePosixPath(path).stem.split("-")
    return "-".join(parts[1:3]) if len(parts) >= 3 else parts[0]


def _split_from_lists(
    clips: list[Clip], train_file: Path, test_file: Path, *, header: bool, problems: RowProblems
) -> Split:
    by_path = {c.path: i for i, c in enumerate(clips)}
    columns = None if header else ["filename", "scene_label"]

    def index_of(row: Row) -> int:
        rel = safe_relative(row, row.get("filename"))
        if rel not in by_path:
            raise DataError(f"{row.where}: {rel} is not a usable clip of the dataset's meta file")
        return by_path[rel]

    def indices(path: Path) -> tuple[int, ...]:
        return tuple(problems.parse(read_table(path, delimiter="\t", columns=columns), index_of))

    return Split(indices(train_file), indices(test_file))


def load_tut(root: Path, name: str) -> DatasetIndex:
    """TUT Acoustic Scenes 2016 or 2017, development set, with its four official folds."""
    meta = root / "meta.txt"
    problems = RowProblems()

    def clip(row: Row) -> Clip:
        path = safe_relative(row, row.get("filename"))
        group = (row.values.get("identifier") or "").strip() or _location_prefix(path)
        return Clip(path, row.get("scene_label"), group)

    columns = ["filename", "scene_label", "identifier"]
    clips = problems.parse(read_table(meta, delimiter="\t", columns=columns), clip)
    if not clips:
        raise DataError(f"{meta}: lists no usable clips")
    setup = root / "evaluation_setup"
    splits = {}
    for fold in range(1, 5):
        train, test = setup / f"fold{fold}_train.txt", setup / f"fold{fold}_evaluate.txt"
        if train.exists() or test.exists():
            splits[fold] = _split_from_lists(clips, train, test, header=False, problems=problems)
    if not splits:
        raise DataError(
            f"{setup}: no fold1_train.txt / fold1_evaluate.txt; is this a {name} development set?"
        )
    return DatasetIndex(name, root, tuple(clips), splits, problems=tuple(problems))


def load_tau(root: Path, name: str) -> DatasetIndex:
    """TAU Urban Acoustic Scenes 2019 or 2020 (Mobile), development set, one official fold."""
    meta = root / "meta.csv"
    problems = RowProblems()
    rows = list(read_table(meta, delimiter="\t"))
    if rows:
        require_columns(meta, list(rows[0].values), ["filename", "scene_label"])

    def clip(row: Row) -> Clip:
        path = safe_relative(row, row.get("filename"))
        group = (row.values.get("identifier") or "").strip() or _tau_identifier(path)
        return Clip(path, row.get("scene_label"), group)

    clips = problems.parse(rows, clip)
    if not clips:
        raise DataError(f"{meta}: lists no usable clips")
    setup = root / "evaluation_setup"
    split = _split_from_lists(
        clips,
        setup / "fold1_train.csv",
        setup / "fold1_evaluate.csv",
        header=True,
        problems=problems,
    )
    return DatasetIndex(name, root, tuple(clips), {1: split}, problems=tuple(problems))
