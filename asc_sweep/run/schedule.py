"""Learning-rate schedules as pure functions of the step: a multiplier of the peak rate."""

from __future__ import annotations

import math


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, kind: str) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based).

    Linear warm-up from 1/warmup to 1 over ``warmup_steps``, then ``cosine`` (to zero at
    ``total_steps``), ``step`` (x0.1 at 50% and 75% of the post-warm-up steps) or ``constant``.
    """
    if kind not in ("cosine", "step", "constant"):
        raise ValueError(f"unknown schedule {kind!r}; allowed: cosine, step, constant")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "step":
        return 0.01 if progress >= 0.75 else 0.1 if progress >= 0.5 else 1.0
    return 1.0
