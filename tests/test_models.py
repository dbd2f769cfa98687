"""The architecture registry: every model at every sample rate, published sizes, overfitting."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from asc_sweep.data.features import LogMel, fit_normalization
from asc_sweep.models import ARCHITECTURES, ModelSpec, build_model, count_parameters
from asc_sweep.models.common import BatchNorm1d, BatchNorm2d, zero_past
from asc_sweep.sweep.config import ARCH_NAMES, FRAME_WISE_ARCHS, MIN_MELS, WAVEFORM_ARCHS, RunConfig

RATES = (8000, 16000, 22050, 32000, 44100)


def test_registry_matches_the_spec_contract() -> None:
    assert tuple(ARCHITECTURES) == ARCH_NAMES
    for name, builder in ARCHITECTURES.items():
        doc = builder.__doc__ or ""
        assert "Init:" in doc and ("Size:" in doc or "parameters" in doc), name
    with pytest.raises(KeyError, match="unknown architecture 'vgg'"):
        build_model("vgg", ModelSpec(10))


def _batch(arch: str, sr: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """Three clips of different lengths (1 s, 0.6 s, 0.3 s), padded, through the run's front end."""
    config = RunConfig.from_dict(
        {"sample_rate": sr, "n_mels": 40, "arch": arch, "win_ms": 25.0, "hop_ms": 10.0}
    )
    model = build_model(arch, ModelSpec(n_classes=5, n_mels=40, sample_rate=sr))
    lengths = torch.tensor([sr, int(0.6 * sr), int(0.3 * sr)])
    waves = torch.zeros(3, sr)
    for i, n in enumerate(lengths):
        waves[i, :n] = torch.randn(int(n)) * 0.1
    if model.input_kind == "waveform":
        return model, waves, lengths
    front = LogMel.from_config(config)
    fit_normalization(front, [(waves, lengths)])
    return model, front(waves), front.frames(lengths)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_forward_and_backward_at_every_sample_rate(arch: str, sr: int) -> None:
    torch.manual_seed(0)
    model, x, lengths = _batch(arch, sr)
    logits = model(x, lengths)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_every_model_takes_its_fewest_bands_and_a_single_frame(arch: str) -> None:
    """The spec validator refuses a run the model cannot take, from ``MIN_MELS`` and
    ``WAVEFORM_ARCHS``: those tables must be what the models accept. At its fewest bands
    each model builds (and one band fewer does not), and clips of one frame (or one sample),
    alone, beside each other or beside a long one, train and evaluate to finite logits. (Alone,
    a one-frame clip leaves batch norm one value per channel: it trains on the running
    statistics, which it leaves as they are.)"""
    assert (ARCHITECTURES[arch].input_kind == "waveform") == (arch in WAVEFORM_ARCHS)
    fewest = 1 if arch in WAVEFORM_ARCHS else MIN_MELS.get(arch, 1)
    if fewest > 1:
        with pytest.raises(ValueError, match=r"needs? n_mels >= "):
            build_model(arch, ModelSpec(n_classes=3, n_mels=fewest - 1))
    torch.manual_seed(0)
    model = build_model(arch, ModelSpec(n_classes=3, n_mels=fewest, sample_rate=8000))
    for width, lengths in ((1, [1]), (1, [1, 1]), (300, [300, 1])):
        shape = (len(lengths), width) if arch in WAVEFORM_ARCHS else (len(lengths), fewest, width)
        x = torch.randn(shape)
        model.train()
        logits = model(x, torch.tensor(lengths))
        logits.sum().backward()
        model.eval()
        with torch.no_grad():
            tested = model(x, torch.tensor(lengths))
        assert logits.shape == tested.shape == (len(lengths), 3), (arch, lengths)
        assert torch.isfinite(logits).all() and torch.isfinite(tested).all(), (arch, lengths)


@pytest.mark.parametrize("norm", [BatchNorm1d, BatchNorm2d])
def test_batch_norm_trains_on_one_value_per_channel_with_its_running_statistics(norm: type) -> None:
    """torch raises on a training batch of one value per channel; the models' batch norm
    normalises it with the running statistics, which it leaves as they are, and is torch's
    own on every other batch."""
    torch.manual_seed(0)
    bn, reference = norm(4), (nn.BatchNorm1d if norm is BatchNorm1d else nn.BatchNorm2d)(4)
    with torch.no_grad():
        for layer in (bn, reference):
            layer.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
            layer.running_var.copy_(torch.tensor([4.0, 1.0, 0.25, 9.0]))
            layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
    shape = (1, 4) if norm is BatchNorm1d else (1, 4, 1, 1)
    bn.train(), reference.train()
    x = torch.randn(shape)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        reference(x)
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    y = bn(x)
    expected = (x.reshape(4) - stats[0]) / torch.sqrt(stats[1] + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(y.reshape(4), expected)
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    y.sum().backward()  # it trains: the affine parameters get their gradients
    assert bn.weight.grad is not None and torch.isfinite(bn.weight.grad).all()
    wider = torch.randn((3, 4) if norm is BatchNorm1d else (3, 4, 2, 2))
    torch.testing.assert_close(bn(wider), reference(wider))
    torch.testing.assert_close(bn.running_mean, reference.running_mean)


def test_frame_wise_models_pool_their_frames_logits() -> None:
    assert (
        tuple(a for a in ARCH_NAMES if getattr(ARCHITECTURES[a], "frame_wise", False))
        == FRAME_WISE_ARCHS
    )
    torch.manual_seed(0)
    model = build_model("dcase2017_mlp", ModelSpec(n_classes=4, n_mels=40)).eval()
    x, lengths = torch.randn(2, 40, 30), torch.tensor([30, 12])
    frames, mask = model.frame_logits(x, lengths)
    assert frames.shape == (2, 4, 26) and mask.sum(1).tolist() == [26, 8]  # 5-frame context
    expected = torch.stack([frames[i, :, : int(n)].mean(-1) for i, n in enumerate(mask.sum(1))])
    torch.testing.assert_close(model(x, lengths), expected)
    with pytest.raises(NotImplementedError, match="not a frame-wise model"):
        build_model("dcase2018_cnn", ModelSpec(n_classes=4, n_mels=40)).frame_logits(x, lengths)


def test_padding_does_not_change_a_clip_s_output() -> None:
    """Masked pooling: a clip padded with extra frames gives the same logits (dense models)."""
    torch.manual_seed(0)
    model = build_model("dcase2017_mlp", ModelSpec(n_classes=4, n_mels=40)).eval()
    x = torch.randn(1, 40, 50)
    padded = torch.cat([x, torch.randn(1, 40, 30) * 100], dim=-1)
    torch.testing.assert_close(model(x, torch.tensor([50])), model(padded, torch.tensor([50])))


def as_if_trained(model: nn.Module, seed: int = 2) -> nn.Module:
    """``model`` with the batch-norm statistics and affine terms of a trained network: an
    untrained one normalises zeros to zeros (running mean 0, variance 1, bias 0), which hides
    any layer that lets a clip's padding through."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.5)
    return model


def test_zero_past_zeroes_each_clip_past_its_positions_along_time() -> None:
    x = torch.randn(3, 4, 10, 6, dtype=torch.bfloat16)  # PANNs' layout: time on axis 2
    valid = torch.tensor([10, 3, 7])
    out = zero_past(x, valid, dim=2)
    assert out.dtype == torch.bfloat16
    for i, n in enumerate(valid.tolist()):
        assert torch.equal(out[i, :, :n], x[i, :, :n])
        assert not out[i, :, n:].any()
    # A batch that no clip leaves short is returned as it is, with no pass over it.
    full = torch.randn(2, 5, 8)
    assert zero_past(full, torch.tensor([8, 9])) is full


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_a_clip_batched_with_a_longer_one_is_classified_as_it_is_alone(arch: str) -> None:
    """Padded with zeros (the normalised mean, what the features hold past a clip's end) beside
    a longer clip, at lengths that are and are not multiples of a model's poolings, down to a
    frame: the same probabilities as alone, to float rounding, in every architecture, with a
    trained network's batch norm. Before each layer that reads over time saw zeros past a
    clip's end, the unpadded convolutions of piczak_cnn and sb_cnn pooled positions whose
    fields reached into the padding (4e-3 in a probability), and the deeper "same"-padded
    convolutions of dcase2018_cnn, the PANNs, CP-ResNet, the CRNN and M5/M11 met
    batch-normalised padding (1e-3 to 1e-2)."""
    assert change_batched_against_alone(arch, torch.device("cpu")) < 1e-6


def change_batched_against_alone(arch: str, device: torch.device) -> float:
    """The largest change of a probability between a short clip alone and the same clip
    zero-padded beside a 200-frame one, over lengths of 1 to 133 frames (a frame is 160
    samples for the waveform models), with a trained network's batch norm."""
    torch.manual_seed(1)
    spec = ModelSpec(n_classes=4, n_mels=64, sample_rate=16000)
    model = as_if_trained(build_model(arch, spec)).eval().to(device)
    scale = 160 if model.input_kind == "waveform" else 1  # samples a frame
    worst = 0.0
    for frames in (1, 3, 37, 50, 61, 99, 133):
        n, longest = frames * scale, 200 * scale
        shape = (longest,) if scale > 1 else (64, longest)
        batch = torch.zeros(2, *shape)
        batch[1] = torch.randn(shape)
        clip = torch.randn(1, *shape[:-1], n)
        batch[0, ..., :n] = clip[0]
        with torch.no_grad():
            lengths = torch.tensor([n, longest], device=device)
            batched = torch.softmax(model(batch.to(device), lengths), 1)[0]
            alone = torch.softmax(model(clip.to(device), lengths[:1]), 1)[0]
        worst = max(worst, float((batched - alone).abs().max()))
    return worst


def _packed_gru(model: torch.nn.Module, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The CRNN's recurrent layer as it was first written: one bidirectional GRU over packed
    sequences, with the CRNN's weights."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    fwd, bwd = model.gru_forward, model.gru_backward
    gru = torch.nn.GRU(fwd.input_size, fwd.hidden_size, batch_first=True, bidirectional=True)
    gru.load_state_dict(
        {**fwd.state_dict(), **{f"{k}_reverse": v for k, v in bwd.state_dict().items()}}
    )
    packed = pack_padded_sequence(seq, lengths, batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(gru(packed)[0], batch_first=True, total_length=seq.shape[1])[0]


def test_crnn_computes_what_a_packed_bidirectional_gru_does() -> None:
    """Padding never enters either direction's state: the outputs (in time order) and
    gradients of clips of four lengths in one padded batch are a packed GRU's."""
    torch.manual_seed(0)
    model = build_model("crnn", ModelSpec(n_classes=4, n_mels=64)).eval()
    seq = torch.randn(4, 60, model.gru_forward.input_size, requires_grad=True)
    lengths = torch.tensor([60, 33, 1, 47])
    valid = (torch.arange(60)[None, :] < lengths[:, None])[:, :, None]
    ours = model.recurrent(seq, lengths) * valid
    packed = _packed_gru(model, seq, lengths) * valid
    torch.testing.assert_close(ours, packed)
    grads = [torch.autograd.grad(y.square().sum(), seq)[0] for y in (ours, packed)]
    torch.testing.assert_close(*grads)


def test_crnn_loads_checkpoints_of_its_bidirectional_form() -> None:
    torch.manual_seed(0)
    model = build_model("crnn", ModelSpec(n_classes=4, n_mels=64)).eval()
    old = {}  # the keys a checkpoint of the earlier form holds
    for key, value in model.state_dict().items():
        for new_prefix, suffix in (("gru_forward.", ""), ("gru_backward.", "_reverse")):
            if key.startswith(new_prefix):
                key = f"gru.{key[len(new_prefix) :]}{suffix}"
        old[key] = value.clone()
    fresh = build_model("crnn", ModelSpec(n_classes=4, n_mels=64)).eval()
    fresh.load_state_dict(old)
    x, lengths = torch.randn(2, 64, 40), torch.tensor([40, 25])
    torch.testing.assert_close(fresh(x, lengths), model(x, lengths))


# Piczak's 25 M parameters behind two dropout-0.5 dense layers make large Adam steps erratic.
OVERFIT_SCHEDULE = {"piczak_cnn": (100, 1e-3)}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_overfits_a_tiny_batch(arch: str) -> None:
    torch.manual_seed(0)
    model, x, lengths = _batch(arch, 16000)
    x, lengths = x.detach(), lengths.detach()
    labels = torch.tensor([0, 3, 1])
    steps, lr = OVERFIT_SCHEDULE.get(arch, (200, 2e-3))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x, lengths), labels)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Training-mode loss (dropout on), averaged over 5 consecutive steps: down by at least
    # 90% somewhere in the second half. (Not just the last 5: with batch norm over 3 clips,
    # Adam at this rate can fit the batch to a loss of 0.000 and then spike for a few steps,
    # and whether a spike falls in the last 5 turns on float rounding in the front end.)
    best = min(sum(losses[i : i + 5]) / 5 for i in range(steps // 2, steps - 4))
    assert best <= 0.1 * losses[0], (arch, losses[0], best)


PUBLISHED = {  # arch: (spec in the paper's setting, parameters, tolerance)
    "dcase2018_cnn": (ModelSpec(n_classes=10, n_mels=40), 116_118, 0.0),  # exact, as published
    "dcase2017_mlp": (ModelSpec(n_classes=15, n_mels=40), 13_365, 0.0),  # 200-50-50-15 dense layers
    "cnn6": (ModelSpec(n_classes=527, n_mels=64), 4_800_000, 0.01),  # "4.8 M"
    "cnn10": (ModelSpec(n_classes=527, n_mels=64), 5_200_000, 0.01),  # "5.2 M"
    "m11": (ModelSpec(n_classes=10, sample_rate=8000), 1_800_000, 0.01),  # "1.8 M"
}


@pytest.mark.parametrize("arch", list(PUBLISHED))
def test_parameter_counts_match_the_papers(arch: str) -> None:
    spec, published, tolerance = PUBLISHED[arch]
    n = count_parameters(build_model(arch, spec))
    assert abs(n - published) <= tolerance * published, (arch, n, published)


def test_masked_mean_in_bf16_is_the_rounded_float32_mean() -> None:
    """Under bf16 (autocast on a GPU) the frames of a 4 s crop (~400) cannot be counted, nor
    summed, in bf16: the mean must be accumulated in float32 and rounded once."""
    from asc_sweep.models.common import masked_mean, time_mask

    torch.manual_seed(0)
    x = (torch.randn(64, 8, 1000) + 3).bfloat16()
    mask = time_mask(torch.full((64,), 777), 1, 1000)
    exact = x[..., :777].double().mean(-1)
    out = masked_mean(x, mask)
    assert out.dtype == torch.bfloat16
    ulp = 2.0 ** torch.floor(torch.log2(exact.abs())) * 2**-7  # bf16's spacing at each value
    assert float(((out.double() - exact).abs() / ulp).max()) <= 0.5 + 1e-6  # one rounding


def _published_order(
    model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """dcase2018_cnn as its paper orders each block: conv, BN, ReLU, then max pooling (and
    block 2's input zeroed past each clip's end, as the model does)."""
    import torch.nn.functional as F

    from asc_sweep.models.common import masked_max, time_mask

    m: Any = model
    x = F.pad(x.unsqueeze(1), (0, -x.shape[-1] % 5))
    x = m.drop(F.max_pool2d(F.relu(m.block1(x)), 5))
    mask = time_mask(lengths, 5, x.shape[-1])
    x = x * mask[:, None, None, :]
    x = m.drop(F.max_pool2d(F.relu(m.block2(x)), (4, 1)))
    return m.head(masked_max(x, mask).flatten(1))


def test_relu_after_pooling_gives_the_published_block_s_values_and_gradients() -> None:
    """dcase2018_cnn applies ReLU after max pooling (25x fewer elements in block 1): ReLU is
    monotonic, so the logits and every gradient equal the paper's order exactly."""
    model, x, lengths = _batch("dcase2018_cnn", 16000)
    grads = []
    for forward in (model, lambda x, n: _published_order(model, x, n)):
        torch.manual_seed(0)  # the same dropout masks
        model.zero_grad()
        logits = forward(x, lengths)
        logits.square().sum().backward()
        grads.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
    (ours, ours_grads), (paper, paper_grads) = grads
    assert torch.equal(ours, paper)
    assert all(torch.equal(a, b) for a, b in zip(ours_grads, paper_grads, strict=True))


@pytest.mark.parametrize("arch", [a for a in ARCH_NAMES if a not in ("m5", "m11")])
def test_channels_last_weights_compute_the_same_logits(arch: str) -> None:
    """Runs keep conv weights channels-last (faster convolutions on CPUs and GPUs): a
    different summation order, the same function to float32 rounding."""
    torch.manual_seed(0)
    model, x, lengths = _batch(arch, 16000)
    model.eval()
    before = model(x, lengths)
    after = model.to(memory_format=torch.channels_last)(x, lengths)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


def test_cpu_dropout_is_a_scaled_bernoulli_mask_drawn_from_the_seeded_generator() -> None:
    from asc_sweep.models.common import Dropout, dropout

    x = torch.ones(400_000, requires_grad=True)
    torch.manual_seed(3)
    y = dropout(x, 0.3, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.003  # 5 standard errors
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))  # torch's scaling
    y.backward(torch.ones_like(y))
    assert x.grad is not None and torch.equal(x.grad, y.detach())  # gradient: the same mask
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.3, True), y)  # the seeded generator decides the mask
    assert dropout(x, 0.3, False) is x and dropout(x, 0.0, True) is x
    assert torch.equal(dropout(x, 1.0, True), torch.zeros_like(x))
    m = Dropout(0.5)
    assert m.state_dict() == {} and torch.equal(m.eval()(x), x)
    m.train()
    assert abs((m(x) == 0).float().mean().item() - 0.5) < 0.003
    for arch in ("dcase2017_mlp", "dcase2018_cnn", "piczak_cnn", "sb_cnn", "cnn6"):
        model = build_model(arch, ModelSpec(n_classes=4, n_mels=64))
        assert not any(type(m) is torch.nn.Dropout for m in model.modules()), arch
