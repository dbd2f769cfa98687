"""Per-epoch checkpoints, written atomically, so a requeued run resumes where it stopped."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from asc_sweep.errors import CheckpointError

CHECKPOINT = "checkpoint.pt"
# What a checkpoint's state holds; one written under another layout (an older asc-sweep, with
# torch.optim's optimiser state) is not resumed: the run starts over.
FORMAT = 2


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` as the run's checkpoint; a crash mid-write leaves the previous one.

    Raises:
        CheckpointError: the folder cannot take it (a full disk or quota, a read-only or
            missing mount): a problem of the host, not of the run, so an agent puts the run
            back (its previous checkpoint intact) and stops instead of failing it.
    """
    tmp = run_dir / f".{CHECKPOINT}.tmp"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Through a Python file, so that a failed write raises the system's error (torch's
        # own writer reports a full disk as an "unexpected pos" assertion).
        with open(tmp, "wb") as f:
            torch.save({**state, "format": FORMAT}, f)
        os.replace(tmp, run_dir / CHECKPOINT)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(
            f"{run_dir / CHECKPOINT}: cannot write the run's checkpoint ({exc.strerror or exc}); "
            "the run keeps its previous one; free space there or make it writable"
        ) from None


def load_checkpoint(run_dir: Path | None, config_hash: str) -> dict[str, Any] | None:
    """The last checkpoint of this same configuration, or None."""
    if run_dir is None or not (run_dir / CHECKPOINT).exists():
        return None
    try:
        # weights_only: tensors, numbers, strings and containers; no pickled code runs.
        state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt or holding code: start over, never fail
        warnings.warn(
            f"{run_dir / CHECKPOINT}: unreadable checkpoint ({type(exc).__name__}); "
            "the run starts from scratch",
            stacklevel=2,
        )
        return None
    if not isinstance(state, dict) or state.get("config_hash") != config_hash:
        return None
    if state.get("format") != FORMAT:
        warnings.warn(
            f"{run_dir / CHECKPOINT}: written by another version of asc-sweep; the run starts "
            "from scratch",
            stacklevel=2,
        )
        return None
    return state


def remove_checkpoint(run_dir: Path | None) -> None:
    """Drop a finished run's checkpoint (and its folder, when nothing else is in it)."""
    if run_dir is None:
        return
    (run_dir / CHECKPOINT).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # missing, or holds something else
        run_dir.rmdir()
