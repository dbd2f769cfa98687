"""Sweep backends: where sweeps, runs and their history live, and who hands out configurations."""

from asc_sweep.backends.base import (
    RUN_STATES,
    TERMINAL_STATES,
    Backend,
    Claim,
    Run,
    Sweep,
    SweepCounts,
)
from asc_sweep.backends.local import LocalBackend, default_store_path

__all__ = [
    "RUN_STATES",
    "TERMINAL_STATES",
    "Backend",
    "Claim",
    "LocalBackend",
    "Run",
    "Sweep",
    "SweepCounts",
    "default_store_path",
]
