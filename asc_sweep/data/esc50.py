"""ESC-50 (and its ESC-10 subset): ``meta/esc50.csv`` and ``audio/``, five official folds.

Columns: ``filename,fold,target,category,esc10,src_file,take``. Clips cut from one source
recording (``src_file``) share a fold in the official setup; they are one group.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    Clip,
    DataError,
    DatasetIndex,
    Row,
    RowProblems,
    read_table,
    require_columns,
    safe_relative,
    splits_from_fold_column,
)


def fold_number(row: Row, key: str = "fold") -> int:
    fold = row.get(key)
    if not fold.isdigit() or int(fold) < 1:
        raise DataError(f"{row.where}: {key} {fold!r} is not a whole number >= 1")
    return int(fold)


def load_esc50(root: Path, name: str = "esc50", esc10: bool = False) -> DatasetIndex:
    meta = root / "meta" / "esc50.csv"
    rows = list(read_table(meta, delimiter=","))
    if rows:
        require_columns(meta, list(rows[0].values), ["filename", "fold", "category", "src_file"])
    if esc10:
        rows = [r for r in rows if r.values.get("esc10", "").strip().lower() == "true"]
    problems = RowProblems()

    def clip(row: Row) -> Clip:
        path = safe_relative(row, "audio/" + row.get("filename"))
        return Clip(path, row.get("category"), row.get("src_file"), fold_number(row))

    clips = problems.parse(rows, clip)
    if not clips:
        raise DataError(
            f"{meta}: lists no usable clips" + (" of the ESC-10 subset" if esc10 else "")
        )
    return DatasetIndex(
        name, root, tuple(clips), splits_from_fold_column(clips), problems=tuple(problems)
    )
