"""``RunResult``: what one run produced, as stored, logged and reported."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunResult:
    """Test metrics, the per-epoch history, convergence, cost, timings and environment."""

    config_hash: str
    classes: list[str]
    test: dict[str, Any]  # accuracy, macro_f1, log_loss, per_class_accuracy, confusion
    best_val_accuracy: float | None
    best_epoch: int | None
    epochs_run: int
    end_reason: str | None  # why training ended before `epochs` (patience, a stop), if it did
    stopped: bool  # a controller stopped it (hyperband, W&B): recorded as `stopped`, not finished
    history: list[dict[str, float]]
    epochs_to_90: int | None
    val_accuracy_auc: float | None
    parameters: int
    macs_per_clip: int
    timings: dict[str, float]  # feature/train/eval seconds, train clips/s, inference ms, throughput
    environment: dict[str, Any]
    skipped_clips: list[str] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    clips: dict[str, int] = field(
        default_factory=dict
    )  # train, val, test: the report's n_test/n_train
    config: dict[str, Any] = field(default_factory=dict)  # resolved: recipe and native rate

    def summary(self) -> dict[str, Any]:
        """Flat metrics for the store, the W&B summary and the report, and the environment
        the run trained in (nested: the report compares runs by it)."""
        out: dict[str, Any] = {
            "test/accuracy": self.test["accuracy"],
            "test/macro_f1": self.test["macro_f1"],
            "test/log_loss": self.test["log_loss"],
            "val/best_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "epochs_to_90": self.epochs_to_90,
            "val/accuracy_auc": self.val_accuracy_auc,
            "parameters": self.parameters,
            "macs_per_clip": self.macs_per_clip,
            "config_hash": self.config_hash,
            "end_reason": self.end_reason,
            "stopped": self.stopped,
            "environment": self.environment,
        }
        out.update({f"time/{k}": v for k, v in self.timings.items()})
        out.update({f"data/{k}_clips": n for k, n in self.clips.items()})
        out.update(
            {
                f"test/accuracy/{c}": a
                for c, a in zip(self.classes, self.test["per_class_accuracy"], strict=True)
            }
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
