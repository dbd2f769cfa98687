"""The ``asc-sweep`` command line. Commands parse their options and delegate; nothing else."""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.table import Table

from asc_sweep import __version__
from asc_sweep.cli.console import epoch_progress, err, out, show_findings, user_errors
from asc_sweep.cli.data import data_app
from asc_sweep.cli.store import store_app
from asc_sweep.errors import AscSweepError, RunFailed
from asc_sweep.sweep.environment import describe

if TYPE_CHECKING:
    from asc_sweep.backends.base import Controller

app = typer.Typer(
    name="asc-sweep",
    help="Ablation studies for acoustic scene classification: register a YAML sweep, run agents, "
    "read cross-fold tables.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # a W&B key may be among the locals
    add_completion=False,
)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="ASC_SWEEP_STORE",
        help="Sweep store: an SQLite file, or postgresql://USER@HOST:PORT/DB shared by many "
        "hosts [default: $ASC_SWEEP_STORE, else ./asc-sweep.db]",
        show_default=False,
    ),
]
SweepArg = Annotated[
    str | None,
    typer.Argument(
        help="Sweep id, or ENTITY/PROJECT/SWEEP_ID for a W&B sweep "
        "[default: the most recent sweep in the store]",
        show_default=False,
    ),
]
TrackingOption = Annotated[
    str,
    typer.Option(
        help="W&B logging: auto (online with an API key, else offline), online, offline, off",
    ),
]
FunctionOption = Annotated[
    str | None,
    typer.Option(
        "--function",
        help="Run function as package.module:callable, called with (params, context) "
        "[default: the built-in trainer]",
        show_default=False,
    ),
]


def _open(sweep: str | None, store: str | None) -> Controller:
    """The controller of the sweep the user named (any backend)."""
    from asc_sweep.backends.registry import open_sweep

    return open_sweep(sweep, store)


def _version(value: bool) -> None:
    if value:
        out.print(f"asc-sweep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Ablation studies for acoustic scene classification."""


app.add_typer(data_app, name="data")
app.add_typer(store_app, name="store")


@app.command()
def create(
    spec: Annotated[Path, typer.Argument(help="YAML sweep spec (a W&B sweep config)")],
    store: StoreOption = None,
    lease_seconds: Annotated[
        float,
        typer.Option(
            min=1,
            max=7 * 24 * 3600,
            help="A run whose agent sends no heartbeat for this long goes back to the queue "
            "(seconds, at most a week)",
        ),
    ] = 60.0,
    max_attempts: Annotated[
        int,
        typer.Option(
            min=1,
            max=1000,
            help="Times a run may be lost with its agent before it is marked failed",
        ),
    ] = 3,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=2**31 - 1,
            help="Seed for random and bayes suggestions [default: random]",
            show_default=False,
        ),
    ] = None,
    backend_name: Annotated[
        str,
        typer.Option(
            "--backend",
            envvar="ASC_SWEEP_BACKEND",
            help="local (a store of asc-sweep's own: an SQLite file, or PostgreSQL when --store "
            "is a postgresql:// URL), postgres, or wandb (W&B cloud or W&B Server is the "
            "controller)",
        ),
    ] = "local",
    project: Annotated[
        str, typer.Option(envvar="WANDB_PROJECT", help="W&B project (--backend wandb)")
    ] = "asc-sweep",
    entity: Annotated[
        str | None,
        typer.Option(
            envvar="WANDB_ENTITY",
            help="W&B entity, user or team (--backend wandb) [default: your default entity]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Validate a sweep spec and register it; prints the sweep id (ENTITY/PROJECT/ID on W&B)."""
    from asc_sweep.backends.base import CreateOptions
    from asc_sweep.backends.registry import BACKENDS, create_sweep
    from asc_sweep.sweep.engine import pooled_by_hyperband
    from asc_sweep.sweep.spec import load_spec

    with user_errors():
        if backend_name not in BACKENDS:  # before reading the spec
            raise AscSweepError(f"--backend {backend_name!r}: allowed: {', '.join(BACKENDS)}")
        options = CreateOptions(
            store=store,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            seed=seed,
            project=project,
            entity=entity,
        )
        loaded = load_spec(spec)
        controller = create_sweep(loaded, backend_name, options)
    size = "" if controller.total is None else f", {controller.total} runs"
    err.print(
        f"created sweep {controller.ref} ({controller.method}{size}) in {controller.location}",
        highlight=False,
    )
    if backend_name == "wandb" and (pooled := pooled_by_hyperband(loaded.config)):
        err.print(
            f"note: W&B's controller draws hyperband's thresholds over every run, whatever its "
            f"{' and '.join(pooled)}: a run on a hard fold can be stopped for its fold (the "
            "local and PostgreSQL stores judge each run within its fold and seed); the "
            "report lists the stopped runs with their folds",
            highlight=False,
        )
    err.print(f"start agents with: {controller.start_hint()}", highlight=False)
    print(controller.ref)


@app.command()
def agent(
    sweep_id: SweepArg = None,
    store: StoreOption = None,
    count: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop after this many runs [default: until the sweep is done]",
            show_default=False,
        ),
    ] = None,
    function: FunctionOption = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, max=1024, help="CPU threads for the run's numeric libraries", show_default=False
        ),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(min=0.05, help="Wait between claims while other runs are in flight")
    ] = 1.0,
    tracking: TrackingOption = "auto",
) -> None:
    """Run configurations of a sweep in this process until the sweep is done."""
    from asc_sweep.agent import run_agent
    from asc_sweep.agent.agent import set_threads

    with user_errors():
        mode = _tracking(tracking)
        set_threads(threads)
        controller = _open(sweep_id, store)
        try:
            stats = run_agent(
                controller,
                function=function,
                count=count,
                poll_seconds=poll_seconds,
                tracking=mode,
                console=err,
            )
        finally:
            controller.close()
    if stats is None:
        err.print(f"agent done: sweep {controller.ref} has no more runs for it", highlight=False)
        return
    err.print(
        f"agent done: {stats.finished} finished, {stats.stopped} stopped by the controller, "
        f"{stats.failed} failed, {stats.requeued} back in the queue",
        highlight=False,
    )


@app.command(name="wandb-run", hidden=True)
def wandb_run(
    args_json: Annotated[Path, typer.Argument(help="The parameters W&B's agent wrote")],
) -> None:
    """One configuration of a W&B sweep: the command W&B's agent runs (not for direct use)."""
    from asc_sweep.agent.wandb_run import run_configuration

    with user_errors():
        run_configuration(args_json)


def _tracking(mode: str) -> str:
    from asc_sweep.run.tracking import TRACKING_MODES

    if mode not in TRACKING_MODES:
        raise AscSweepError(f"--tracking {mode!r}: allowed: {', '.join(TRACKING_MODES)}")
    return mode


def _parse_sets(sets: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are YAML scalars (``16000``, ``true``, ``null``, ``he_normal``)."""
    import yaml

    values: dict[str, Any] = {}
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AscSweepError(f"--set {item!r}: write key=value, e.g. --set sample_rate=16000")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise AscSweepError(f"--set {item!r}: {raw!r} is not a value") from None
    return values


@app.command()
def train(
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help="A knob, key=value; repeat (see RunConfig)", show_default=False
        ),
    ] = None,
    tracking: TrackingOption = "auto",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the full result as JSON", show_default=False)
    ] = None,
) -> None:
    """Train and evaluate one configuration outside any sweep."""
    import json as jsonlib

    from asc_sweep.run.tracking import make_tracker
    from asc_sweep.run.train import train_and_evaluate
    from asc_sweep.sweep.config import RunConfig

    with user_errors():
        config = RunConfig.from_dict(_parse_sets(sets or []))
        tracker = make_tracker(_tracking(tracking))
        try:
            with epoch_progress(tracker, config.epochs) as shown:
                result = train_and_evaluate(config, shown)
        except RuntimeError as exc:
            raise RunFailed(f"training failed: {exc}") from None
    table = Table(
        title=f"{config.arch}, {config.init} init, {result.config['sample_rate']} Hz, "
        f"fold {config.fold}, recipe {config.recipe}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.summary().items():
        if isinstance(value, float) and not key.startswith("test/accuracy/"):
            table.add_row(key, f"{value:.4g}")
    out.print(table)
    if out_file is not None:
        out_file.write_text(jsonlib.dumps(result.to_dict(), indent=2, default=str))
        err.print(f"result written to {out_file}", highlight=False)


@app.command()
def demo(
    store: StoreOption = None,
    data: Annotated[
        Path, typer.Option(help="Where the synthetic scenes are (written if missing)")
    ] = Path("asc-sweep-data/synth"),
    agents: Annotated[
        int | None,
        typer.Option(
            "--agents",
            "-n",
            min=1,
            help="Agent processes [default: 2, or one per visible GPU where there are more]",
            show_default=False,
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="The reduced demo: 2 folds, 3 epochs, smaller data")
    ] = False,
    tracking: TrackingOption = "auto",
) -> None:
    """Synthesise scenes, run the demo sweep with live progress, print the cross-fold summary.

    The demo sweep is sample rate x init x architecture x fold (sweeps/demo.yaml)."""
    from asc_sweep.backends import default_store_path
    from asc_sweep.cli.demo import run_demo

    with user_errors():
        code = run_demo(
            Path(store) if store else default_store_path(),
            data,
            agents=agents,
            quick=quick,
            tracking=_tracking(tracking),
            console=err,
        )
    raise typer.Exit(code)


def _parse_gpus(gpus: str | None) -> list[str] | None:
    if gpus is None:
        return None
    from asc_sweep.agent.launcher import visible_gpus

    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if not ids or not all(g.isascii() and g.isdigit() for g in ids):
        raise AscSweepError(f"--gpus {gpus!r}: give GPU indices separated by commas, e.g. 0,1,2")
    visible = visible_gpus()
    if visible and (hidden := [g for g in ids if g not in visible]):
        raise AscSweepError(
            f"--gpus {gpus!r}: GPU {hidden[0]} is not visible on this host; visible: "
            f"{','.join(visible)}"
        )
    return ids


@app.command()
def launch(
    sweep_id: SweepArg = None,
    store: StoreOption = None,
    agents: Annotated[
        int | None,
        typer.Option(
            "--agents",
            "-n",
            min=1,
            help="Agent processes to run on this host [default: one per GPU; without GPUs, one "
            "per CPU core, at most 4]",
            show_default=False,
        ),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            help="GPU indices, e.g. 0,1: agents are pinned round robin (several per GPU allowed) "
            "[default: every visible GPU]",
            show_default=False,
        ),
    ] = None,
    agents_per_gpu: Annotated[
        int | None,
        typer.Option(
            "--agents-per-gpu",
            min=1,
            help="Agents sharing each GPU (small models leave room for several)",
            show_default=False,
        ),
    ] = None,
    function: FunctionOption = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="CPU threads per agent [default: CPU cores / agents]",
            show_default=False,
        ),
    ] = None,
    max_restarts: Annotated[int, typer.Option(min=0, help="Restarts of an agent that dies")] = 3,
    tracking: TrackingOption = "auto",
) -> None:
    """Start N agents on this host, restart those that die, show progress; exit when the sweep is done."""
    from asc_sweep.agent.launcher import Launcher, plan_agents

    with user_errors():
        mode = _tracking(tracking)
        count, gpu_ids = plan_agents(agents, _parse_gpus(gpus), agents_per_gpu)
        controller = _open(sweep_id, store)
        controller.check_agents(mode)
        launcher = Launcher(
            controller,
            agents=count,
            gpus=gpu_ids,
            function=function,
            threads=threads,
            max_restarts=max_restarts,
            console=err,
            tracking=mode,
        )
        code = launcher.run()
    raise typer.Exit(code)


@app.command()
def status(
    sweep_id: SweepArg = None,
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")] = False,
) -> None:
    """How many runs of a sweep are pending, running, finished, stopped (by the controller) or failed."""
    with user_errors():
        controller = _open(sweep_id, store)
        counts, total, state = controller.counts(), controller.total, controller.state()
        failed = controller.failures()
        mixed = controller.environments()
    columns = ("pending", "running", "finished", "stopped", "failed")
    if as_json:
        print(
            json.dumps(
                {
                    "id": controller.ref,
                    "name": controller.name,
                    "method": controller.method,
                    "state": state,
                    "total": total,
                    "created": counts.created,
                    **{s: counts[s] for s in columns},
                    "retried": counts.retried,
                    **({"environments": mixed} if mixed is not None else {}),
                }
            )
        )
        return
    title = f"{controller.label} {controller.ref}" + (
        f" ({controller.name})" if controller.name else ""
    )
    table = Table(title=title)
    for key in ("method", "state", "total", *columns):
        table.add_column(key, justify="right")
    table.add_row(
        controller.method,
        state,
        "unbounded" if total is None else str(total),
        str(counts.outstanding(total)),
        *(str(counts[s]) for s in columns[1:]),
    )
    out.print(table)
    if mixed:
        out.print(
            f"the runs so far ran in more than one environment: {describe(mixed)}; "
            f"`asc-sweep report {controller.ref}` says which comparisons that touches",
            highlight=False,
        )
    for failure in failed:
        out.print(f"[red]{failure.run}[/] failed: {failure.error}", highlight=False)
    if failed:
        out.print(f"queue them again: asc-sweep retry {controller.ref}", highlight=False)
    if counts.retried:
        out.print(
            f"{counts.retried} failed {'run was' if counts.retried == 1 else 'runs were'} "
            "retried: kept on record, left out of the counts above and of the report",
            highlight=False,
        )


@app.command()
def retry(
    sweep_id: SweepArg = None,
    runs: Annotated[
        list[str] | None,
        typer.Option(
            "--run",
            help="Only this failed run (its name, e.g. abc123-0007, or number); repeatable",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Queue the failed runs of a sweep again: new runs with the same configurations.

    For failures that may not recur (a GPU out of memory while another agent held it, a host
    lost more often than --max-attempts allows). Each new run resumes from the failed
    attempt's last checkpoint where it starts on the same host. The failed runs stay on
    record; the report and `status` count the new runs instead."""
    with user_errors():
        controller = _open(sweep_id, store)
        queued = controller.retry(runs or None)
    if not queued:
        err.print(f"sweep {controller.ref}: no failed runs to retry", highlight=False)
        return
    runs_word = "run" if len(queued) == 1 else "runs"
    out.print(f"queued {len(queued)} {runs_word} again: {', '.join(queued)}", highlight=False)
    err.print(f"next: {controller.start_hint()}", highlight=False)


@app.command()
def report(
    sweep_id: SweepArg = None,
    store: StoreOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder to write [default: reports/SWEEP_ID]", show_default=False
        ),
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric of the tables and tests")] = "test/accuracy",
    reference: Annotated[
        list[str] | None,
        typer.Option(
            help="Reference level of a factor, e.g. init=default (repeatable) [default: first level]",
            show_default=False,
        ),
    ] = None,
    wandb_sweep: Annotated[
        str | None,
        typer.Option(
            help="Read runs from W&B instead: ENTITY/PROJECT/SWEEP_ID", show_default=False
        ),
    ] = None,
    rope: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Region of practical equivalence: differences within ±ROPE (in the metric's "
            "units) count as practically equal; the report says so from P = 0.95",
        ),
    ] = 0.01,
    include_stopped: Annotated[
        bool,
        typer.Option(
            "--include-stopped",
            help="Count runs a controller stopped early (hyperband) in means and tests",
        ),
    ] = False,
    to_wandb: Annotated[
        bool | None,
        typer.Option(
            "--to-wandb/--no-to-wandb",
            help="Also log the report to W&B as a run of job type `report` (tables, plots, "
            "the HTML) [default: on for W&B sweeps, off for local ones]",
            show_default=False,
        ),
    ] = None,
    tracking: TrackingOption = "auto",
) -> None:
    """Cross-fold tables, paired main effects, interactions, convergence and cost of a sweep.

    Writes report.md, report.html, runs.csv, summary.csv, effects.csv, tables.tex and plots/."""
    from asc_sweep.report import check_arguments, console_table, write_report

    with user_errors():
        references = _parse_sets(reference or [])
        controller = _open(wandb_sweep or sweep_id, store)
        records = controller.records()
        sampled = controller.sampled_knobs()
        check_arguments(records, sweep=controller.ref, metric=metric, references=references,
                        sampled=sampled)  # fmt: skip
        target = out_dir or Path("reports") / controller.key
        data, files = write_report(
            records,
            target,
            sweep_id=controller.ref,
            sweep_name=controller.name,
            metric=metric,
            references=references,
            expected_folds=controller.expected_folds(),
            sampled=sampled,
            rope=rope,
            retried=[(f.run, f.error) for f in controller.retried_failures()],
            include_stopped=include_stopped,
        )
        if to_wandb if to_wandb is not None else controller.label == "W&B sweep":
            _publish(controller, data, files, _tracking(tracking))
    out.print(console_table(data))
    show_findings(out, data)
    err.print(
        f"report written to {files.markdown.parent}: report.md, report.html, runs.csv, summary.csv, effects.csv, tables.tex, "
        f"{len(files.plots)} plots",
        highlight=False,
    )


def _publish(controller: Controller, data: Any, files: Any, tracking: str) -> None:
    """Log the report to W&B: the W&B sweep's own project, else $WANDB_PROJECT or asc-sweep."""
    from asc_sweep.report.publish import publish
    from asc_sweep.run.tracking import resolve_mode

    mode = resolve_mode(tracking)
    if mode == "off":
        raise AscSweepError("--to-wandb with --tracking off: use online, offline or auto")
    entity, project = controller.wandb_project()
    where = publish(data, files.html, files.plots, mode=mode, project=project, entity=entity)
    err.print(f"report logged to W&B: {where}", highlight=False)
    if mode == "offline":
        err.print(f"upload it with: wandb sync {where}", highlight=False)


@app.command(name="list")
def list_sweeps(store: StoreOption = None) -> None:
    """Every sweep in the store, oldest first."""
    from asc_sweep.backends.registry import open_store

    with user_errors():
        backend = open_store(store)
        sweeps = backend.list_sweeps()
        if not sweeps:
            err.print(
                f"no sweeps in {backend.location}; register one with `asc-sweep create SPEC`",
                highlight=False,
            )
            return
        table = Table()
        for col in ("id", "name", "method", "state", "created", "finished", "total"):
            table.add_column(col)
        for s in sweeps:
            counts = backend.counts(s.id)
            table.add_row(
                s.id,
                s.name or "",
                s.method,
                s.state,
                time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created_at)),
                str(counts["finished"] + counts["stopped"]),
                "-" if s.total is None else str(s.total),
            )
    out.print(table)


@app.command()
def recipes(
    name: Annotated[
        str | None, typer.Argument(help="A recipe to show in full (knobs, source, notes)")
    ] = None,
) -> None:
    """The training recipes: `recipe: NAME` in a spec sets the defaults of every other knob."""
    from asc_sweep.sweep.recipes import LEGACY, MODERN, recipe_for

    if name is None:
        table = Table()
        for col in ("recipe", "arch", "source", "published"):
            table.add_column(col, overflow="fold")
        for r in (MODERN, *LEGACY):
            table.add_row(r.name, str(r.knobs["arch"]), r.source, r.published or "-")
        out.print(table)
        out.print("recipe: paper picks the recipe of the run's arch; knobs set in a spec win")
        return
    with user_errors():
        try:
            recipe = recipe_for(name, None)
        except KeyError as exc:
            raise AscSweepError(f"recipes: {exc.args[0]}") from None
    out.print(f"[bold]{recipe.name}[/]: {recipe.source}", highlight=False)
    if recipe.published:
        out.print(f"published: {recipe.published}", highlight=False)
    for note in recipe.notes:
        out.print(f"- {note}", highlight=False)
    table = Table("knob", "value")
    for key, value in recipe.knobs.items():
        table.add_row(
            key,
            "null" if value is None else f"{value:g}" if isinstance(value, float) else str(value),
        )
    out.print(table)


def main() -> None:
    """Entry point of the ``asc-sweep`` script."""
    try:
        app(prog_name="asc-sweep")
    except SystemExit as done:
        if "torch" not in sys.modules:
            raise
        _leave(done.code)


def _leave(code: str | int | None) -> NoReturn:
    """Exit a process that loaded torch without the interpreter's final teardown.

    Tearing down torch's modules takes about a second (0.8-1.3 s here), paid by every agent
    at the end of a sweep and by every run of a process-per-run sweep (`wandb-run`, `train`);
    the exit handlers (W&B's, logging's) still run, and every store write is committed by
    then. The same exit code and message as ``sys.exit(code)``.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
