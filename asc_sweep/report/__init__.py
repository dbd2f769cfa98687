"""``asc-sweep report``: cross-fold tables, paired main effects, interactions, convergence and cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from asc_sweep.errors import AscSweepError
from asc_sweep.report.records import RunRecord, swept_factors
from asc_sweep.sweep.config import METRIC_NAMES

# The statistics and renderers import scipy (over a second): every agent process imports this
# package for RunRecord, so they load only when a report is made.
if TYPE_CHECKING:
    from asc_sweep.report.stats import ReportData


def __getattr__(name: str) -> Any:
    if name == "ReportData":
        from asc_sweep.report.stats import ReportData

        return ReportData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    runs_csv: Path
    summary_csv: Path
    effects_csv: Path
    latex: Path
    plots: list[Path]


def check_arguments(
    records: Sequence[RunRecord],
    *,
    sweep: str,
    metric: str,
    references: Mapping[str, Any],
    sampled: Sequence[str] = (),
) -> None:
    """Every report argument checked against the runs, before anything is written.

    Raises:
        AscSweepError: no runs yet, a metric the runs do not have, a reference that is not a
            swept factor, a reference for a knob sampled from a range (``sampled``, or more
            than ``MAX_LEVELS`` values: no level is compared), or a reference level the
            factor does not take (naming the levels).
    """
    from asc_sweep.report.stats import is_sampled, levels_of

    if not records:
        raise AscSweepError(f"sweep {sweep} has no runs yet; start agents first")
    known = {k for r in records for k, v in r.summary.items() if isinstance(v, (int, float))}
    if metric not in known and metric not in METRIC_NAMES:
        raise AscSweepError(
            f"--metric {metric!r}: runs have no such metric; allowed: {', '.join(sorted(known))}"
        )
    factors = swept_factors(records)
    for factor, level in references.items():
        if factor not in factors:
            raise AscSweepError(
                f"--reference {factor}: not a swept factor; swept: {', '.join(factors) or 'none'}"
            )
        levels = levels_of(records, factor)
        if is_sampled(records, factor, sampled):
            raise AscSweepError(
                f"--reference {factor}: {factor} is sampled from a range ({len(levels)} values), "
                "so no level of it is compared with another and it takes no reference"
            )
        if level not in levels:
            raise AscSweepError(
                f"--reference {factor}={level}: {factor} takes no such level; its levels: "
                f"{', '.join(str(v) for v in levels)}"
            )


def write_report(
    records: Sequence[RunRecord],
    out: Path,
    *,
    sweep_id: str,
    sweep_name: str | None = None,
    metric: str = "test/accuracy",
    references: Mapping[str, Any] | None = None,
    expected_folds: Sequence[Any] | None = None,
    rope: float = 0.01,
    include_stopped: bool = False,
    retried: Sequence[tuple[str, str]] = (),
    sampled: Sequence[str] = (),
) -> tuple[ReportData, ReportFiles]:
    """Analyse ``records`` and write every report file under ``out``; ``retried`` names the
    failed runs left out because their configurations ran again, each with its error;
    ``sampled`` the knobs the spec draws from a range (not compared level by level)."""
    from asc_sweep.report.render import (
        render_html,
        render_latex,
        render_markdown,
        write_effects_csv,
        write_runs_csv,
        write_summary_csv,
    )
    from asc_sweep.report.stats import analyse

    out.mkdir(parents=True, exist_ok=True)
    data = analyse(records, sweep_id=sweep_id, sweep_name=sweep_name, factors=swept_factors(records), metric=metric,
                   references=references, expected_folds=expected_folds, rope=rope,
                   include_stopped=include_stopped, sampled=sampled)  # fmt: skip
    data.retried = list(retried)
    from asc_sweep.report.plots import draw_plots  # matplotlib: seconds to import, so only here

    plots = draw_plots(data, out / "plots")
    files = ReportFiles(
        out / "report.md",
        out / "report.html",
        out / "runs.csv",
        out / "summary.csv",
        out / "effects.csv",
        out / "tables.tex",
        plots,
    )
    files.markdown.write_text(render_markdown(data, plots))
    files.html.write_text(render_html(data, plots))
    files.latex.write_text(render_latex(data))
    write_runs_csv(files.runs_csv, records)
    write_summary_csv(files.summary_csv, data)
    write_effects_csv(files.effects_csv, data)
    return data, files


SEARCH_ROWS = 20  # a search's best configurations shown in the terminal; the files hold all


def console_table(data: ReportData) -> Table:
    """The main table for the terminal: the report's metric per configuration (the files hold
    all; of a search over sampled knobs, the best ``SEARCH_ROWS``)."""
    from asc_sweep.report.render import against_fold, knob

    shown = data.cells[:SEARCH_ROWS] if data.sampled else data.cells
    title = f"sweep {data.sweep_id}: {data.metric} across folds (mean ± std)"
    if len(shown) < len(data.cells):
        title += f", the best {len(shown)} of {len(data.cells)} configurations"
    table = Table(title=title)
    for f in data.factors:
        table.add_column(f)
    relative = ["vs fold"] if data.fold_relative else []  # ordered against their folds
    for col in (data.metric, *relative, "n", "incomplete"):
        table.add_column(col, justify="right" if col != "incomplete" else "left")
    for c in shown:
        mean, std = c.mean(data.metric), c.std(data.metric)
        value = "-" if mean != mean else f"{mean:.3f} ± {std:.3f}"
        against = [against_fold(c)] if relative else []
        table.add_row(
            *(knob(c.params.get(f)) for f in data.factors),
            value,
            *against,
            str(c.n(data.metric)),
            "; ".join(c.missing),
        )
    return table


__all__ = [
    "ReportData",
    "ReportFiles",
    "RunRecord",
    "check_arguments",
    "console_table",
    "write_report",
]
