"""The fault-injection soak (``benchmarks/soak.py``) at a small size: real training, real agent
processes, random kill -9 / SIGTERM / SIGINT, and nothing lost, duplicated or changed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def load_soak() -> object:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_sweep_survives_random_kills_and_ends_as_an_undisturbed_one(tmp_path: Path) -> None:
    soak = load_soak()
    result = soak.soak(folds=2, inits=2, rates=1, agents=3, events=10, epochs=8, seed=2,  # type: ignore[attr-defined]
                       work=tmp_path)  # fmt: skip
    assert sum(result.events.values()) >= 5, result  # the sweep may end before all 10
    assert result.finished == 4 and result.lost == 0 and result.duplicated == 0, result
    assert result.failed == 0 and result.broken_histories == 0, result
    assert result.mismatches == 0 and result.report_complete, result.problems
    assert result.restarts >= 1  # agents really died and came back
