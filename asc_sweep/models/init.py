"""Weight-initialisation schemes, applied to a built model by name.

Every scheme but ``default`` sets conv and linear weights by its rule (fan-in for He and
LeCun, fan-in and fan-out for Xavier), biases to zero, and normalisation layers to weight 1,
bias 0. Recurrent layers get the rule on their input-to-hidden weights, gate by gate, and
orthogonal hidden-to-hidden weights (the usual practice: a recurrent matrix should neither
grow nor shrink the state). ``default`` leaves PyTorch's own initialisation untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

WeightRule = Callable[[torch.Tensor], None]


def _fans(w: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(w.shape[2:]) if w.dim() > 2 else 1
    return w.shape[1] * receptive, w.shape[0] * receptive


def he_normal(w: torch.Tensor) -> None:
    nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")  # std = sqrt(2 / fan_in)


def he_uniform(w: torch.Tensor) -> None:
    nn.init.kaiming_uniform_(w, mode="fan_in", nonlinearity="relu")  # bound = sqrt(6 / fan_in)


def xavier_normal(w: torch.Tensor) -> None:
    nn.init.xavier_normal_(w)  # std = sqrt(2 / (fan_in + fan_out))


def xavier_uniform(w: torch.Tensor) -> None:
    nn.init.xavier_uniform_(w)  # bound = sqrt(6 / (fan_in + fan_out))


def orthogonal(w: torch.Tensor) -> None:
    nn.init.orthogonal_(w)


def lecun_normal(w: torch.Tensor) -> None:
    fan_in, _ = _fans(w)
    with torch.no_grad():
        w.normal_(0.0, 1.0 / math.sqrt(fan_in))  # std = sqrt(1 / fan_in)


RULES: dict[str, WeightRule] = {
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "orthogonal": orthogonal,
    "lecun_normal": lecun_normal,
}
INITS: tuple[str, ...] = ("default", *RULES)

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)


M = TypeVar("M", bound=nn.Module)


def apply_init(model: M, scheme: str) -> M:
    """Initialise ``model`` in place with ``scheme`` (see ``INITS``); returns the model."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; allowed: {', '.join(INITS)}")
    if scheme == "default":
        return model
    rule = RULES[scheme]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                rule(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, NORMS):
                if getattr(module, "weight", None) is not None:
                    module.weight.fill_(1.0)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.GRU, nn.LSTM, nn.RNN)):
                _init_recurrent(module, rule)
    return model


def _init_recurrent(rnn: nn.RNNBase, rule: WeightRule) -> None:
    gates = {nn.GRU: 3, nn.LSTM: 4}.get(type(rnn), 1)
    for name, param in rnn.named_parameters():
        if name.startswith("weight_ih"):
            for chunk in param.chunk(gates, dim=0):
                rule(chunk)
        elif name.startswith("weight_hh"):
            for chunk in param.chunk(gates, dim=0):
                nn.init.orthogonal_(chunk)
        elif name.startswith("bias"):
            param.zero_()
