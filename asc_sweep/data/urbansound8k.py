"""UrbanSound8K: ``metadata/UrbanSound8K.csv`` and ``audio/fold1..10/``, ten official folds.

Columns: ``slice_file_name,fsID,start,end,salience,fold,classID,class``. Slices of one
Freesound recording (``fsID``) are one group. Files come at mixed sample rates, bit depths,
channel counts and lengths: the audio layer downmixes and resamples them.
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
from .esc50 import fold_number


def load_urbansound8k(root: Path, name: str = "urbansound8k") -> DatasetIndex:
    meta = root / "metadata" / "UrbanSound8K.csv"
    rows = list(read_table(meta, delimiter=","))
    if rows:
        require_columns(meta, list(rows[0].values), ["slice_file_name", "fsID", "fold", "class"])
    problems = RowProblems()

    def clip(row: Row) -> Clip:
        fold = fold_number(row)
        path = safe_relative(row, f"audio/fold{fold}/{row.get('slice_file_name')}")
        return Clip(path, row.get("class"), row.get("fsID"), fold)

    clips = problems.parse(rows, clip)
    if not clips:
        raise DataError(f"{meta}: lists no usable clips")
    return DatasetIndex(
        name, root, tuple(clips), splits_from_fold_column(clips), problems=tuple(problems)
    )
