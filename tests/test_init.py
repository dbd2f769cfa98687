"""Each init scheme gives the weight statistics its formula says; `default` changes nothing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from asc_sweep.models import ModelSpec, build_model
from asc_sweep.models.init import INITS, apply_init
from asc_sweep.sweep.config import INIT_NAMES


def big_layers() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128), nn.Linear(1024, 512), nn.GRU(256, 128)
    )


FAN = {"conv": (64 * 9, 128 * 9), "linear": (1024, 512)}


def test_registry_matches_the_spec_contract() -> None:
    assert INITS == INIT_NAMES


@pytest.mark.parametrize(
    ("scheme", "expected_std"),
    [
        ("he_normal", lambda fi, fo: math.sqrt(2 / fi)),
        ("he_uniform", lambda fi, fo: math.sqrt(6 / fi) / math.sqrt(3)),
        ("xavier_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
        ("xavier_uniform", lambda fi, fo: math.sqrt(6 / (fi + fo)) / math.sqrt(3)),
        ("lecun_normal", lambda fi, fo: math.sqrt(1 / fi)),
    ],
)
def test_weight_std_follows_the_formula(scheme: str, expected_std: object) -> None:
    torch.manual_seed(0)
    model = apply_init(big_layers(), scheme).requires_grad_(False)
    conv, bn, linear, gru = model
    for layer, (fan_in, fan_out) in ((conv, FAN["conv"]), (linear, FAN["linear"])):
        want = expected_std(fan_in, fan_out)  # type: ignore[operator]
        assert abs(float(layer.weight.std()) - want) <= 0.05 * want, (
            scheme,
            float(layer.weight.std()),
            want,
        )
        assert abs(float(layer.weight.mean())) < 0.05 * want
        assert torch.count_nonzero(layer.bias) == 0
    if scheme.endswith("uniform"):
        bound = expected_std(*FAN["linear"]) * math.sqrt(3)  # type: ignore[operator]
        assert float(linear.weight.abs().max()) <= bound
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    for chunk in gru.weight_hh_l0.chunk(3):  # recurrent weights: orthogonal per gate
        torch.testing.assert_close(chunk @ chunk.T, torch.eye(128), atol=1e-4, rtol=0)
    assert all(torch.count_nonzero(getattr(gru, b)) == 0 for b in ("bias_ih_l0", "bias_hh_l0"))


def test_orthogonal() -> None:
    layer = apply_init(nn.Sequential(nn.Linear(256, 128)), "orthogonal")[0]
    torch.testing.assert_close(layer.weight @ layer.weight.T, torch.eye(128), atol=1e-4, rtol=0)


def test_default_leaves_pytorch_untouched() -> None:
    torch.manual_seed(3)
    reference = build_model("cnn6", ModelSpec(10)).state_dict()
    torch.manual_seed(3)
    model = apply_init(build_model("cnn6", ModelSpec(10)), "default")
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown init 'glorot'"):
        apply_init(big_layers(), "glorot")
