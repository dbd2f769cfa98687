"""``train_and_evaluate``: the one function every run of every sweep executes.

The loop reads top to bottom: data, front end, model, optimiser, epochs (train, validate,
report, checkpoint, stop early), then the test split with the best weights, then cost. Each
piece it needs lives in its own module (``data.prepare``, ``features``, ``models``, ``init``,
``schedule``, ``metrics``, ``cost``, ``checkpoint``, ``tracking``).
"""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import SpecAugment, mixup
from .checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from .config import RunConfig, config_hash
from .cost import count_macs, median_latency_ms
from .data.prepare import make_loader, prepare_fold
from .features import LogMel, fit_normalization
from .init import apply_init
from .metrics import classification_metrics, curve_area, epochs_to_fraction
from .models import AscModel, ModelSpec, build_model, count_parameters
from .result import RunResult
from .runtime import environment, pick_device, seed_everything
from .schedule import lr_factor
from .tracking import NullTracker, Tracker, make_tracker


class Reporter(Protocol):
    """Where per-epoch metrics go besides W&B (an agent's store), and who may stop the run."""

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...

    @property
    def should_stop(self) -> bool: ...

    @property
    def stop_reason(self) -> str | None: ...


class Pipeline(nn.Module):
    """Front end, augmentation and model: waveforms and lengths in, logits out."""

    def __init__(self, front: LogMel | None, model: AscModel, specaugment: bool) -> None:
        super().__init__()
        self.front, self.model = front, model
        self.augment = SpecAugment() if specaugment and front is not None else None

    def features(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.front is None:  # a waveform model
            return waves, lengths
        x = self.front(waves)
        if self.augment is not None:
            x = self.augment(x)
        return x, self.front.frames(lengths)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(*self.features(waves, lengths))


def train_and_evaluate(
    config: RunConfig,
    tracker: Tracker | None = None,
    *,
    reporter: Reporter | None = None,
    run_dir: Path | None = None,
    run_name: str = "run",
    tags: list[str] | None = None,
) -> RunResult:
    """Train ``config`` on its fold, evaluate the best epoch on the fold's test split."""
    tracker = tracker or NullTracker()
    chash = config_hash(config.to_dict())
    seed_everything(config.seed)
    device = pick_device(config.device)
    t_data = time.perf_counter()
    data = prepare_fold(config)
    data_seconds = time.perf_counter() - t_data

    spec = ModelSpec(
        n_classes=len(data.classes), n_mels=config.n_mels, sample_rate=config.sample_rate
    )
    model = apply_init(build_model(config.arch, spec), config.init)
    front = LogMel.from_config(config) if model.input_kind == "logmel" else None
    net = Pipeline(front, model, config.specaugment).to(device)
    crop = None if config.crop_seconds is None else round(config.crop_seconds * config.sample_rate)
    train_loader = make_loader(
        data,
        data.train,
        batch_size=config.batch_size,
        crop_samples=crop,
        shuffle=True,
        seed=config.seed,
    )
    val_loader = make_loader(
        data, data.val, batch_size=config.batch_size, crop_samples=None, shuffle=False, seed=0
    )
    test_loader = make_loader(
        data, data.test, batch_size=config.batch_size, crop_samples=None, shuffle=False, seed=0
    )
    mix_rng = np.random.default_rng([config.seed, 1])

    opt = make_optimizer(config, net)
    total = config.epochs * len(train_loader)
    warmup = config.warmup_epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps=total, warmup_steps=warmup, kind=config.schedule)
    )
    amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)

    state = load_checkpoint(run_dir, chash)
    if state is None:
        if front is not None:  # normalisation statistics from the training part only
            fit_normalization(front, ((w, n) for w, n, _ in train_loader))
        history: list[dict[str, float]] = []
        best: dict[str, Any] = {"acc": -1.0, "epoch": None, "weights": None, "since": 0}
        start = 0
    else:
        start, history, best = _restore(state, net, opt, sched, scaler, train_loader, mix_rng)

    tracker.start(
        config.to_dict(),
        name=run_name,
        group=config.group,
        job_type=f"fold{config.fold}",
        tags=tags or [],
    )
    for epoch, h in enumerate(history):  # a resumed run re-logs what it had logged before
        tracker.log(h, step=epoch)
    stopped, train_seconds, train_clips = None, 0.0, 0
    for epoch in range(start, config.epochs):
        train_loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
        t0 = time.perf_counter()
        train_loss, train_acc, clips = train_epoch(
            net,
            train_loader,
            opt,
            sched,
            scaler,
            device,
            amp,
            amp_dtype,
            config.mixup,
            mix_rng,
            len(data.classes),
        )
        seconds = time.perf_counter() - t0
        train_seconds, train_clips = train_seconds + seconds, train_clips + clips
        val = evaluate(net, val_loader, device, len(data.classes)) if data.val else None
        row = {"epoch": epoch + 1, "train/loss": train_loss, "train/accuracy": train_acc, "lr": opt.param_groups[0]["lr"],
               "time/epoch_seconds": seconds}  # fmt: skip
        if val is not None:
            row.update(
                {
                    "val/loss": val["log_loss"],
                    "val/accuracy": val["accuracy"],
                    "val/macro_f1": val["macro_f1"],
                }
            )
        history.append(row)
        tracker.log(row, step=epoch)
        if reporter is not None:
            reporter.log(row, step=epoch)
        score = row.get("val/accuracy", train_acc)
        if score > best["acc"]:
            best = {
                "acc": score,
                "epoch": epoch + 1,
                "weights": copy.deepcopy(net.state_dict()),
                "since": 0,
            }
        else:
            best["since"] += 1
        if run_dir is not None:
            save_checkpoint(
                run_dir,
                _snapshot(
                    chash, epoch + 1, net, opt, sched, scaler, history, best, train_loader, mix_rng
                ),
            )
        if config.patience and best["since"] >= config.patience:
            stopped = f"no validation improvement for {config.patience} epochs"
            break
        if reporter is not None and reporter.should_stop:
            stopped = reporter.stop_reason or "told to stop"
            break

    net.load_state_dict(best["weights"])
    t_eval = time.perf_counter()
    test = evaluate(net, test_loader, device, len(data.classes))
    eval_seconds = time.perf_counter() - t_eval
    val_curve = [h["val/accuracy"] for h in history if "val/accuracy" in h]
    macs, latency = _cost(net, config, device)
    result = RunResult(
        config_hash=chash,
        classes=data.classes,
        test=test,
        best_val_accuracy=best["acc"] if data.val else None,
        best_epoch=best["epoch"],
        epochs_run=len(history),
        stopped_early=stopped,
        history=history,
        epochs_to_90=epochs_to_fraction(val_curve),
        val_accuracy_auc=curve_area(val_curve),
        parameters=count_parameters(model),
        macs_per_clip=macs,
        timings={
            "data_seconds": data_seconds,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "train_clips_per_second": train_clips / train_seconds if train_seconds else 0.0,
            "inference_ms_per_clip": latency,
            "inference_clips_per_second": len(data.test) / eval_seconds if eval_seconds else 0.0,
        },
        environment=environment(device),
        skipped_clips=data.skipped,
        resumed_from_epoch=start or None,
    )
    tracker.finish(result.summary(), confusion=test["confusion"], classes=data.classes)
    remove_checkpoint(run_dir)
    return result


def make_optimizer(config: RunConfig, net: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_epoch(
    net: Pipeline,
    loader: Any,
    opt: torch.optim.Optimizer,
    sched: Any,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    amp: bool,
    amp_dtype: torch.dtype,
    mixup_alpha: float,
    rng: np.random.Generator,
    n_classes: int,
) -> tuple[float, float, int]:
    """One pass over the training batches; returns (mean loss, accuracy, clips seen)."""
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    for waves, lengths, labels in loader:
        waves, lengths, labels = waves.to(device), lengths.to(device), labels.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            x, steps = net.features(waves, lengths)
            targets = F.one_hot(labels, n_classes).float()
            if mixup_alpha > 0:
                x, targets = mixup(x, targets, mixup_alpha, rng)
            logits = net.model(x, steps)
            loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        total_loss += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    return total_loss / max(seen, 1), correct / max(seen, 1), seen


@torch.no_grad()
def evaluate(net: Pipeline, loader: Any, device: torch.device, n_classes: int) -> dict[str, Any]:
    """Whole clips, masked pooling; accuracy, macro-F1, log-loss, per class, confusion."""
    net.eval()
    probs, labels = [], []
    for waves, lengths, y in loader:
        logits = net(waves.to(device), lengths.to(device))
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        labels.append(y.numpy())
    if not probs:
        return classification_metrics(
            np.zeros((0, n_classes)), np.zeros(0, dtype=np.int64), n_classes
        )
    return classification_metrics(np.concatenate(probs), np.concatenate(labels), n_classes)


def _cost(net: Pipeline, config: RunConfig, device: torch.device) -> tuple[int, float]:
    """MACs and batch-1 latency for one clip of the crop length (4 s for whole-clip training)."""
    net.eval()
    samples = round((config.crop_seconds or 4.0) * config.sample_rate)
    wave = torch.zeros(1, samples, device=device).normal_(0, 0.1)
    length = torch.tensor([samples], device=device)
    macs = count_macs(net, lambda: net(wave, length))
    return macs, median_latency_ms(lambda: net(wave, length), device)


def _snapshot(chash: str, epoch: int, net: nn.Module, opt: Any, sched: Any, scaler: Any, history: list[dict[str, float]],
              best: dict[str, Any], loader: Any, mix_rng: np.random.Generator) -> dict[str, Any]:  # fmt: skip
    return {
        "config_hash": chash,
        "epoch": epoch,
        "net": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "history": history,
        "best": best,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "crops": loader.dataset.rng.bit_generator.state,
            "mixup": mix_rng.bit_generator.state,
        },
    }


def _restore(state: dict[str, Any], net: nn.Module, opt: Any, sched: Any, scaler: Any, loader: Any,
             mix_rng: np.random.Generator) -> tuple[int, list[dict[str, float]], dict[str, Any]]:  # fmt: skip
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    loader.dataset.rng.bit_generator.state = rng["crops"]
    mix_rng.bit_generator.state = rng["mixup"]
    return int(state["epoch"]), list(state["history"]), dict(state["best"])


def run_for_agent(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """The agent's default run function: one sweep configuration through ``train_and_evaluate``.

    Per-epoch metrics go to the store (early termination reads them) and to W&B; a run that
    was requeued resumes from its last checkpoint in ``context.run_dir``.
    """
    config = RunConfig.from_dict(params)
    tracker = make_tracker(os.environ.get("ASC_SWEEP_TRACKING", "auto"))
    result = train_and_evaluate(
        config,
        tracker,
        reporter=context,
        run_dir=context.run_dir,
        run_name=context.run_name,
        tags=[context.sweep_id],
    )
    summary = result.summary()
    summary.update(
        {
            "classes": result.classes,
            "confusion": result.test["confusion"],
            "skipped_clips": len(result.skipped_clips),
            "resumed_from_epoch": result.resumed_from_epoch,
            "environment": result.environment,
        }
    )
    return summary
