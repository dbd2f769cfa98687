"""Your own data: ``csv`` (a folder plus a metadata CSV) and ``folder`` (one sub-folder per class).

``csv``: ``ROOT/meta.csv`` with columns ``filename,label,fold`` and optionally ``group``
(paths relative to ROOT). Without ``group`` every clip is its own group.

``folder``: ``ROOT/<class>/<file>.wav|flac|ogg``. The group is the file-name part before the
first ``_`` (``loc12_0003.wav`` -> ``loc12``), so name files by recording or location to keep
them together. Folds are assigned deterministically, stratified by class and group-aware.
"""

from __future__ import annotations

from pathlib import Path

from asc_sweep.data.base import (
    AUDIO_EXTENSIONS,
    Clip,
    DataError,
    DatasetIndex,
    Row,
    fold_number,
    load_fold_column,
    safe_relative,
    splits_from_fold_column,
)
from asc_sweep.data.splits import group_folds

FOLDER_FOLDS = 4


def load_csv(root: Path, name: str = "csv") -> DatasetIndex:
    def clip(row: Row) -> Clip:
        path = safe_relative(row, row.get("filename"))
        group = (row.values.get("group") or "").strip() or path
        return Clip(path, row.get("label"), group, fold_number(row))

    return load_fold_column(
        name, root, root / "meta.csv", required=["filename", "label", "fold"], clip=clip
    )


def load_folder(root: Path, name: str = "folder", n_folds: int = FOLDER_FOLDS) -> DatasetIndex:
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    files = sorted(
        p for p in root.glob("*/*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )
    if not files:
        raise DataError(f"{root}: no audio files in class sub-folders (ROOT/<class>/<file>.wav)")
    labels = [p.parent.name for p in files]
    groups = [
        f"{p.parent.name}/{p.stem.split('_')[0]}" if "_" in p.stem else f"{p.parent.name}/{p.stem}"
        for p in files
    ]
    folds = group_folds(labels, groups, n_folds)
    clips = [
        Clip(p.relative_to(root).as_posix(), label, group, fold)
        for p, label, group, fold in zip(files, labels, groups, folds, strict=True)
    ]
    return DatasetIndex(name, root, tuple(clips), splits_from_fold_column(clips))
