"""The cross-fold summary a sweep prints when it ends: one row per configuration."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from .backends import Run

CELL_KEYS = ("fold", "seed", "data_root")


@dataclass(frozen=True)
class CellSummary:
    """A configuration without its fold and seed, over its folds."""

    params: dict[str, object]
    values: list[float]
    folds: list[int]
    missing: list[str]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def summarise(runs: Sequence[Run], metric: str = "test/accuracy") -> list[CellSummary]:
    """Group runs by configuration (all knobs but fold and seed); failed or unfinished folds
    are listed as missing, never averaged."""
    cells: dict[tuple[tuple[str, str], ...], list[Run]] = {}
    for run in runs:
        key = tuple(sorted((k, repr(v)) for k, v in run.params.items() if k not in CELL_KEYS))
        cells.setdefault(key, []).append(run)
    out = []
    for members in cells.values():
        done = [
            r
            for r in members
            if r.state in ("finished", "stopped") and r.summary and metric in r.summary
        ]
        missing = [f"fold {r.params.get('fold', '?')} {r.state}" for r in members if r not in done]
        out.append(
            CellSummary(
                params={k: v for k, v in members[0].params.items() if k not in CELL_KEYS},
                values=[float(r.summary[metric]) for r in done if r.summary],
                folds=sorted(int(str(r.params.get("fold", 0))) for r in done),
                missing=missing,
            )
        )
    return sorted(out, key=lambda c: [_order(v) for v in c.params.values()])


def _order(value: object) -> tuple[int, float, str]:
    """Numbers in numeric order (8000 before 16000), everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def summary_table(cells: Sequence[CellSummary], metric: str = "test/accuracy") -> Table:
    swept = [
        k for k in (cells[0].params if cells else {}) if len({repr(c.params[k]) for c in cells}) > 1
    ]
    table = Table(title=f"{metric} across folds (mean ± std)")
    for k in swept:
        table.add_column(k)
    table.add_column(metric, justify="right")
    table.add_column("n", justify="right")
    table.add_column("missing")
    for c in cells:
        value = f"{c.mean:.3f} ± {c.std:.3f}" if c.values else "-"
        table.add_row(
            *(str(c.params[k]) for k in swept), value, str(len(c.values)), ", ".join(c.missing)
        )
    return table
