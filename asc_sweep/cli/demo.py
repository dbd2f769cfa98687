"""``asc-sweep demo``: synthetic scenes, a 32-run sweep, two agents, a cross-fold summary.

Sample rate (8 vs 16 kHz) x init (PyTorch default vs He normal) x architecture (the DCASE
2017 MLP vs the DCASE 2018 CNN) x 4 folds. The synthetic classes that differ only above
4 kHz make 8 kHz lose accuracy; the summary shows by how much. The spec is the same as
``sweeps/demo.yaml``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rich.console import Console

from asc_sweep.agent.launcher import Launcher, checked_agent_count, visible_gpus
from asc_sweep.backends.base import CreateOptions
from asc_sweep.backends.registry import create_sweep
from asc_sweep.cli.console import show_findings
from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.report import console_table, write_report
from asc_sweep.run.tracking import resolve_mode
from asc_sweep.sweep.spec import SweepSpec, validate_config

DEMO_DATA = Path("asc-sweep-data/synth")
DEMO_SPEC: dict[str, Any] = {
    "name": "demo",
    "description": "sample rate x init x architecture on synthetic scenes, 4 location-disjoint folds",
    "method": "grid",
    "metric": {"name": "val/accuracy", "goal": "maximize"},
    "parameters": {
        "dataset": {"value": "synth"},
        "data_root": {"value": str(DEMO_DATA)},
        "sample_rate": {"values": [8000, 16000]},
        "init": {"values": ["default", "he_normal"]},
        # The grid runs values in this order: the slower CNN first, so that the sweep ends
        # on short MLP runs and no agent waits long for the last one (benchmarks/scaling.py).
        "arch": {"values": ["dcase2018_cnn", "dcase2017_mlp"]},
        "fold": {"values": [1, 2, 3, 4]},
        "n_mels": {"value": 40},
        "epochs": {"value": 16},
        "lr": {"value": 0.003},
        "batch_size": {"value": 16},
        "crop_seconds": {"value": 1.0},
        "specaugment": {"value": False},
        "mixup": {"value": 0.0},
        "patience": {"value": 0},
        # The rest of the set-up, pinned: the demo isolates sample rate and init.
        "win_ms": {"value": 25.0},
        "hop_ms": {"value": 10.0},
        "weight_decay": {"value": 0.01},
        "warmup_epochs": {"value": 1},
        "selection": {"value": "best_accuracy"},
        "label_smoothing": {"value": 0.0},
        "gain_db": {"value": 0.0},
        "freq_shift": {"value": 0},
        "filter_db": {"value": 0.0},
    },
}
DEMO_SYNTH = SynthSpec(classes=8, clips_per_class=40, seconds=2.0, sample_rate=16000)


def quick_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The reduced demo (CI): two folds and three epochs of the same grid."""
    quick = copy.deepcopy(spec)
    quick["name"] = "demo-quick"
    quick["parameters"]["fold"] = {"values": [1, 2]}
    quick["parameters"]["epochs"] = {"value": 3}
    return quick


def run_demo(
    store: Path, data: Path, *, agents: int | None, quick: bool, tracking: str, console: Console
) -> int:
    """Synthesise the data if needed, register and run the sweep, print the summary.

    Agents are pinned round robin to every visible GPU; without ``agents``, 2, or one per GPU
    where there are more."""
    if agents is not None:
        checked_agent_count(agents)  # before anything is synthesised or registered
    synth = (
        SynthSpec(classes=8, clips_per_class=16, seconds=1.0, sample_rate=16000)
        if quick
        else DEMO_SYNTH
    )
    if not (data / "meta.csv").exists():
        console.print(f"synthesising {synth.classes * synth.clips_per_class} clips into {data}")
        generate(data, synth)
    spec = quick_spec(DEMO_SPEC) if quick else copy.deepcopy(DEMO_SPEC)
    spec["parameters"]["data_root"] = {"value": str(data)}
    assert not validate_config(spec), "the demo spec must validate"
    sweep = create_sweep(SweepSpec(spec, source="demo"), "local", CreateOptions(store=str(store)))
    gpus = visible_gpus() or None
    agents = agents or max(2, len(gpus or ()))
    on = f" on GPUs {','.join(gpus)}" if gpus else ""
    console.print(
        f"sweep {sweep.ref}: {sweep.total} runs with {agents} agents{on} ({sweep.location})"
    )
    code = Launcher(sweep, agents=agents, gpus=gpus, console=console, tracking=tracking).run()
    report, files = write_report(
        sweep.records(), Path("reports") / sweep.ref, sweep_id=sweep.ref, sweep_name=sweep.name
    )
    console.print(console_table(report))
    show_findings(console, report)
    console.print(f"full report (tables, paired tests, plots): {files.html}")
    if resolve_mode(tracking) == "offline":
        console.print(
            "W&B runs were saved offline under ./wandb; upload them with: wandb sync --sync-all"
        )
    console.print(f"next: asc-sweep status {sweep.ref}")
    return code
