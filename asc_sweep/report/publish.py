"""The report on the W&B dashboard: one run of job type ``report`` in the sweep's project.

Every table of the report is a ``wandb.Table``, every plot a ``wandb.Image``, the findings a
summary text, and ``report.html`` a file of the run, so the ablation tables sit next to the
runs they summarise. Offline (no API key) it is written like any offline run, to sync later.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from asc_sweep.report.findings import findings
from asc_sweep.report.render import sections
from asc_sweep.report.stats import ReportData


def table_key(heading: str) -> str:
    return "tables/" + "".join(c if c.isalnum() else "_" for c in heading.lower()).strip("_")


def publish(data: ReportData, html: Path, plots: list[Path], *, mode: str, project: str,
            entity: str | None = None, directory: Path | None = None) -> Any:  # fmt: skip
    """Log the report as a W&B run; returns the finished run's directory (offline) or URL."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    folder = directory or Path(os.environ.get("WANDB_DIR", "."))
    folder.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        mode=mode,  # type: ignore[arg-type]
        project=project,
        entity=entity,
        dir=str(folder),
        name=f"report-{data.sweep_id.rsplit('/', 1)[-1]}",
        job_type="report",
        group=f"report {data.sweep_id}",
        config={
            "sweep": data.sweep_id,
            "metric": data.metric,
            "rope": data.rope,
            "factors": data.factors,
        },
        reinit="create_new",
    )
    logged: dict[str, Any] = {}
    for heading, _, (head, rows), _ in sections(data):
        if rows:
            logged[table_key(heading)] = wandb.Table(
                columns=list(head), data=[list(r) for r in rows]
            )
    for plot in plots:
        logged[f"plots/{plot.stem}"] = wandb.Image(str(plot))
    run.log(logged)
    run.summary["findings"] = "\n".join(findings(data))
    copy = Path(run.dir) / "report.html"
    shutil.copyfile(html, copy)
    run.save(str(copy), base_path=run.dir, policy="now")
    where = run.url if mode == "online" else str(Path(run.dir).parent)
    run.finish()
    return where
