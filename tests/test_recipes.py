"""Recipes, model selection, segment voting, the native sample rate, and field-like scenes."""

from __future__ import annotations

import copy
import csv
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn

from asc_sweep.data.synth import SynthSpec, clip_count, generate, render_clip
from asc_sweep.errors import SpecError
from asc_sweep.run import augment
from asc_sweep.run.augment import freq_mixstyle, mixup, random_filter, random_gain, shift_bands
from asc_sweep.run.context import StandaloneContext
from asc_sweep.run.state import ModelSelection
from asc_sweep.run.train import (
    frame_loss,
    frame_vote,
    run_for_agent,
    segment_vote,
    train_and_evaluate,
)
from asc_sweep.sweep.config import ARCH_NAMES, KNOBS, RunConfig, knob_problems
from asc_sweep.sweep.recipes import MODERN, PAPER_RECIPES, RECIPES
from asc_sweep.sweep.spec import parse_spec

TINY = {"dataset": "synth", "n_mels": 40, "epochs": 2, "batch_size": 8, "device": "cpu",
        "val_fraction": 0.25}  # fmt: skip


# --- recipes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_made_of_allowed_knob_values(name: str) -> None:
    recipe = RECIPES[name]
    for key, value in recipe.knobs.items():
        assert key in KNOBS, key
        assert knob_problems(key, value) == [], (name, key, value)
    config = RunConfig.from_dict({"recipe": name, "sample_rate": 16000, "n_mels": 40})
    assert config.recipe == name and config.arch == recipe.knobs["arch"]
    assert name == "modern" or (recipe.published and recipe.source and recipe.notes)


def test_modern_is_the_default_and_the_field_defaults() -> None:
    assert RunConfig() == RunConfig.from_dict({}) == RunConfig.from_dict({"recipe": "modern"})
    for key, value in MODERN.knobs.items():
        assert getattr(RunConfig(), key) == value, key


def test_knobs_set_in_the_spec_win_over_the_recipe() -> None:
    config = RunConfig.from_dict({"recipe": "dcase2018", "lr": 0.1, "arch": "sb_cnn"})
    assert (config.lr, config.arch) == (0.1, "sb_cnn")
    assert (config.n_mels, config.batch_size, config.sample_rate) == (40, 16, 48000)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_paper_picks_the_recipe_of_the_architecture(arch: str) -> None:
    if arch not in PAPER_RECIPES:
        with pytest.raises(SpecError, match="recipe 'paper' needs an arch with a paper recipe"):
            RunConfig.from_dict({"recipe": "paper", "arch": arch})
        return
    config = RunConfig.from_dict({"recipe": "paper", "arch": arch})
    recipe = RECIPES[PAPER_RECIPES[arch]]
    assert config.recipe == "paper" and config.paper_recipe == recipe.name
    assert config.arch == arch and config.lr == recipe.knobs["lr"]


def test_a_spec_checks_each_recipe_it_may_run() -> None:
    ok = parse_spec(
        "method: grid\nparameters:\n  recipe: {values: [paper, modern]}\n"
        "  arch: {values: [dcase2017_mlp, dcase2018_cnn, piczak_cnn, sb_cnn]}\n"
    )
    assert ok.grid_size() == 8
    # dcase2018 runs at 48 kHz: f_max 30 kHz is above its Nyquist frequency.
    with pytest.raises(SpecError, match=r"f_max.*above sample_rate / 2 = 24000"):
        parse_spec(
            "method: grid\nparameters:\n  recipe: {value: dcase2018}\n  f_max: {value: 30000}\n"
        )
    with pytest.raises(SpecError, match="recipe"):
        parse_spec("method: grid\nparameters:\n  recipe: {value: fancy}\n")


# --- native sample rate ----------------------------------------------------------------------


def test_the_native_rate_is_used_and_upsampling_is_said_once(
    synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    native = train_and_evaluate(RunConfig.from_dict({**TINY, "data_root": str(synth_root)}))
    assert native.config["sample_rate"] == 16000 and native.clips["upsampled"] == 0
    assert "resampled up" not in capsys.readouterr().err
    up = train_and_evaluate(
        RunConfig.from_dict({**TINY, "data_root": str(synth_root), "sample_rate": 22050})
    )
    assert up.config["sample_rate"] == 22050 and up.clips["upsampled"] == 32
    err = capsys.readouterr().err
    assert err.count("32 clips are resampled up to 22050 Hz") == 1


def test_the_stored_config_holds_the_resolved_values(
    synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASC_SWEEP_TRACKING", "off")
    params = {**TINY, "data_root": str(synth_root), "recipe": "paper", "arch": "dcase2017_mlp",
              "epochs": 1, "sample_rate": None}  # fmt: skip
    summary = run_for_agent(params, StandaloneContext())
    config = summary["config"]
    assert config["sample_rate"] == 16000  # null: the dataset's rate
    assert (config["recipe"], config["min_epochs"], config["win_ms"]) == ("paper", 100, 40.0)
    assert config["batch_size"] == 8  # set by the spec: wins over the recipe


def test_a_paper_recipe_with_segment_voting_trains_end_to_end(synth_root: Path) -> None:
    knobs = {**TINY, "data_root": str(synth_root), "recipe": "piczak2015",
             "sample_rate": 16000, "epochs": 1, "batch_size": 16}  # fmt: skip
    result = train_and_evaluate(RunConfig.from_dict(knobs))
    assert result.config["eval_segment_seconds"] == pytest.approx(0.952, abs=1e-3)
    assert sum(map(sum, result.test["confusion"])) == 8 and result.best_epoch == 1


# --- model selection -------------------------------------------------------------------------


def _net(value: float) -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)
        net[1].running_mean.fill_(value)  # type: ignore[index]
    return net


def test_average_keeps_the_mean_of_the_last_epochs_weights() -> None:
    selection = ModelSelection("average", average_epochs=3, total_epochs=5)
    for epoch, value in enumerate([10.0, 20.0, 1.0, 2.0, 6.0], start=1):
        selection.update({"train/loss": 1.0, "train/accuracy": 0.5}, epoch, _net(value))
    weights = selection.best_weights
    assert weights is not None and selection.best_epoch == 5 and not selection.scored
    assert torch.allclose(weights["0.weight"], torch.full((2, 2), 3.0))
    assert torch.allclose(weights["1.running_mean"], torch.full((2,), 3.0))
    assert int(weights["1.num_batches_tracked"]) == 0 and not selection.exhausted


def test_best_loss_is_smoothed_and_patience_counts_after_min_epochs() -> None:
    selection = ModelSelection("best_loss", patience=2, min_epochs=4)
    # One lucky epoch (0.2) between bad ones does not win against a steadily good stretch.
    losses = [1.0, 0.2, 1.0, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9]
    for epoch, loss in enumerate(losses, start=1):
        row = {"val/loss": loss, "train/loss": 0.0, "train/accuracy": 1.0, "val/accuracy": 0.5}
        selection.update(row, epoch, _net(float(epoch)))
        if selection.exhausted:
            break
    assert selection.best_epoch == 6  # mean of epochs 4-6 is 0.5, the lowest
    assert epoch == 8 and selection.exhausted


def test_best_accuracy_patience_waits_for_min_epochs() -> None:
    selection = ModelSelection("best_accuracy", patience=1, min_epochs=3)
    for epoch in range(1, 4):
        selection.update({"val/accuracy": 0.9 if epoch == 1 else 0.1, "train/loss": 0.0,
                          "train/accuracy": 1.0}, epoch, _net(1.0))  # fmt: skip
        assert not selection.exhausted
    selection.update({"val/accuracy": 0.1, "train/loss": 0.0, "train/accuracy": 1.0}, 4, _net(1.0))
    assert selection.exhausted and selection.best_epoch == 1 and selection.scored


def test_selection_state_round_trips() -> None:
    a = ModelSelection("average", average_epochs=2, total_epochs=3)
    for epoch in (1, 2):
        a.update({"train/loss": 1.0, "train/accuracy": 0.5}, epoch, _net(float(epoch)))
    b = ModelSelection("average", average_epochs=2, total_epochs=3)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as through a checkpoint file
    for s in (a, b):
        s.update({"train/loss": 1.0, "train/accuracy": 0.5}, 3, _net(5.0))
    assert a.best_weights is not None and b.best_weights is not None
    assert torch.equal(a.best_weights["0.weight"], b.best_weights["0.weight"])
    assert torch.allclose(a.best_weights["0.weight"], torch.full((2, 2), 3.5))


# --- segment voting and augmentation ---------------------------------------------------------


class _SignNet(nn.Module):
    """Class 0 when a segment's mean is positive, class 1 otherwise (confident logits)."""

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        sign = (waves.mean(1) > 0).float()
        return torch.stack([sign * 4 - 2, 2 - sign * 4], dim=1)


def test_segment_vote_cuts_clips_and_combines_segments() -> None:
    # Clip 0: 3 positive segments then 1 negative (hop = size = 4); clip 1: shorter than a
    # segment, negative, padded.
    waves = torch.tensor([[1.0] * 12 + [-1.0] * 4, [-1.0] * 3 + [0.0] * 13])
    lengths = torch.tensor([16, 3])
    mean = segment_vote(_SignNet(), waves, lengths, size=4, hop=4, voting="mean")
    majority = segment_vote(_SignNet(), waves, lengths, size=4, hop=4, voting="majority")
    assert majority[0] == pytest.approx([0.75, 0.25]) and majority[1] == pytest.approx([0, 1])
    p = torch.softmax(torch.tensor([2.0, -2.0]), 0).numpy()
    assert mean[0] == pytest.approx(0.75 * p + 0.25 * p[::-1], abs=1e-6)
    # Overlapping segments: 16 samples, size 8, hop 4 -> 3 segments.
    three = segment_vote(_SignNet(), waves[:1], lengths[:1], size=8, hop=4, voting="majority")
    assert three[0] == pytest.approx([2 / 3, 1 / 3])


class _MomentNet(nn.Module):
    """Logits from each segment's mean and spread over its valid length; counts its calls."""

    calls = 0

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert bool((lengths == waves.shape[1]).all())  # every piece at its own length
        return torch.stack([waves.mean(1) * 3, waves.std(1, unbiased=False), -waves.mean(1)], 1)


def _segment_vote_clip_by_clip(
    net: nn.Module, waves: torch.Tensor, lengths: torch.Tensor, size: int, hop: int, voting: str
) -> torch.Tensor:
    """The plain reading of segment voting: one clip at a time."""
    out = []
    for wave, n in zip(waves, lengths.tolist(), strict=True):
        pieces = wave[:n].unfold(0, size, hop) if n >= size else wave[None, :n]
        probs = torch.softmax(net(pieces, torch.full((len(pieces),), pieces.shape[1])), 1)
        if voting == "majority":
            probs = F.one_hot(probs.argmax(1), probs.shape[1]).float()
        out.append(probs.mean(0))
    return torch.stack(out)


@pytest.mark.parametrize("voting", ["mean", "majority"])
def test_segment_vote_batches_segments_and_matches_clip_by_clip(voting: str) -> None:
    """Clips of many segments (alone, as views), of a few (gathered across clips, split over
    several calls), exactly one, and shorter than a segment, in one padded batch."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([400, 37, 64, 90, 10, 250, 120, 63])
    waves = torch.randn(len(lengths), int(lengths.max()), generator=gen)
    waves[torch.arange(waves.shape[1]) >= lengths[:, None]] = 0.0  # padding, as the loader's
    net = _MomentNet()
    got = segment_vote(net, waves, lengths, size=64, hop=16, voting=voting, chunk=8, alone=16)
    want = _segment_vote_clip_by_clip(_MomentNet(), waves, lengths, 64, 16, voting)
    assert torch.allclose(got, want, atol=1e-6)
    # Segments: clip 0 has 22 (alone: 3 calls of <= 8); clips 2, 3, 5, 6 have 1, 2, 12, 4
    # (19 gathered: 3 calls); clips 1, 4, 7 are shorter than a segment (a call each).
    assert net.calls == 3 + 3 + 3


class _FrameNet:
    """Stands in for a frame-wise pipeline: clip 0 has frames voting 0, 0, 1 (then padding
    that would vote 1), clip 1 a single frame voting 1."""

    def frame_logits(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        choice = torch.tensor([[0, 0, 1, 1], [1, 0, 0, 0]])
        frames = F.one_hot(choice, 2).float().transpose(1, 2) * 4 - 2  # (2, classes, 4)
        mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
        return frames, mask


def test_frame_vote_combines_the_valid_frames() -> None:
    waves, lengths = torch.zeros(2, 8), torch.tensor([8, 2])
    majority = frame_vote(_FrameNet(), waves, lengths, "majority")  # type: ignore[arg-type]
    assert majority[0] == pytest.approx([2 / 3, 1 / 3]) and majority[1] == pytest.approx([0, 1])
    mean = frame_vote(_FrameNet(), waves, lengths, "mean")  # type: ignore[arg-type]
    p = torch.softmax(torch.tensor([2.0, -2.0]), 0).numpy()
    assert mean[0] == pytest.approx((2 * p + p[::-1]) / 3, abs=1e-6)


def test_frame_loss_is_the_mean_over_valid_frames_of_each_frame_s_cross_entropy() -> None:
    torch.manual_seed(0)
    frames = torch.randn(2, 3, 5)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    targets = F.one_hot(torch.tensor([2, 0]), 3).float() * 0.9 + 0.1 / 3  # label smoothing
    per_frame = [
        -(targets[b] * F.log_softmax(frames[b, :, t], 0)).sum()
        for b in range(2)
        for t in range(5)
        if mask[b, t]
    ]
    expected = torch.stack(per_frame).mean()  # 7 frames, padding left out
    torch.testing.assert_close(frame_loss(frames, mask, targets), expected)


def test_frame_targets_need_a_frame_wise_model_and_whole_clip_evaluation() -> None:
    with pytest.raises(SpecError, match="frame_targets: needs a frame-wise arch"):
        RunConfig.from_dict({"frame_targets": True, "arch": "sb_cnn"})
    with pytest.raises(SpecError, match="eval_segment_seconds: must be null with frame_targets"):
        RunConfig.from_dict(
            {"recipe": "dcase2017", "eval_segment_seconds": 1.0, "sample_rate": 16000}
        )
    config = RunConfig.from_dict({"recipe": "paper", "arch": "dcase2017_mlp"})
    assert config.frame_targets and config.voting == "majority" and config.batch_size == 1


def test_frame_targets_train_and_vote_end_to_end(synth_root: Path) -> None:
    knobs = {**TINY, "data_root": str(synth_root), "recipe": "dcase2017", "sample_rate": 16000,
             "epochs": 2, "min_epochs": 0}  # fmt: skip
    frames = train_and_evaluate(RunConfig.from_dict(knobs))
    clips = train_and_evaluate(RunConfig.from_dict({**knobs, "frame_targets": False}))
    assert frames.config["frame_targets"] and sum(map(sum, frames.test["confusion"])) == 8
    assert frames.history[-1]["train/loss"] != clips.history[-1]["train/loss"]
    assert 0 <= frames.test["accuracy"] <= 1 and frames.epochs_run == 2


def test_band_shift_moves_content_and_fills_zeros() -> None:
    torch.manual_seed(0)
    x = torch.arange(6.0)[None, :, None].repeat(64, 1, 3)  # band b holds the value b
    shifted = shift_bands(x, 2)
    for row in shifted[:, :, 0]:
        nonzero = row[row != 0]
        offsets = {
            int(i - v) for i, v in zip(torch.nonzero(row != 0).flatten(), nonzero, strict=True)
        }
        assert len(offsets) == 1 and abs(offsets.pop()) <= 2  # one shift per clip
    assert not torch.equal(shifted, x)
    gains = random_gain(torch.ones(500, 4), 6.0)[:, 0]
    db = 20 * torch.log10(gains)
    assert db.min() >= -6.0 and db.max() <= 6.0 and db.std() > 2.0


def _stripes(flags: torch.Tensor) -> list[tuple[int, int]]:
    """The runs of True in a 1-d boolean tensor, as (start, end)."""
    runs, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_specaugment_masks_each_clip_within_its_own_frames() -> None:
    """Two band stripes and two frame stripes per clip, narrower than their limits, set to 0;
    a short clip batched with long ones gets its frame stripes within its own frames, as it
    would alone (torchaudio's draws spread them over the batch's length: most of a 12-frame
    clip's masks fell in its 88 frames of padding)."""
    spec = augment.SpecAugment(freq=8, time=20).train()
    x = torch.rand(64, 40, 100) + 1  # nothing is 0 before masking
    frames = torch.tensor([100, 12] * 32)
    torch.manual_seed(0)
    out = spec(x, frames)
    hidden = out == 0
    assert torch.equal(out[~hidden], x[~hidden])
    short_hit = 0
    for clip in range(64):
        columns, rows = hidden[clip].all(dim=0), hidden[clip].all(dim=1)
        # Every hidden cell is in a hidden band or a hidden frame.
        assert torch.equal(hidden[clip], rows[:, None] | columns[None, :])
        row_runs, column_runs = _stripes(rows), _stripes(columns)
        assert len(row_runs) <= 2 and all(end - start < 16 for start, end in row_runs)
        assert len(column_runs) <= 2 and all(end - start < 40 for start, end in column_runs)
        assert not columns[int(frames[clip]) :].any()  # never past the clip's end
        short_hit += int(frames[clip]) == 12 and bool(columns.any())
    # Each of a short clip's two masks is at least a frame wide 95% of the time.
    assert short_hit >= 28
    # A whole batch: masks anywhere, and the same as with every clip's frames given.
    torch.manual_seed(1)
    whole = spec(x)
    torch.manual_seed(1)
    assert torch.equal(whole, spec(x, torch.full((64,), 100)))
    assert (whole == 0).all(dim=1)[:, 50:].any()
    # The draws are torch's CPU stream: seeded alike, alike; evaluation leaves x alone.
    torch.manual_seed(0)
    assert torch.equal(spec(x, frames), out)
    assert spec.eval()(x, frames) is x


def test_specaugment_s_masks_are_no_wider_than_scaled() -> None:
    """``scaled``: an eighth of the bands, a sixteenth of the example's frames; a mask wider
    than its clip covers the clip, and nothing past it."""
    spec = augment.SpecAugment.scaled(64, 400)
    assert (spec.freq, spec.time) == (8, 25)
    spec.train()
    torch.manual_seed(4)
    out = spec(torch.ones(256, 64, 400), torch.tensor([3, 400] * 128))
    columns = (out == 0).all(dim=1)
    assert not columns[0::2, 3:].any() and columns[0::2, :3].all(dim=1).any()
    widths = [end - start for clip in columns[1::2] for start, end in _stripes(clip)]
    assert max(widths) <= 2 * 24 and np.mean(widths) > 5


def test_freq_mixstyle_mixes_each_clip_s_band_statistics_with_another_s() -> None:
    """Each clip's per-band mean over time becomes a convex mix of its own and one other
    clip's, with one weight for all its bands; its shape over time is kept."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 50) * torch.rand(2, 8, 1) * 3 + torch.randn(2, 8, 1) * 5
    mixed_any = False
    for _ in range(20):
        out = freq_mixstyle(x, 1.0)
        mean, out_mean = x.mean(dim=2), out.mean(dim=2)
        for b, other in ((0, 1), (1, 0)):
            moved = out_mean[b] - mean[b]
            if moved.abs().max() < 1e-4:
                continue  # paired with itself
            weight = moved / (mean[other] - mean[b])  # 1 - lambda, the same in every band
            assert torch.allclose(weight, weight.mean().expand_as(weight), atol=1e-3)
            assert 0 <= float(weight.mean()) <= 1
            mixed_any = True
        # Within each band the frames keep their order and relative spacing.
        normed = (x - x.mean(2, keepdim=True)) / x.std(2, keepdim=True)
        out_normed = (out - out.mean(2, keepdim=True)) / out.std(2, keepdim=True)
        assert torch.allclose(normed, out_normed, atol=1e-3)
    assert mixed_any
    assert torch.equal(freq_mixstyle(x, 0.0), x)


def test_freq_mixstyle_counts_only_the_frames_a_clip_has() -> None:
    """A short clip padded in a batch of long ones: its statistics are of its own frames, the
    padding stays as it was, and what its padding holds changes nothing anywhere. (Counted
    in, padding far below any sound made a short clip's statistics, and through the mix its
    partner's.) With every frame valid, the statistics are the plain ones."""
    torch.manual_seed(1)
    x = torch.randn(4, 6, 40) * torch.tensor([1.0, 2.0, 0.5, 3.0])[:, None, None] + 4 * torch.randn(
        4, 6, 1
    )
    frames = torch.tensor([40, 10, 40, 25])
    floor, zero = x.clone(), x.clone()
    for b, n in enumerate(frames.tolist()):
        floor[b, :, n:], zero[b, :, n:] = -30.0, 0.0
    torch.manual_seed(8)  # clips paired 0-3, 1-0, 2-1, 3-2
    a = freq_mixstyle(floor, 1.0, frames)
    torch.manual_seed(8)  # clips paired 0-3, 1-0, 2-1, 3-2
    b = freq_mixstyle(zero, 1.0, frames)
    valid = torch.arange(40)[None, :] < frames[:, None]
    assert torch.allclose(a[valid.unsqueeze(1).expand_as(a)], b[valid.unsqueeze(1).expand_as(b)])
    assert torch.equal(a[~valid.unsqueeze(1).expand_as(a)], floor[~valid.unsqueeze(1).expand_as(a)])
    assert not torch.allclose(a, floor)
    # Every frame valid: the same as the statistics of the whole tensor.
    torch.manual_seed(8)  # clips paired 0-3, 1-0, 2-1, 3-2
    whole = freq_mixstyle(x, 1.0, torch.full((4,), 40))
    torch.manual_seed(8)  # clips paired 0-3, 1-0, 2-1, 3-2
    assert torch.allclose(whole, freq_mixstyle(x, 1.0), atol=1e-6)
    # A clip of one frame has no spread: it is mixed, not turned into NaN.
    assert torch.isfinite(freq_mixstyle(x, 1.0, torch.tensor([1, 40, 40, 40]))).all()


def test_a_run_with_freq_mixstyle_hands_it_the_clips_frame_counts(synth_root: Path) -> None:
    """The pipeline hands the clips' frame counts to Freq-MixStyle: a short clip's padding
    does not enter the statistics mixed in training (and past its end the features hold 0)."""
    from asc_sweep.data.features import LogMel
    from asc_sweep.models import build_model
    from asc_sweep.models.common import ModelSpec
    from asc_sweep.run.train import Pipeline

    front = LogMel(sample_rate=16000, n_mels=40)
    net = Pipeline(front, build_model("dcase2018_cnn", ModelSpec(4, 40, 16000)), False,
                   mixstyle=1.0).train()  # fmt: skip
    waves = torch.randn(3, 16000) * 0.1
    lengths = torch.tensor([16000, 4000, 16000])
    waves[1, 4000:] = 0
    plain, frames = front(front.pad_ends(waves, lengths)), front.frames(lengths)
    inside = (torch.arange(plain.shape[2])[None, :] < frames[:, None])[:, None, :]
    torch.manual_seed(2)
    x, _ = net.features(waves, lengths)
    torch.manual_seed(2)
    assert torch.equal(x, torch.where(inside, freq_mixstyle(plain, 1.0, frames), 0.0))
    torch.manual_seed(2)
    assert not torch.allclose(x, torch.where(inside, freq_mixstyle(plain, 1.0), 0.0))
    result = train_and_evaluate(RunConfig.from_dict(
        {**TINY, "data_root": str(synth_root), "sample_rate": 16000, "epochs": 1,
         "arch": "dcase2018_cnn", "mixstyle": 1.0}))  # fmt: skip
    assert np.isfinite(result.history[0]["train/loss"]) and 0 <= result.test["accuracy"] <= 1


@pytest.mark.parametrize("shape", [(4, 5, 30), (4, 30)])  # log-mel, and waveforms
def test_mixup_mixes_frames_only_where_the_partner_has_them(shape: tuple[int, ...]) -> None:
    """A clip's frames past its partner's end keep their own values (the partner's padding is
    no sound to mix in); its own padding stays padding; where both have frames, the usual
    mix. Clips of one length: the plain mixup, bit for bit. The targets mix as before."""
    x = torch.randn(*shape)
    targets = torch.eye(4)
    steps = torch.tensor([30, 12, 30, 20])
    plain, plain_targets = mixup(x, targets, 0.4, np.random.default_rng(3))
    mixed, mixed_targets = mixup(x, targets, 0.4, np.random.default_rng(3), steps)
    assert torch.equal(mixed_targets, plain_targets)
    rng = np.random.default_rng(3)
    lam, perm = float(rng.beta(0.4, 0.4)), rng.permutation(4)
    assert not (perm == np.arange(4)).all()
    for b in range(4):
        both = min(int(steps[b]), int(steps[perm[b]]))
        assert torch.equal(mixed[b, ..., :both], plain[b, ..., :both])
        assert torch.equal(mixed[b, ..., both:], x[b, ..., both:])
        if both < int(steps[b]):  # the plain form pulled these towards the partner's padding
            assert not torch.allclose(
                plain[b, ..., both : int(steps[b])], x[b, ..., both : int(steps[b])]
            )
    assert any(min(int(steps[b]), int(steps[perm[b]])) < int(steps[b]) for b in range(4))
    moved = int(np.flatnonzero(perm != np.arange(4))[0])  # a clip paired with another
    assert float(mixed_targets[moved, moved]) == pytest.approx(lam)
    full, _ = mixup(x, targets, 0.4, np.random.default_rng(3), torch.full((4,), 30))
    assert torch.equal(full, plain)


def test_training_hands_mixup_the_clips_frame_counts(
    synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asc_sweep.run.train as train_module

    seen: list[tuple[int, ...]] = []

    def recording(x: torch.Tensor, targets: torch.Tensor, alpha: float,
                  rng: np.random.Generator,
                  steps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        assert steps is not None and steps.shape == (x.shape[0],)
        assert int(steps.max()) <= x.shape[-1]
        seen.append(tuple(x.shape))
        return mixup(x, targets, alpha, rng, steps)

    monkeypatch.setattr(train_module, "mixup", recording)
    train_and_evaluate(RunConfig.from_dict(
        {**TINY, "data_root": str(synth_root), "sample_rate": 16000, "epochs": 1,
         "arch": "dcase2018_cnn", "mixup": 0.3}))  # fmt: skip
    assert seen


def test_random_filter_is_a_smooth_bounded_gain_per_clip() -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 40, 5)
    std = torch.full((40, 1), 2.0)  # 2 dB per normalised unit
    out = random_filter(x, 6.0, std)
    curve_db = (out - x) * std[None]  # (B, M, T)
    # One gain per clip and band, the same in every frame, within +/- 6 dB.
    assert torch.allclose(curve_db, curve_db[:, :, :1].expand_as(curve_db), atol=1e-5)
    curve = curve_db[:, :, 0]
    assert curve.abs().max() <= 6.0 + 1e-5 and curve.std() > 1.0
    # Piecewise linear through at most 6 points: at most 4 kinks (second differences) a clip.
    kinks = (curve.diff(dim=1).diff(dim=1).abs() > 1e-4).sum(dim=1)
    assert int(kinks.max()) <= 2 * 4  # a kink between bands shows in two second differences
    assert len({tuple(row.round(decimals=3).tolist()) for row in curve}) == 32  # per clip


# --- field-like synthetic scenes -------------------------------------------------------------


def test_field_scenes_are_imbalanced_location_disjoint_and_deterministic(tmp_path: Path) -> None:
    spec = SynthSpec(classes=4, clips_per_class=16, seconds=1.0, sample_rate=16000,
                     realism="field")  # fmt: skip
    generate(tmp_path, spec, workers=1)
    with (tmp_path / "meta.csv").open() as f:
        rows = list(csv.DictReader(f))
    counts = Counter(r["label"] for r in rows)
    assert len(rows) == clip_count(spec) and counts["rain"] == 16 and counts["insects"] < 16
    folds_of_group: dict[str, set[str]] = {}
    for r in rows:
        folds_of_group.setdefault(r["group"], set()).add(r["fold"])
    assert all(len(f) == 1 for f in folds_of_group.values())
    wave, sr = sf.read(tmp_path / rows[0]["filename"])
    assert sr == 16000 and np.isfinite(wave).all() and np.abs(wave).max() < 1
    again = render_clip(spec, "rain", 0, 0)
    assert np.array_equal(again, render_clip(spec, "rain", 0, 0))
    easy = render_clip(SynthSpec(classes=4, clips_per_class=16, seconds=1.0, sample_rate=16000),
                       "rain", 0, 0)  # fmt: skip
    assert not np.allclose(again, easy)
    with pytest.raises(ValueError, match="realism"):
        SynthSpec(realism="studio")


def test_data_synth_takes_realism(tmp_path: Path, cli: Any) -> None:
    result: Any = cli("data", "synth", str(tmp_path / "f"), "--realism", "field",
                      "--classes", "3", "--clips-per-class", "8", "--seconds", "0.5",
                      "--sample-rate", "8000", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(field)" in result.output or "wrote" in result.output
    bad: Any = cli("data", "synth", str(tmp_path / "g"), "--realism", "studio")
    assert bad.exit_code == 2 and "realism" in bad.output
