"""ESC-50 (and its ESC-10 subset): ``meta/esc50.csv`` and ``audio/``, five official folds.

Columns: ``filename,fold,target,category,esc10,src_file,take``. Clips cut from one source
recording (``src_file``) share a fold in the official setup; they are one group.
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


def load_esc50(root: Path, name: str = "esc50", esc10: bool = False) -> DatasetIndex:
    def clip(row: Row) -> Clip:
        path = safe_relative(row, "audio/" + row.get("filename"))
        return Clip(path, row.get("category"), row.get("src_file"), fold_number(row))

    def in_esc10(row: Row) -> bool:
        return row.values.get("esc10", "").strip().lower() == "true"

    return load_fold_column(
        name,
        root,
        root / "meta" / "esc50.csv",
        required=["filename", "fold", "category", "src_file"],
        clip=clip,
        keep=in_esc10 if esc10 else None,
    )
