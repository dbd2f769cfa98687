"""Datasets: adapters that read each dataset's own metadata, audio decoding, and the cache."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from asc_sweep.data.base import Clip, DataError, DatasetIndex, Split
from asc_sweep.data.custom import load_csv, load_folder
from asc_sweep.data.dcase import load_tau, load_tut
from asc_sweep.data.esc50 import load_esc50
from asc_sweep.data.urbansound8k import load_urbansound8k
from asc_sweep.sweep.config import DATASET_FOLDS

Adapter = Callable[[Path], DatasetIndex]

DATASETS: dict[str, Adapter] = {
    "synth": partial(load_csv, name="synth"),
    "csv": load_csv,
    "folder": load_folder,
    "dcase2016": partial(load_tut, name="dcase2016"),
    "dcase2017": partial(load_tut, name="dcase2017"),
    "tau2019": partial(load_tau, name="tau2019"),
    "tau2020": partial(load_tau, name="tau2020"),
    "esc50": load_esc50,
    "esc10": partial(load_esc50, name="esc10", esc10=True),
    "urbansound8k": load_urbansound8k,
}

OFFICIAL_FOLDS = DATASET_FOLDS


def load_dataset(name: str, root: str | Path, *, strict: bool = True) -> DatasetIndex:
    """Read a dataset's metadata with its adapter.

    With ``strict`` (the default) any unusable metadata row is an error; without it, such
    rows are left out and listed in ``DatasetIndex.problems`` (what ``data check`` reports).

    Raises:
        DataError: unknown dataset, missing folder, or bad metadata (naming file and line).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    path = Path(root)
    if path.exists() and not path.is_dir():
        raise DataError(f"{path}: not a folder; data_root is the dataset's folder (dataset {name})")
    if not path.is_dir():
        raise DataError(f"{path}: dataset folder not found (dataset {name})")
    index = vet(DATASETS[name](path))
    if strict and index.problems:
        raise DataError("\n".join(index.problems))
    return index


def vet(index: DatasetIndex) -> DatasetIndex:
    """Leave out (and list as problems) the clips no adapter can judge alone: listed twice,
    in a fold the dataset does not have, or a link that leads outside the dataset folder."""
    problems: list[str] = []
    drop: set[int] = set()
    first: dict[str, str] = {}
    official = OFFICIAL_FOLDS.get(index.name) if index.name not in ("synth", "folder") else None
    root = index.root.resolve()
    for i, clip in enumerate(index.clips):
        line = clip.where.rsplit(":", 1)[-1] if clip.where else "?"
        if clip.path in first:
            problems.append(f"{clip.name} is listed again (first on line {first[clip.path]})")
            drop.add(i)
            continue
        first[clip.path] = line
        if official is not None and clip.fold is not None and clip.fold > official:
            problems.append(
                f"{clip.where or clip.path}: fold {clip.fold} does not exist; {index.name} has "
                f"folds 1-{official}"
            )
            drop.add(i)
            continue
        target = index.root / clip.path
        try:
            outside = target.is_symlink() and not target.resolve().is_relative_to(root)
        except (OSError, RuntimeError) as exc:  # a name too long, links in a loop
            where = f"{clip.where}: " if clip.where else ""
            shown = clip.path if len(clip.path) <= 80 else f"{clip.path[:77]}..."
            why = exc.strerror if isinstance(exc, OSError) else "links that lead back to it"
            problems.append(f"{where}{shown}: not a usable path ({why})")
            drop.add(i)
            continue
        if outside:
            problems.append(
                f"{clip.name}: a link to a file outside the dataset folder "
                f"({target.resolve()}); copy the file in, or point data_root at the real folder"
            )
            drop.add(i)
    return index.dropping(drop, problems) if drop else index


__all__ = [
    "DATASETS",
    "OFFICIAL_FOLDS",
    "Clip",
    "DataError",
    "DatasetIndex",
    "Split",
    "load_dataset",
]
