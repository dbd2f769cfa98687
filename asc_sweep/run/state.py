"""Everything a run must carry across a restart, as one object that saves and restores itself.

A requeued run resumes from its last complete epoch: model, optimiser, schedule, gradient
scaler, early-stopping state, the per-epoch history, the time and clips trained so far (so
throughput counts every attempt), and every random stream (torch, CUDA, numpy, Python, the
crop sampler, mixup). Restoring them all is what makes a resumed run equal, to the bit on a
deterministic CPU, to one that was never interrupted.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asc_sweep.run.checkpoint import load_checkpoint, save_checkpoint


class EarlyStopping:
    """Keeps the best epoch's weights by a score (higher is better); patience 0 never stops."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_score = -float("inf")
        self.best_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.since_best = 0

    def update(self, score: float, epoch: int, net: nn.Module) -> None:
        """Record epoch ``epoch`` (1-based) with ``score``; keep the weights if it is the best."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.since_best = score, epoch, 0
            self.best_weights = copy.deepcopy(net.state_dict())
        else:
            self.since_best += 1

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.since_best >= self.patience

    @property
    def reason(self) -> str:
        return f"patience: no validation improvement for {self.patience} epochs"

    def state_dict(self) -> dict[str, Any]:
        return {
            "score": self.best_score,
            "epoch": self.best_epoch,
            "weights": self.best_weights,
            "since": self.since_best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_epoch = float(state["score"]), state["epoch"]
        self.best_weights, self.since_best = state["weights"], int(state["since"])


@dataclass
class TrainState:
    """The run's state between epochs. ``epoch`` counts complete epochs."""

    config_hash: str
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    early: EarlyStopping
    crop_rng: np.random.Generator
    mix_rng: np.random.Generator
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0  # over every attempt
    train_clips: int = 0
    resumed_from: int | None = None

    def end_epoch(self, row: dict[str, float], clips: int) -> None:
        """Account for one complete epoch: its history row, time and clips, and early stopping
        on validation accuracy (training accuracy where there is no validation part)."""
        self.epoch += 1
        self.history.append(row)
        self.train_seconds += row["time/epoch_seconds"]
        self.train_clips += clips
        self.early.update(row.get("val/accuracy", row["train/accuracy"]), self.epoch, self.net)

    def state_dict(self) -> dict[str, Any]:
        return {
            "config_hash": self.config_hash,
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "early": self.early.state_dict(),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "train_clips": self.train_clips,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "crops": self.crop_rng.bit_generator.state,
                "mixup": self.mix_rng.bit_generator.state,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.early.load_state_dict(state["early"])
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.train_seconds, self.train_clips = state["train_seconds"], state["train_clips"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self.crop_rng.bit_generator.state = rng["crops"]
        self.mix_rng.bit_generator.state = rng["mixup"]
        self.resumed_from = self.epoch

    def save(self, run_dir: Path) -> None:
        save_checkpoint(run_dir, self.state_dict())

    def restore(self, run_dir: Path | None) -> bool:
        """Load the last checkpoint of this configuration from ``run_dir``; False when none."""
        state = load_checkpoint(run_dir, self.config_hash)
        if state is None:
            return False
        self.load_state_dict(state)
        return True
