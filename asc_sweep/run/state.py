"""Everything a run must carry across a restart, as one object that saves and restores itself.

A requeued run resumes from its last complete epoch: model, optimiser, schedule, gradient
scaler, model-selection state (best or averaged weights), the per-epoch history, the time and
clips trained so far (so throughput counts every attempt), and every random stream (torch,
CUDA, numpy, Python, the crop sampler, mixup). Restoring them all is what makes a resumed run
equal, to the bit on a deterministic CPU, to one that was never interrupted.
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
from asc_sweep.run.optim import LrSchedule, Optimizer


class ModelSelection:
    """Which weights a run is tested with, and when it may stop early.

    Rules (the ``selection`` knob):
    - ``best_accuracy``: the epoch of best validation accuracy (training accuracy without a
      validation part); ``patience`` epochs without a new best end the run.
    - ``best_loss``: the epoch of lowest validation loss averaged over it and the two before
      (one epoch's figure on a small validation part is mostly noise); patience as above.
    - ``average``: the mean of the weights (and batch-norm statistics) at the end of each of
      the last ``average_epochs`` epochs (the last weights when patience ends the run before
      that window).
    - ``last``: the last epoch's weights.

    Patience counts epochs without a new best validation accuracy (smoothed validation loss
    under ``best_loss``), from epoch ``min_epochs`` on; 0 never stops.
    """

    SMOOTH = 3

    def __init__(
        self,
        rule: str = "best_accuracy",
        patience: int = 0,
        *,
        min_epochs: int = 0,
        average_epochs: int = 1,
        total_epochs: int = 1,
    ) -> None:
        self.rule, self.patience, self.min_epochs = rule, patience, min_epochs
        self.average_from = max(1, total_epochs - average_epochs + 1)
        self.best_score = -float("inf")
        self.best_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.since_best = 0
        self.averaged = 0
        self.losses: list[float] = []

    def update(self, row: dict[str, float], epoch: int, net: nn.Module) -> None:
        """Record epoch ``epoch`` (1-based, its history ``row``); keep the weights it selects."""
        if self.rule == "best_loss":
            self.losses.append(row.get("val/loss", row["train/loss"]))
            score = -float(np.mean(self.losses[-self.SMOOTH :]))
        else:
            score = row.get("val/accuracy", row["train/accuracy"])
        improved = score > self.best_score
        if improved:
            self.best_score, self.since_best = score, 0
        elif epoch > self.min_epochs:
            self.since_best += 1
        if self.rule in ("average", "last"):
            self.best_epoch = epoch
            if self.rule == "average" and epoch >= self.average_from:
                self._accumulate(net)
        elif improved:
            self.best_epoch = epoch
            self.best_weights = copy.deepcopy(net.state_dict())

    def _accumulate(self, net: nn.Module) -> None:
        """Running mean of the weights; integer buffers (batch counts) keep the last value."""
        state = net.state_dict()
        self.averaged += 1
        if self.best_weights is None:
            self.best_weights = {k: v.detach().clone() for k, v in state.items()}
            return
        for key, value in state.items():
            kept = self.best_weights[key]
            if kept.is_floating_point():
                kept.add_(value.detach() - kept, alpha=1.0 / self.averaged)
            else:
                kept.copy_(value)

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.since_best >= self.patience

    @property
    def reason(self) -> str:
        return f"patience: no validation improvement for {self.patience} epochs"

    @property
    def scored(self) -> bool:
        """Whether ``best_score`` is a validation figure of the selected weights."""
        return self.rule == "best_accuracy"

    def state_dict(self) -> dict[str, Any]:
        return {
            "score": self.best_score,
            "epoch": self.best_epoch,
            "weights": self.best_weights,
            "since": self.since_best,
            "averaged": self.averaged,
            "losses": self.losses,
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        """Restore from ``state_dict``; the weights go to ``device`` (the run's: a checkpoint is
        read onto the CPU, and the average's next epoch adds the model's weights in place)."""
        self.best_score, self.best_epoch = float(state["score"]), state["epoch"]
        weights = state["weights"]
        if weights is not None and device is not None:
            weights = {key: value.to(device) for key, value in weights.items()}
        self.best_weights, self.since_best = weights, int(state["since"])
        self.averaged, self.losses = int(state["averaged"]), list(state["losses"])


@dataclass
class TrainState:
    """The run's state between epochs. ``epoch`` counts complete epochs."""

    config_hash: str
    net: nn.Module
    optimizer: Optimizer
    scheduler: LrSchedule
    scaler: torch.amp.GradScaler
    selection: ModelSelection
    crop_rng: np.random.Generator
    mix_rng: np.random.Generator
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0  # over every attempt
    train_clips: int = 0
    resumed_from: int | None = None
    # Where this attempt trains (runtime.environment), and the attempts before it that trained
    # some of its epochs: {"epochs": [first, last], "environment": ...}, from the checkpoint.
    environment: dict[str, Any] = field(default_factory=dict)
    earlier: list[dict[str, Any]] = field(default_factory=list)

    def attempts(self) -> list[dict[str, Any]]:
        """Every attempt at this run, with the epochs it trained: the earlier ones, then this
        one (``epochs`` empty where it resumed after the last epoch and only tests)."""
        first = (self.resumed_from or 0) + 1
        epochs = [first, self.epoch] if self.epoch >= first else []
        return [*self.earlier, {"epochs": epochs, "environment": self.environment}]

    def end_epoch(self, row: dict[str, float], clips: int) -> None:
        """Account for one complete epoch: its history row, time and clips, and the model
        selection rule (which also decides on early stopping)."""
        self.epoch += 1
        self.history.append(row)
        self.train_seconds += row["time/epoch_seconds"]
        self.train_clips += clips
        self.selection.update(row, self.epoch, self.net)

    def state_dict(self) -> dict[str, Any]:
        return {
            "config_hash": self.config_hash,
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "selection": self.selection.state_dict(),
            "history": self.history,
            "train_seconds": self.train_seconds,
            "train_clips": self.train_clips,
            "attempts": self.attempts(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": _numpy_state(),
                "python": random.getstate(),
                "crops": self.crop_rng.bit_generator.state,
                "mixup": self.mix_rng.bit_generator.state,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty where the attempt that wrote it had no loss scaling
            self.scaler.load_state_dict(state["scaler"])
        self.selection.load_state_dict(state["selection"], next(self.net.parameters()).device)
        self.epoch, self.history = int(state["epoch"]), list(state["history"])
        self.train_seconds, self.train_clips = state["train_seconds"], state["train_clips"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            # One state per GPU the writing process saw; a process that sees fewer (an agent
            # pinned to one GPU, another host) takes those it has.
            for index, gpu_state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(gpu_state, index)
        np.random.set_state(_numpy_state_from(rng["numpy"]))
        random.setstate(rng["python"])
        self.crop_rng.bit_generator.state = rng["crops"]
        self.mix_rng.bit_generator.state = rng["mixup"]
        self.resumed_from = self.epoch
        # Checkpoints written before attempts were recorded have none.
        earlier = state.get("attempts")
        self.earlier = [
            a
            for a in (earlier if isinstance(earlier, list) else [])
            if isinstance(a, dict) and isinstance(a.get("environment"), dict)
        ]

    def save(self, run_dir: Path) -> None:
        save_checkpoint(run_dir, self.state_dict())

    def restore(self, run_dir: Path | None) -> bool:
        """Load the last checkpoint of this configuration from ``run_dir``; False when none."""
        state = load_checkpoint(run_dir, self.config_hash)
        if state is None:
            return False
        self.load_state_dict(state)
        return True


def _numpy_state() -> dict[str, Any]:
    """NumPy's legacy global generator state in types a weights-only checkpoint can hold."""
    state: Any = np.random.get_state(legacy=True)
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _numpy_state_from(state: dict[str, Any]) -> tuple[Any, ...]:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
