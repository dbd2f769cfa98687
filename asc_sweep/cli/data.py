"""``asc-sweep data``: check a dataset, synthesise the demo scenes, build, list and prune the
audio caches."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from asc_sweep.cli.console import err, out, progress_bar, user_errors
from asc_sweep.errors import AscSweepError

data_app = typer.Typer(
    help="Datasets: check one, generate synthetic scenes, build, list and prune audio caches.",
    no_args_is_help=True,
)

DatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Dataset adapter (see DATASETS)")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, help="Parallel workers [default: from the CPU count]", show_default=False),
]


@data_app.command("check")
def check(
    root: Annotated[Path, typer.Argument(help="Dataset folder")],
    dataset: DatasetOption,
    skip_bad: Annotated[
        bool,
        typer.Option("--skip-bad", help="Write the bad clips to a skip list instead of failing"),
    ] = False,
    skip_list: Annotated[
        Path | None,
        typer.Option(
            help="Where --skip-bad writes [default: asc-sweep-skip-DATASET.txt]", show_default=False
        ),
    ] = None,
    workers: WorkersOption = None,
) -> None:
    """Validate the layout and every clip; print classes x folds, durations, rates and problems."""
    from asc_sweep.data import load_dataset
    from asc_sweep.data.check import check_dataset, write_skip_list

    with user_errors():
        index = load_dataset(dataset, root, strict=False)
        with progress_bar(f"checking {len(index.clips)} clips") as update:
            report = check_dataset(index, workers=workers, progress=update)

    out.print(
        f"[bold]{dataset}[/] at {root}: {len(index.clips)} clips, {len(index.classes)} classes, "
        f"{len(index.folds)} folds",
        highlight=False,
    )
    table = Table(title="test clips per class and fold")
    table.add_column("class")
    for fold in index.folds:
        table.add_column(f"fold {fold}", justify="right")
    for label, row in report.class_fold_counts().items():
        table.add_row(label, *(str(row[f]) for f in index.folds))
    out.print(table)
    if durations := report.durations():
        lo, mid, hi = durations
        out.print(f"durations: min {lo:.2f} s, median {mid:.2f} s, max {hi:.2f} s", highlight=False)
    rates = ", ".join(f"{r} Hz: {n}" for r, n in sorted(report.rates().items()))
    channels = ", ".join(f"{c}: {n}" for c, n in sorted(report.channels().items()))
    out.print(f"sample rates: {rates or '-'}; channels: {channels or '-'}", highlight=False)

    for problem in index.problems:
        out.print(f"[red]error[/]   {problem}", highlight=False)
    for clip in report.clips:
        for message in clip.errors:
            out.print(f"[red]error[/]   {clip.name}: {message}", highlight=False)
        for message in clip.warnings:
            out.print(f"[yellow]warning[/] {clip.name}: {message}", highlight=False)
    for problem in report.fold_problems:
        out.print(f"[red]error[/]   {problem}", highlight=False)

    n_bad = len(report.bad_clips) + len(index.problems)
    if not report.fatal:
        out.print(f"[green]ok[/]: every clip of {dataset} is usable", highlight=False)
        return
    if report.fold_problems:
        err.print(
            f"[red]error:[/] {root}: the folds cannot be trained and tested on as they are "
            f"({len(report.fold_problems)} problems listed above); fix the metadata's folds",
            highlight=False,
        )
    if n_bad and skip_bad:
        path = skip_list or Path(f"asc-sweep-skip-{dataset}.txt")
        write_skip_list(report, path)
        out.print(
            f"{n_bad} bad clips or rows written to {path}; runs leave them out with "
            f"`skip_list: {{value: {path.resolve()}}}` in the spec",
            highlight=False,
        )
    elif n_bad:
        err.print(
            f"[red]error:[/] {root}: {n_bad} clips or metadata rows cannot be used (listed "
            "above); fix them or rerun with --skip-bad",
            highlight=False,
        )
    if report.fold_problems or (n_bad and not skip_bad):
        raise typer.Exit(2)


@data_app.command("synth")
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write (csv layout)")],
    classes: Annotated[int, typer.Option(min=2, max=8, help="Scene classes")] = 8,
    clips_per_class: Annotated[int, typer.Option(min=8, help="Clips per class")] = 40,
    seconds: Annotated[float, typer.Option(min=0.5, max=60, help="Clip length")] = 2.0,
    sample_rate: Annotated[int, typer.Option(min=8000, max=96000, help="Hz")] = 32000,
    seed: Annotated[int, typer.Option(help="Everything follows from the seed")] = 0,
    realism: Annotated[
        str,
        typer.Option(
            help="easy: clean, balanced scenes (the demo's); field: location microphones, rooms "
            "and backgrounds, SNR spread and class imbalance, so that models overfit their "
            "training locations as on real recordings"
        ),
    ] = "easy",
    short_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of clips cut to an excerpt of 0.1 s up to --seconds, at a random "
            "offset, so that batches hold clips of several lengths as on UrbanSound8K",
        ),
    ] = 0.0,
    workers: WorkersOption = None,
) -> None:
    """Generate synthetic acoustic scenes with location-disjoint folds (the `synth` dataset)."""
    from asc_sweep.data.synth import SynthSpec, clip_count, generate

    with user_errors():
        try:
            spec = SynthSpec(
                classes, clips_per_class, seconds, sample_rate, seed, realism, short_share
            )
        except ValueError as exc:
            raise AscSweepError(f"--realism/--classes: {exc}") from None
        total = clip_count(spec)
        with progress_bar(f"synthesising {total} clips ({realism})") as update:
            meta = generate(out_dir, spec, workers=workers, progress=update)
    out.print(f"wrote {total} clips and {meta}", highlight=False)


@data_app.command("cache")
def cache(
    root: Annotated[Path, typer.Argument(help="Dataset folder")],
    dataset: DatasetOption,
    sample_rate: Annotated[
        list[int], typer.Option("--sample-rate", "-r", help="Hz; repeat for several")
    ],
    workers: WorkersOption = None,
) -> None:
    """Decode and resample a dataset once per sample rate, ahead of a sweep (optional)."""
    from asc_sweep.data import load_dataset
    from asc_sweep.data.cache import cache_root, open_cache
    from asc_sweep.sweep.config import knob_problems

    with user_errors():
        for rate in sample_rate:
            for problem in knob_problems("sample_rate", rate):
                raise AscSweepError(f"--sample-rate {rate}: {problem}")
        index = load_dataset(dataset, root)
        for rate in sample_rate:
            with progress_bar(f"{dataset} at {rate} Hz") as update:
                built = open_cache(index, rate, workers=workers, progress=update)
            out.print(
                f"{dataset} at {rate} Hz: {len(built)} clips in {built.directory}", highlight=False
            )
    err.print(f"caches live in {cache_root()} (set ASC_SWEEP_CACHE to move them)", highlight=False)


@data_app.command("caches")
def caches(
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove the stale caches (their dataset changed), damaged ones and what killed "
            "builds left",
        ),
    ] = False,
    unused_days: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="List only the caches no run has opened for this many days; with --prune, "
            "remove them too",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --prune: say what would go, remove nothing")
    ] = False,
) -> None:
    """List the audio caches, and prune the stale and the unused ones.

    Each cache's dataset, rate, clips, size, last use, and whether runs can still open it.
    Runs reading a cache that is removed read on."""
    from asc_sweep.data.cache import cache_root
    from asc_sweep.data.cache_admin import prunable, remove, scan

    root = cache_root()
    with user_errors():
        if dry_run and not prune:
            raise AscSweepError("--dry-run: only with --prune (listing removes nothing)")
        if root.exists() and not root.is_dir():
            raise AscSweepError(f"{root}: not a folder; ASC_SWEEP_CACHE names the caches' folder")
        entries, leftovers = scan(root)
    listed = [e for e in entries if unused_days is None or prunable(e, unused_days)]
    table = Table(title=f"audio caches in {root}")
    for name in ("dataset", "Hz", "clips", "size", "last used", "state", "dataset folder"):
        right = name in ("Hz", "clips", "size")  # the folder wraps, the rest never do
        table.add_column(
            name, justify="right" if right else "left", no_wrap=name != "dataset folder"
        )
    for e in listed:
        state = e.state if not e.stale else f"[yellow]{e.state}[/]"
        table.add_row(e.dataset, str(e.sample_rate), str(e.clips), _size(e.bytes),
                      _ago(e.unused_days()), state, str(e.source or "?"))  # fmt: skip
    if listed:
        out.print(table)
    for left in leftovers:
        out.print(f"{left.directory.name}: {left.why} ({_size(left.bytes)})", highlight=False)
    total = sum(e.bytes for e in entries) + sum(left.bytes for left in leftovers)
    out.print(f"{_count(len(entries), 'cache')} and {_count(len(leftovers), 'leftover')}, "
              f"{_size(total)}, in {root} (set ASC_SWEEP_CACHE to move them)", highlight=False)  # fmt: skip
    if not prune:
        return
    doomed = [(e.directory, e.bytes) for e in entries if prunable(e, unused_days)]
    doomed += [(left.directory, left.bytes) for left in leftovers]
    freed = gone = failed = 0
    for directory, size in doomed:
        try:
            if dry_run:
                out.print(f"would remove {directory.name} ({_size(size)})", highlight=False)
            elif remove(directory):
                out.print(f"removed {directory.name} ({_size(size)})", highlight=False)
            else:
                err.print(f"kept {directory.name}: a build of it is running", highlight=False)
                continue
        except OSError as exc:  # a read-only cache folder: say so, go on with the others
            err.print(f"[red]error:[/] {directory}: {exc.strerror or exc}", highlight=False)
            failed += 1
            continue
        freed, gone = freed + size, gone + 1
    verb = "would free" if dry_run else "freed"
    out.print(f"{verb} {_size(freed)} ({_count(gone, 'folder')})", highlight=False)
    if failed:
        raise typer.Exit(2)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _ago(days: float) -> str:
    return "today" if days < 1 else f"{_count(round(days), 'day')} ago"
