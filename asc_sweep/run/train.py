"""``train_and_evaluate``: the one function every run of every sweep executes.

The loop reads top to bottom: set up (data, front end, model, optimiser), restore the last
checkpoint if the run was requeued, then epochs (train, validate, report, checkpoint, stop
early), then the test split with the best weights, then cost. State that survives a restart is
one object (``run.state.TrainState``); who may stop the run, and how, is ``run.context``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.data.batching import to_device
from asc_sweep.data.cache import cache_root
from asc_sweep.data.features import LogMel, fit_normalization
from asc_sweep.data.prepare import FoldData, make_loader, prepare_fold, resident_device
from asc_sweep.models import AscModel, ModelSpec, build_model, count_parameters
from asc_sweep.models.common import masked_mean, time_mask
from asc_sweep.models.init import apply_init
from asc_sweep.models.pretrained import fetch, load_panns, set_features_frozen
from asc_sweep.run.augment import (
    SpecAugment,
    freq_mixstyle,
    mixup,
    random_filter,
    random_gain,
    shift_bands,
)
from asc_sweep.run.context import RunContext, RunInterrupted, StandaloneContext, StopFlag
from asc_sweep.run.cost import count_macs, median_latency_ms
from asc_sweep.run.metrics import classification_metrics, curve_area, epochs_to_fraction
from asc_sweep.run.optim import SGD, AdamW, LrSchedule, Optimizer
from asc_sweep.run.result import RunResult
from asc_sweep.run.runtime import (
    cpu_has_native_bf16,
    environment,
    pick_device,
    seed_everything,
)
from asc_sweep.run.schedule import lr_factor
from asc_sweep.run.state import ModelSelection, TrainState
from asc_sweep.run.tracking import NullTracker, Tracker, make_tracker
from asc_sweep.sweep.config import RunConfig, config_hash
from asc_sweep.sweep.environment import arithmetic


class Pipeline(nn.Module):
    """Front end, augmentation and model: waveforms and lengths in, logits out.

    Augmentation happens only in training mode, on the run's device, drawing from torch's
    random stream (which a checkpoint restores): random gain of each clip, then on log-mel
    Freq-MixStyle, a random filter of up to +/- ``filter_db`` dB, a random shift by up to
    ``freq_shift`` bands and SpecAugment's masks.
    """

    def __init__(
        self,
        front: LogMel | None,
        model: AscModel,
        specaugment: bool,
        *,
        example_frames: int = 320,
        gain_db: float = 0.0,
        freq_shift: int = 0,
        mixstyle: float = 0.0,
        filter_db: float = 0.0,
    ) -> None:
        super().__init__()
        self.front, self.model = front, model
        self.augment = (
            SpecAugment.scaled(front.mean.shape[0], example_frames)
            if specaugment and front is not None
            else None
        )
        self.gain_db = gain_db
        # Band shifts and Freq-MixStyle act on log-mel: a waveform model has none.
        self.freq_shift = freq_shift if front is not None else 0
        self.mixstyle = mixstyle if front is not None else 0.0
        self.filter_db = filter_db if front is not None else 0.0
        self.amp_dtype: torch.dtype | None = None  # the model's autocast type, set by set_up

    def features(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and self.gain_db:
            waves = random_gain(waves, self.gain_db)
        if self.front is None:  # a waveform model
            return waves, lengths
        x = self.front(self.front.pad_ends(waves, lengths))
        frames = self.front.frames(lengths)
        if self.training and self.mixstyle:
            x = freq_mixstyle(x, self.mixstyle, frames)
        if self.training and self.filter_db:
            x = random_filter(x, self.filter_db, self.front.std)
        if self.training and self.freq_shift:
            x = shift_bands(x, self.freq_shift)
        if self.augment is not None:
            x = self.augment(x, frames)
        # Past each clip's end, the normalised mean (0), as a convolution pads at the tensor's
        # edge: a short clip batched with longer ones is seen as it is alone. (The log-mel of
        # the zeros there, far below any recording, reached the clip's last frames through
        # the first convolution: one clip's test probabilities moved by up to 0.10 with the
        # clips it was batched with.)
        return torch.where(time_mask(frames, 1, x.shape[-1])[:, None, :], x, 0.0), frames

    def autocast(self, device_type: str) -> torch.autocast:
        """The model's mixed precision (``amp_dtype``; off for float32)."""
        return torch.autocast(device_type, self.amp_dtype, enabled=self.amp_dtype is not None)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x, steps = self.features(waves, lengths)  # float32
        with self.autocast(waves.device.type):
            return self.model(x, steps)

    def frame_logits(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame-wise model's per-frame logits and valid-frame mask (``AscModel.frame_logits``)."""
        x, steps = self.features(waves, lengths)
        with self.autocast(waves.device.type):
            return self.model.frame_logits(x, steps)


@dataclass
class Setup:
    """What a run trains with: its config with the sample rate resolved, the fold's data and
    loaders, the network, the device and AMP."""

    config: RunConfig
    data: FoldData
    net: Pipeline
    model: AscModel
    loaders: dict[str, Any]  # train, val, test
    device: torch.device
    data_seconds: float

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """Autocast's type, None for float32: the network's (``Pipeline.amp_dtype``)."""
        return self.net.amp_dtype

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
    seed_everything(config.seed, config.deterministic)
    setup = set_up(config, tracker)
    config = setup.config  # sample_rate resolved
    if setup.data.upsampled:
        print(
            f"note: {setup.data.upsampled} clips are resampled up to {config.rate} Hz (above "
            "their native rate): this adds no information (sample_rate: null trains at each "
            "dataset's own rate, up to 32 kHz)",
            file=sys.stderr,
        )
    state = initial_state(config, setup)
    state.environment = environment(setup.device, precision(setup))
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
            done = train_epoch(setup, state, stop)
            if done is None:
                break  # stopped mid-epoch: the partial epoch is dropped
            row = epoch_row(setup, state, *done, seconds=time.perf_counter() - t0)
            state.end_epoch(row, clips=done[2])
            context.log(row, step=state.epoch - 1)  # also proves the run is still ours
            tracker.log(row, step=state.epoch - 1)
            if stop.aborts:
                break
            if context.run_dir is not None and state.epoch % config.checkpoint_every == 0:
                state.save(context.run_dir)
            if state.selection.exhausted:
                end_reason = state.selection.reason
                break
        if stop.aborts:
            raise RunInterrupted(stop.kind or "signal", stop.reason or "stopped")
        if stop.is_set:
            end_reason = f"stopped: {stop.reason}"
        result = conclude(config, setup, state, end_reason, stopped=stop.is_set)
        tracker.finish(result.summary(), confusion=result.test["confusion"], classes=result.classes)
    return result


def example_frames(config: RunConfig, data: FoldData) -> int:
    """Frames of one training example: a crop, or the longest training clip."""
    if config.crop_seconds is not None:
        seconds = config.crop_seconds
    else:
        longest = max((int(data.cache.lengths[i]) for i in data.train), default=config.rate)
        seconds = longest / config.rate
    return max(1, round(seconds * 1000 / config.hop_ms))


def set_up(config: RunConfig, tracker: Tracker | None = None) -> Setup:
    """Load the fold, build the network on the run's device and the three loaders (the
    tracker hears of the audio cache's decoding, where this run builds it)."""
    device = pick_device(config.device)
    t0 = time.perf_counter()
    config, data = prepare_fold(config, tracker.decoding if tracker is not None else None)
    data_seconds = time.perf_counter() - t0
    spec = ModelSpec(n_classes=len(data.classes), n_mels=config.n_mels, sample_rate=config.rate)
    model = apply_init(build_model(config.arch, spec), config.init)
    if config.pretrained is not None:
        path = fetch(config.pretrained, cache_root() / "weights", config.pretrained_sha256)
        load_panns(model, path, layers=2 if config.arch == "cnn10" else 1)
    front = LogMel.from_config(config) if model.input_kind == "logmel" else None
    net = Pipeline(
        front,
        model,
        config.specaugment,
        example_frames=example_frames(config, data),
        gain_db=config.gain_db,
        freq_shift=config.freq_shift,
        mixstyle=config.mixstyle,
        filter_db=config.filter_db,
    ).to(device)
    net.to(memory_format=torch.channels_last)  # faster convolutions: benchmarks/models.py
    crop = None if config.crop_seconds is None else round(config.crop_seconds * config.rate)
    cuda = device.type == "cuda"
    resident = resident_device(config.resident, device, data)
    loaders = {
        "train": make_loader(
            data,
            data.train,
            batch_size=config.batch_size,
            crop_samples=crop,
            shuffle=True,
            seed=config.seed,
            pin_memory=cuda,
            resident=resident,
        ),
        **{
            part: make_loader(
                data,
                getattr(data, part),
                batch_size=config.batch_size,
                crop_samples=None,
                shuffle=False,
                seed=0,
                pin_memory=cuda,
                resident=resident,
            )
            for part in ("val", "test")
        },
    }
    net.amp_dtype = mixed_precision(config, device)
    return Setup(config, data, net, model, loaders, device, data_seconds)


def mixed_precision(config: RunConfig, device: torch.device) -> torch.dtype | None:
    """The autocast type a run uses on ``device``, or None (float32).

    On CUDA: bf16 where the GPU has it (no loss scaling needed), else fp16 (with a
    GradScaler); ``amp_dtype`` forces one. On a CPU: bf16 only where it is native (AMX,
    AVX512-BF16), and not when ``amp_dtype`` asks for fp16. Never with ``amp: false``.
    """
    if not config.amp:
        return None
    if device.type == "cuda":
        if config.amp_dtype == "bfloat16" or (
            config.amp_dtype == "auto" and torch.cuda.is_bf16_supported()
        ):
            return torch.bfloat16
        return torch.float16
    if device.type == "cpu" and config.amp_dtype != "float16" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def initial_state(config: RunConfig, setup: Setup) -> TrainState:
    """A fresh run's state: optimiser, warm-up + cosine/step schedule, scaler, random streams."""
    opt = make_optimizer(config, setup.net)
    steps = len(setup.loaders["train"])
    total, warmup = config.epochs * steps, config.warmup_epochs * steps
    sched = LrSchedule(
        opt, lambda s: lr_factor(s, total_steps=total, warmup_steps=warmup, kind=config.schedule)
    )
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.amp_dtype == torch.float16)
    return TrainState(
        config_hash=config_hash(config.to_dict()),
        net=setup.net,
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
        selection=ModelSelection(
            config.selection,
            config.patience,
            min_epochs=config.min_epochs,
            average_epochs=config.average_epochs,
            total_epochs=config.epochs,
        ),
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
        t0 = time.perf_counter()
        val = evaluate(setup, "val")
        row.update(
            {
                "val/loss": val["log_loss"],
                "val/accuracy": val["accuracy"],
                "val/macro_f1": val["macro_f1"],
                "time/val_seconds": time.perf_counter() - t0,
            }
        )
    return row


def conclude(
    config: RunConfig, setup: Setup, state: TrainState, end_reason: str | None, *, stopped: bool
) -> RunResult:
    """The best epoch on the test split, convergence figures, cost, timings, environment."""
    net, selection = setup.net, state.selection
    if selection.best_weights is not None:
        net.load_state_dict(selection.best_weights)
    best_val = selection.best_score if selection.scored else None
    if setup.data.val and state.history and not selection.scored:
        best_val = evaluate(setup, "val")["accuracy"]  # of the weights tested
    t0 = time.perf_counter()
    test = evaluate(setup, "test")
    eval_seconds = time.perf_counter() - t0
    val_curve = [h["val/accuracy"] for h in state.history if "val/accuracy" in h]
    macs, latency = _cost(net, config, setup.device)
    n_test = len(setup.data.test)
    return RunResult(
        config_hash=state.config_hash,
        classes=setup.data.classes,
        test=test,
        best_val_accuracy=best_val if setup.data.val and state.history else None,
        best_epoch=selection.best_epoch,
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
        environment=trained_in(state),
        skipped_clips=setup.data.skipped,
        resumed_from_epoch=state.resumed_from or None,
        clips={
            **{part: len(getattr(setup.data, part)) for part in ("train", "val", "test")},
            "upsampled": setup.data.upsampled,
        },
        config=config.to_dict(),
    )


def trained_in(state: TrainState) -> dict[str, Any]:
    """The environment a run recorded: this attempt's, and, where earlier attempts trained
    some of its epochs elsewhere (another precision, device or release), every attempt's with
    the epochs it trained (``attempts``), so that the report can say so."""
    attempts = state.attempts()
    kinds = {tuple(sorted(arithmetic(a["environment"]).items())) for a in attempts}
    if len(kinds) > 1:
        return {**state.environment, "attempts": attempts}
    return dict(state.environment)


def precision(setup: Setup) -> str:
    """What training computes in: float32, or autocast's bfloat16 / float16."""
    return "float32" if setup.amp_dtype is None else str(setup.amp_dtype).removeprefix("torch.")


def make_optimizer(config: RunConfig, net: nn.Module) -> Optimizer:
    """The run's optimiser over the trainable parameters: asc-sweep's AdamW or SGD
    (``run.optim``), torch's fused update kernels on CPUs and GPUs without torch.optim's
    import of the compiler package (1.2 s a process).

    On a CPU the fused kernel (one pass over every parameter) makes an AdamW step 0.52 ->
    0.08 ms for the MLP and 0.69 -> 0.31 ms for dcase2018_cnn against torch.optim's
    per-tensor loop, the CPU default; the same update to float32 rounding (tests hold it).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    return AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def train_epoch(setup: Setup, state: TrainState, stop: StopFlag) -> tuple[float, float, int] | None:
    """One pass over the training batches: (mean loss, accuracy, clips seen), or None when
    the stop flag was set at a batch boundary (the partial epoch is then dropped)."""
    net, device, n_classes = setup.net, setup.device, setup.n_classes
    smoothing, mixup_alpha = setup.config.label_smoothing, setup.config.mixup
    loader, opt = setup.loaders["train"], state.optimizer
    loader.batch_sampler.set_epoch(state.epoch)
    net.train()
    # Sums kept on the device and read once an epoch: reading them every step would make the
    # host wait for the GPU at every step (float64, so the mean equals Python's sum of floats).
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    for waves, lengths, labels in loader:
        if stop.is_set:
            return None
        waves, lengths, labels = (t.to(device, non_blocking=True) for t in (waves, lengths, labels))
        x, steps = net.features(waves, lengths)  # in float32, as at evaluation
        with net.autocast(device.type):
            targets = F.one_hot(labels, n_classes).float() * (1 - smoothing) + smoothing / n_classes
            if mixup_alpha > 0:
                x, targets = mixup(x, targets, mixup_alpha, state.mix_rng, steps)
            if setup.config.frame_targets:  # every frame an example with its clip's target
                frames, mask = net.model.frame_logits(x, steps)
                loss = frame_loss(frames, mask, targets)
                logits = masked_mean(frames, mask)
            else:
                logits = net.model(x, steps)
                loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
        opt.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(opt)  # type: ignore[arg-type]  # it reads param_groups, calls step
        state.scaler.update()
        state.scheduler.step()
        total_loss += loss.detach().double() * len(labels)
        correct += (logits.argmax(1) == labels).sum()
        seen += len(labels)
    return float(total_loss) / max(seen, 1), int(correct) / max(seen, 1), seen


def frame_loss(frames: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every valid frame ``(batch, classes, frames)`` against its clip's
    target ``(batch, classes)``, averaged over the batch's valid frames (a long clip weighs as
    many frames as it has, as when frames are shuffled into batches)."""
    per_frame = -(targets[:, :, None] * F.log_softmax(frames.float(), dim=1)).sum(1)
    weights = mask.float()
    return (per_frame * weights).sum() / weights.sum().clamp(min=1)


@torch.no_grad()
def evaluate(setup: Setup, part: str) -> dict[str, Any]:
    """Accuracy, macro-F1, log-loss, per class and confusion on ``part`` (val or test):
    whole clips with masked pooling, or segments voted into clips (``eval_segment_seconds``)."""
    net, device = setup.net, setup.device
    net.eval()
    probs, labels = [], []  # kept where they are computed and read once (no wait a batch)
    # One autocast region over every batch: the weights' low-precision copies are made once a
    # pass, not once a call (27 M weights in Piczak's CNN: 16 ms a call on a CPU). The log-mel
    # front end turns autocast off for itself, so it stays float32 within it.
    with net.autocast(device.type):
        for waves, host_lengths, y in setup.loaders[part]:
            probs.append(_classify(setup, waves, host_lengths))
            labels.append(y)
    if not probs:
        return classification_metrics(
            np.zeros((0, setup.n_classes)), np.zeros(0, dtype=np.int64), setup.n_classes
        )
    return classification_metrics(
        torch.cat(probs).cpu().numpy(), torch.cat(labels).cpu().numpy(), setup.n_classes
    )


def _classify(setup: Setup, waves: torch.Tensor, host_lengths: torch.Tensor) -> torch.Tensor:
    """A batch's clip probabilities ``(batch, classes)``, on the device."""
    net, device, config = setup.net, setup.device, setup.config
    waves = waves.to(device, non_blocking=True)
    lengths = host_lengths.to(device, non_blocking=True)
    if config.frame_targets:
        return frame_vote(net, waves, lengths, config.voting)
    if config.eval_segment_seconds is None:
        return torch.softmax(net(waves, lengths).float(), dim=1)
    size = round(config.eval_segment_seconds * config.rate)
    hop = round(config.eval_hop_seconds * config.rate)
    return segment_vote(net, waves, host_lengths, size, hop, config.voting)


def frame_vote(
    net: Pipeline, waves: torch.Tensor, lengths: torch.Tensor, voting: str
) -> torch.Tensor:
    """A frame-wise model's frames voted into clip probabilities: the mean of the valid frames'
    probabilities, or the share of valid frames that chose each class."""
    frames, mask = net.frame_logits(waves, lengths)
    return vote(torch.softmax(frames.float(), dim=1), mask, voting)


def vote(probs: torch.Tensor, mask: torch.Tensor, voting: str) -> torch.Tensor:
    """Class probabilities of the parts of each clip ``(batch, classes, parts)`` combined into
    the clip's ``(batch, classes)`` over the parts ``mask`` keeps: their mean (``voting:
    mean``), or the share of parts whose top class each class is (``majority``)."""
    if voting == "majority":
        probs = F.one_hot(probs.argmax(1), probs.shape[1]).float().transpose(1, 2)
    return masked_mean(probs, mask)


def segment_vote(
    net: nn.Module,
    waves: torch.Tensor,
    lengths: torch.Tensor,
    size: int,
    hop: int,
    voting: str,
    chunk: int = 256,
    alone: int = 16,
) -> torch.Tensor:
    """Each clip cut into segments of ``size`` samples every ``hop`` (a clip shorter than one
    segment is one segment), classified, and voted into clip probabilities: the mean of the
    segments' probabilities, or the share of segments that chose each class.

    ``lengths`` are read on the host (pass the loader's, not a copy on the device): the
    segments are planned there, so the host never waits for a GPU. A clip of at least
    ``alone`` segments goes through the network by itself, its segments a view of the clip
    (they overlap: a few hundred KB that stay in cache, where copies would not); the segments
    of the other clips are gathered ``chunk`` at a time, so that a batch of clips of a few
    segments each costs a few calls, not one a clip; a clip shorter than a segment goes
    through alone at its own length.
    """
    device = waves.device
    windows = waves.unfold(1, size, hop) if waves.shape[1] >= size else None
    probs: list[torch.Tensor] = []  # (segments, classes) a call, in the order of ``owners``
    owners: list[int] = []  # the clip of each segment
    gathered: list[tuple[int, int]] = []  # (clip, step) of segments to gather
    short: list[tuple[int, int]] = []  # (clip, length) of clips shorter than a segment

    def classify(pieces: torch.Tensor, length: int) -> None:
        for part in pieces.split(chunk):
            steps = torch.full((len(part),), length, device=device)
            probs.append(torch.softmax(net(part, steps).float(), dim=1))

    for i, n in enumerate(lengths.tolist()):
        count = (n - size) // hop + 1 if n >= size else 0
        if windows is not None and count >= alone:
            classify(windows[i, :count], size)
            owners += [i] * count
        elif count:
            gathered += [(i, step) for step in range(count)]
        else:
            short.append((i, n))
    if windows is not None and gathered:
        where = to_device(torch.tensor(gathered), device)
        for part in where.split(chunk):
            classify(windows[part[:, 0], part[:, 1]], size)
        owners += [i for i, _ in gathered]
    for i, n in short:
        classify(waves[i : i + 1, :n], n)
        owners.append(i)
    # Each clip's segments side by side, padded, then the vote: a masked mean over them, in
    # a fixed order (a scattered sum on a GPU adds in whatever order its threads run).
    rows: list[list[int]] = [[] for _ in range(len(lengths))]
    for row, clip in enumerate(owners):
        rows[clip].append(row)
    width = max(map(len, rows), default=1)
    index = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in rows])
    parts = torch.cat(probs)[to_device(index, device)]  # (clips, width, classes)
    return vote(parts.transpose(1, 2), to_device(mask, device), voting)


def _cost(net: Pipeline, config: RunConfig, device: torch.device) -> tuple[int, float]:
    """MACs and batch-1 latency for one clip of the crop length (4 s for whole-clip training)."""
    net.eval()
    samples = round((config.crop_seconds or 4.0) * config.rate)
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
            "config": result.config,
        }
    )
    return summary
