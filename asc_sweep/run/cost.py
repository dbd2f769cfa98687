"""What a model costs: parameters, multiply-accumulates per clip, inference latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def count_macs(model: nn.Module, run: Callable[[], object]) -> int:
    """Multiply-accumulates of conv, linear and GRU layers during one call of ``run``."""
    total = 0

    def conv_hook(
        module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        nonlocal total
        assert isinstance(module, (nn.Conv1d, nn.Conv2d))
        kernel = module.weight[0].numel()  # in_channels / groups x kernel size
        total += output.numel() * kernel

    def linear_hook(
        module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += output.numel() * module.in_features

    def gru_hook(module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
        nonlocal total
        assert isinstance(module, nn.GRU)
        x: Any = inputs[0]
        steps = int(x.data.shape[0]) if hasattr(x, "batch_sizes") else int(x.shape[0] * x.shape[1])
        per_step = 3 * module.hidden_size * (module.input_size + module.hidden_size)
        total += steps * per_step * (2 if module.bidirectional else 1)

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.GRU):
            handles.append(m.register_forward_hook(gru_hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total


def timed_calls(
    run: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 15
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``run`` after ``warmup`` untimed ones,
    synchronised on GPUs so that a call's queued kernels count in its time."""
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def median_latency_ms(
    run: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 15
) -> float:
    """Median wall time of ``run`` in ms after ``warmup`` calls (synchronised on GPUs)."""
    with torch.no_grad():
        return statistics.median(timed_calls(run, device, warmup, repeats)) * 1000
