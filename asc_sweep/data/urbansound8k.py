"""UrbanSound8K: ``metadata/UrbanSound8K.csv`` and ``audio/fold1..10/``, ten official folds.

Columns: ``slice_file_name,fsID,start,end,salience,fold,classID,class``. Slices of one
Freesound recording (``fsID``) are one group. Files come at mixed sample rates, bit depths,
channel counts and lengths: the audio layer downmixes and resamples them.
"""

from __future__ import annotations

from pathlib import Path

from asc_sweep.data.base import (
    Clip,
    DatasetIndex,
    Row,
    fold_number,
    load_fold_column,
    safe_relative,
)


def load_urbansound8k(root: Path, name: str = "urbansound8k") -> DatasetIndex:
    def clip(row: Row) -> Clip:
        fold = fold_number(row)
        path = safe_relative(row, f"audio/fold{fold}/{row.get('slice_file_name')}")
        return Clip(path, row.get("class"), row.get("fsID"), fold)

    return load_fold_column(
        name,
        root,
        root / "metadata" / "UrbanSound8K.csv",
        required=["slice_file_name", "fsID", "fold", "class"],
        clip=clip,
    )
