"""``train_and_evaluate``: the one function every run of every sweep executes.

The loop reads top to bottom: set up (data, front end, model, optimiser), restore the last
checkpoint if the run was requeued, then epochs (train, validate, report, checkpoint, stop
early), then the test split with the best weights, then cost. State that survives a restart is
one object (``run.state.TrainState``); who may stop the run, and how, is ``run.context``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.data.cache import cache_root
from asc_sweep.data.features import LogMel, fit_normalization
from asc_sweep.data.prepare import FoldData, make_loader, prepare_fold
from asc_sweep.models import AscModel, ModelSpec, build_model, count_parameters
from asc_sweep.models.init import apply_init
from asc_sweep.models.pretrained import fetch, load_panns, set_features_frozen
from asc_sweep.run.augment import SpecAugment, mixup
from asc_sweep.run.context import RunContext, RunInterrupted, StandaloneContext, StopFlag
from asc_sweep.run.cost import count_macs, median_latency_ms
from asc_sweep.run.metrics import classification_metrics, curve_area, epochs_to_fraction
from asc_sweep.run.result import RunResult
from asc_sweep.run.runtime import environment, pick_device, seed_everything
from asc_sweep.run.schedule import lr_factor
from asc_sweep.run.state import EarlyStopping, TrainState
from asc_sweep.run.tracking import NullTracker, Tracker, make_tracker
from asc_sweep.sweep.config import RunConfig, config_hash


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


@dataclass
class Setup:
    """What a run trains with: the fold's data and loaders, the network, the device and AMP."""

    data: FoldData
    net: Pipeline
    model: AscModel
    loaders: dict[str, Any]  # train, val, test
    device: torch.device
    amp: bool
    amp_dtype: torch.dtype
    data_seconds: float

    @property
    def n_classes(self) -> int:
        return len(self.data.classes)


def train_and_evaluate(
    config: RunConfig,
    tracker: Tracker | None = None,
    *,
    context: RunContext | None = None,
    tags: list[str] | None = None,
) -> RunResult:
    """Train ``config`` on its fold, evaluate the best epoch on the fold's test split.

    Raises:
        RunInterrupted: the context's stop flag asked for an abort (the agent is stopping, or
            it lost the run's lease); nothing was written after the last complete epoch.
    """
    context = context or StandaloneContext()
    tracker = tracker or NullTracker()
    seed_everything(config.seed)
    setup = set_up(config)
    state = initial_state(config, setup)
    if not state.restore(context.run_dir) and setup.net.front is not None:
        fit_normalization(setup.net.front, ((w, n) for w, n, _ in setup.loaders["train"]))
    stop = context.stop
    with tracker.session(
        config.to_dict(),
        name=context.run_name,
        group=config.group,
        job_type=f"fold{config.fold}",
        tags=tags or [],
    ):
        for step, row in enumerate(state.history):  # a resumed run's history stays whole
            context.log(row, step=step, replay=True)
            tracker.log(row, step=step)
        end_reason = None
        while state.epoch < config.epochs and not stop.is_set:
            if config.pretrained is not None:
                set_features_frozen(setup.model, state.epoch < config.freeze_epochs)
            t0 = time.perf_counter()
            done = train_epoch(setup, state, config.mixup, stop)
            if done is None:
                break  # stopped mid-epoch: the partial epoch is dropped
            row = epoch_row(setup, state, *done, seconds=time.perf_counter() - t0)
            state.end_epoch(row, clips=done[2])
            context.log(row, step=state.epoch - 1)  # also proves the run is still ours
            tracker.log(row, step=state.epoch - 1)
            if stop.aborts:
                break
            if context.run_dir is not None:
                state.save(context.run_dir)
            if state.early.exhausted:
                end_reason = state.early.reason
                break
        if stop.aborts:
            raise RunInterrupted(stop.kind or "signal", stop.reason or "stopped")
        if stop.is_set:
            end_reason = f"stopped: {stop.reason}"
        result = conclude(config, setup, state, end_reason, stopped=stop.is_set)
        tracker.finish(result.summary(), confusion=result.test["confusion"], classes=result.classes)
    return result


def set_up(config: RunConfig) -> Setup:
    """Load the fold, build the network on the run's device and the three loaders."""
    device = pick_device(config.device)
    t0 = time.perf_counter()
    data = prepare_fold(config)
    data_seconds = time.perf_counter() - t0
    spec = ModelSpec(
        n_classes=len(data.classes), n_mels=config.n_mels, sample_rate=config.sample_rate
    )
    model = apply_init(build_model(config.arch, spec), config.init)
    if config.pretrained is not None:
        path = fetch(config.pretrained, cache_root() / "weights", config.pretrained_sha256)
        load_panns(model, path, layers=2 if config.arch == "cnn10" else 1)
    front = LogMel.from_config(config) if model.input_kind == "logmel" else None
    net = Pipeline(front, model, config.specaugment).to(device)
    crop = None if config.crop_seconds is None else round(config.crop_seconds * config.sample_rate)
    loaders = {
        "train": make_loader(
            data,
            data.train,
            batch_size=config.batch_size,
            crop_samples=crop,
            shuffle=True,
            seed=config.seed,
        ),
        **{
            part: make_loader(
                data,
                getattr(data, part),
                batch_size=config.batch_size,
                crop_samples=None,
                shuffle=False,
                seed=0,
            )
            for part in ("val", "test")
        },
    }
    amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    return Setup(data, net, model, loaders, device, amp, amp_dtype, data_seconds)


def initial_state(config: RunConfig, setup: Setup) -> TrainState:
    """A fresh run's state: optimiser, warm-up + cosine/step schedule, scaler, random streams."""
    opt = make_optimizer(config, setup.net)
    steps = len(setup.loaders["train"])
    total, warmup = config.epochs * steps, config.warmup_epochs * steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps=total, warmup_steps=warmup, kind=config.schedule)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=setup.amp and setup.amp_dtype == torch.float16)
    return TrainState(
        config_hash=config_hash(config.to_dict()),
        net=setup.net,
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
        early=EarlyStopping(config.patience),
        crop_rng=setup.loaders["train"].dataset.rng,
        mix_rng=np.random.default_rng([config.seed, 1]),
    )


def epoch_row(
    setup: Setup, state: TrainState, loss: float, accuracy: float, clips: int, *, seconds: float
) -> dict[str, float]:
    """One history row: the epoch's training figures and, when there is one, validation's."""
    row = {
        "epoch": state.epoch + 1,
        "train/loss": loss,
        "train/accuracy": accuracy,
        "lr": state.optimizer.param_groups[0]["lr"],
        "time/epoch_seconds": seconds,
    }
    if setup.data.val:
        val = evaluate(setup.net, setup.loaders["val"], setup.device, setup.n_classes)
        row.update(
            {
                "val/loss": val["log_loss"],
                "val/accuracy": val["accuracy"],
                "val/macro_f1": val["macro_f1"],
            }
        )
    return row


def conclude(
    config: RunConfig, setup: Setup, state: TrainState, end_reason: str | None, *, stopped: bool
) -> RunResult:
    """The best epoch on the test split, convergence figures, cost, timings, environment."""
    net = setup.net
    if state.early.best_weights is not None:
        net.load_state_dict(state.early.best_weights)
    t0 = time.perf_counter()
    test = evaluate(net, setup.loaders["test"], setup.device, setup.n_classes)
    eval_seconds = time.perf_counter() - t0
    val_curve = [h["val/accuracy"] for h in state.history if "val/accuracy" in h]
    macs, latency = _cost(net, config, setup.device)
    n_test = len(setup.data.test)
    return RunResult(
        config_hash=state.config_hash,
        classes=setup.data.classes,
        test=test,
        best_val_accuracy=state.early.best_score if setup.data.val and state.history else None,
        best_epoch=state.early.best_epoch,
        epochs_run=len(state.history),
        end_reason=end_reason,
        stopped=stopped,
        history=state.history,
        epochs_to_90=epochs_to_fraction(val_curve),
        val_accuracy_auc=curve_area(val_curve),
        parameters=count_parameters(setup.model),
        macs_per_clip=macs,
        timings={
            "data_seconds": setup.data_seconds,
            "train_seconds": state.train_seconds,
            "eval_seconds": eval_seconds,
            "train_clips_per_second": state.train_clips / state.train_seconds
            if state.train_seconds
            else 0.0,
            "inference_ms_per_clip": latency,
            "inference_clips_per_second": n_test / eval_seconds if eval_seconds else 0.0,
        },
        environment=environment(setup.device),
        skipped_clips=setup.data.skipped,
        resumed_from_epoch=state.resumed_from or None,
        clips={part: len(getattr(setup.data, part)) for part in ("train", "val", "test")},
    )


def make_optimizer(config: RunConfig, net: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_epoch(
    setup: Setup, state: TrainState, mixup_alpha: float, stop: StopFlag
) -> tuple[float, float, int] | None:
    """One pass over the training batches: (mean loss, accuracy, clips seen), or None when
    the stop flag was set at a batch boundary (the partial epoch is then dropped)."""
    net, device, n_classes = setup.net, setup.device, setup.n_classes
    loader, opt = setup.loaders["train"], state.optimizer
    loader.batch_sampler.set_epoch(state.epoch)
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    for waves, lengths, labels in loader:
        if stop.is_set:
            return None
        waves, lengths, labels = waves.to(device), lengths.to(device), labels.to(device)
        with torch.autocast(device.type, dtype=setup.amp_dtype, enabled=setup.amp):
            x, steps = net.features(waves, lengths)
            targets = F.one_hot(labels, n_classes).float()
            if mixup_alpha > 0:
                x, targets = mixup(x, targets, mixup_alpha, state.mix_rng)
            logits = net.model(x, steps)
            loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
        opt.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(opt)
        state.scaler.update()
        state.scheduler.step()
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


def run_for_agent(params: dict[str, Any], context: RunContext) -> dict[str, Any]:
    """The agent's default run function: one sweep configuration through ``train_and_evaluate``.

    Per-epoch metrics go to the store (early termination reads them) and to W&B; a run that
    was requeued resumes from its last checkpoint in ``context.run_dir``.
    """
    config = RunConfig.from_dict(params)
    tracker = make_tracker(os.environ.get("ASC_SWEEP_TRACKING", "auto"))
    result = train_and_evaluate(config, tracker, context=context, tags=[context.sweep_id])
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
