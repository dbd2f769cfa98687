"""Per-epoch checkpoints, written atomically, so a requeued run resumes where it stopped."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{CHECKPOINT}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, run_dir / CHECKPOINT)  # a crash mid-write leaves the previous epoch's


def load_checkpoint(run_dir: Path | None, config_hash: str) -> dict[str, Any] | None:
    """The last checkpoint of this same configuration, or None."""
    if run_dir is None or not (run_dir / CHECKPOINT).exists():
        return None
    state: dict[str, Any] = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)
    return state if state.get("config_hash") == config_hash else None


def remove_checkpoint(run_dir: Path | None) -> None:
    """Drop a finished run's checkpoint (and its folder, when nothing else is in it)."""
    if run_dir is None:
        return
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # missing, or holds something else
        run_dir.rmdir()
