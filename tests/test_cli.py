"""The CLI as a user meets it: help, ids defaulting to the latest sweep, status, list."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asc_sweep.backends import LocalBackend

from .conftest import run_out

GRID = "method: grid\nname: folds\nparameters:\n  fold: {values: [1, 2, 3, 4]}\n"


def test_help_lists_the_commands(cli: Callable[..., Any]) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("create", "agent", "launch", "status", "list"):
        assert command in result.stdout


def test_every_command_lists_a_one_line_summary() -> None:
    """A command's first help paragraph is its line in ``--help``'s list, where a line break
    in the docstring would show as a break mid-sentence."""
    import typer.main

    from asc_sweep.cli import app

    def summaries(group: Any, path: str) -> list[tuple[str, str]]:
        found = []
        for name, command in group.commands.items():
            first = (command.help or "").split("\n\n")[0]
            found.append((f"{path} {name}", first))
            if hasattr(command, "commands"):
                found += summaries(command, f"{path} {name}")
        return found

    listed = summaries(typer.main.get_command(app), "asc-sweep")
    assert len(listed) > 15
    assert [(name, first) for name, first in listed if "\n" in first.strip()] == []


def test_status_and_agent_default_to_the_latest_sweep(
    cli: Callable[..., Any], write_spec: Callable[..., Path], store: Path
) -> None:
    cli("create", write_spec(GRID), "--store", store)
    latest = cli(
        "create", write_spec(GRID.replace("folds", "latest")), "--store", store
    ).stdout.strip()
    status = json.loads(cli("status", "--store", store, "--json").stdout)
    assert status["id"] == latest and status["name"] == "latest"
    assert (status["total"], status["pending"], status["finished"]) == (4, 4, 0)

    with LocalBackend(store) as backend:
        claim = backend.claim(latest, "a")
        assert claim.run and claim.token
        backend.fail(claim.run.id, claim.token, "Traceback...\nRuntimeError: out of memory")
    table = cli("status", "--store", store)
    assert table.exit_code == 0
    assert f"{latest}-0001 failed: RuntimeError: out of memory" in table.stdout


def test_status_says_when_the_runs_so_far_ran_in_different_environments(
    cli: Callable[..., Any], write_spec: Callable[..., Path], store: Path
) -> None:
    """Agents on two kinds of host (one trains in bf16, one in float32): status says so while
    the sweep runs, before the report; on one kind of host it says nothing."""
    sweep = cli("create", write_spec(GRID), "--store", store).stdout.strip()
    with LocalBackend(store) as backend:
        for precision in ("float32", "float32", "bfloat16"):
            claim = backend.claim(sweep, "a")
            assert claim.run and claim.token
            environment = {"precision": precision, "packages": {"torch": "2.14.1"}}
            backend.finish(claim.run.id, claim.token, {"environment": environment})
            if precision == "float32":
                uniform = cli("status", "--store", store)
                assert "environment" not in uniform.stdout
    table = cli("status", "--store", store)
    assert (
        "the runs so far ran in more than one environment: precision float32 (2 runs), "
        "bfloat16 (1 run);" in " ".join(table.stdout.split())
    )
    status = json.loads(cli("status", "--store", store, "--json").stdout)
    assert status["environments"] == {"precision": {"float32": 2, "bfloat16": 1}}


def test_store_from_environment(
    cli: Callable[..., Any], write_spec: Callable[..., Path], store: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("ASC_SWEEP_STORE", str(store))
    sweep_id = cli("create", write_spec(GRID)).stdout.strip()
    listing = cli("list")
    assert listing.exit_code == 0 and sweep_id in listing.stdout and "folds" in listing.stdout


def test_status_of_unknown_sweep_exits_2(cli: Callable[..., Any], store: Path) -> None:
    result = cli("status", "abcdef", "--store", store)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {store}: no sweep 'abcdef'; it holds no sweeps"


def test_launch_rejects_bad_gpu_list(
    cli: Callable[..., Any], write_spec: Callable[..., Path], store: Path
) -> None:
    cli("create", write_spec(GRID), "--store", store)
    result = cli("launch", "--store", store, "--gpus", "0,a")
    assert result.exit_code == 2
    assert "--gpus '0,a': give GPU indices" in result.stderr


def test_missing_data_stops_the_agent_and_keeps_the_sweep(
    cli: Callable[..., Any], write_spec: Callable[..., Path], store: Path, tmp_path: Path
) -> None:
    """A typo in data_root must not turn every run of a sweep into a final 'failed'."""
    spec = "method: grid\nparameters:\n  data_root: {value: %s}\n  fold: {values: [1, 2]}\n" % (
        tmp_path / "nowhere"
    )
    cli("create", write_spec(spec), "--store", store)
    result = cli("agent", "--store", store, "--tracking", "off")
    assert result.exit_code == 2, result.output
    assert f"error: {tmp_path / 'nowhere'}: dataset folder not found" in result.stderr
    with LocalBackend(store) as backend:
        runs = backend.runs(backend.get_sweep().id)
    assert [(r.state, r.attempts) for r in runs] == [("pending", 0), ("pending", 0)]
    assert "dataset folder not found" in (runs[0].error or "")


def test_a_process_that_loaded_torch_leaves_fast_with_its_exit_code_and_output(
    tmp_path: Path,
) -> None:
    """``asc-sweep`` skips the interpreter's teardown once torch is loaded (about a second a
    process): the exit code, the message and everything printed still come out, and the
    exit handlers run."""
    import subprocess
    import sys

    from .conftest import agent_env

    def run(*code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "\n".join(code)], env=agent_env(), capture_output=True,
            text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip

    absent = tmp_path / "absent"
    missing = run(
        "import sys; sys.argv = ['asc-sweep', 'train', '--set', 'dataset=synth',",
        f"    '--set', 'data_root={absent}']",
        "from asc_sweep.cli import main; main()",
    )
    assert missing.returncode == 2, missing.stderr
    assert "dataset folder not found" in missing.stderr and "Traceback" not in missing.stderr
    handlers = run(
        "import atexit, sys, torch",
        "atexit.register(lambda: print('exit handler ran', flush=True))",
        "sys.argv = ['asc-sweep', '--version']",
        "print('before', end='')  # unflushed",
        "from asc_sweep.cli import main; main()",
    )
    assert handlers.returncode == 0, handlers.stderr
    assert handlers.stdout.startswith("before") and "asc-sweep" in handlers.stdout
    assert "exit handler ran" in handlers.stdout


def test_retry_queues_failed_runs_again_and_the_report_counts_the_new_runs(
    cli: Callable[..., Any], write_spec: Callable[..., Path], store: Path
) -> None:
    from asc_sweep.backends.registry import open_sweep

    sweep_id = cli("create", write_spec(GRID), "--store", store).stdout.strip()
    with LocalBackend(store) as backend:
        run_out(backend, sweep_id, fail={2, 3}, error="Traceback...\nOSError: disk full",
                summary={"test/accuracy": 0.5})  # fmt: skip
    table = cli("status", "--store", store)
    assert f"queue them again: asc-sweep retry {sweep_id}" in table.stdout

    named = cli("retry", "--store", store, "--run", f"{sweep_id}-0003")
    assert named.exit_code == 0, named.output
    assert named.stdout.strip() == f"queued 1 run again: {sweep_id}-0005"
    refused = cli("retry", "--store", store, "--run", "1")
    assert refused.exit_code == 2
    assert refused.stderr.strip() == (
        f"error: run {sweep_id}-0001 is finished: only failed runs not yet retried can be "
        "retried; nothing was queued"
    )
    status = json.loads(cli("status", "--store", store, "--json").stdout)
    assert (status["pending"], status["finished"], status["failed"], status["retried"]) == (
        1, 2, 1, 1,
    )  # fmt: skip
    assert status["created"] == 4 and status["state"] == "running"

    everything = cli("retry", "--store", store)  # the rest: run 2
    assert everything.stdout.strip() == f"queued 1 run again: {sweep_id}-0006"
    assert "no failed runs to retry" in cli("retry", "--store", store).stderr
    with LocalBackend(store) as backend:
        run_out(backend, sweep_id, fail=set(), summary={"test/accuracy": 0.75})
    table = cli("status", "--store", store)
    assert "failed:" not in table.stdout
    assert "2 failed runs were retried: kept on record" in table.stdout
    controller = open_sweep(sweep_id, str(store))
    try:
        records = controller.records()
    finally:
        controller.close()
    assert sorted((r.params["fold"], r.state) for r in records) == [
        (1, "finished"), (2, "finished"), (3, "finished"), (4, "finished"),
    ]  # fmt: skip
    report = cli("report", "--store", store, "--out", store.parent / "report")
    assert report.exit_code == 0, report.output
    markdown = (store.parent / "report" / "report.md").read_text()
    assert "4 runs, 4 finished" in markdown
    assert (
        "2 failed runs were run again (`asc-sweep retry`), and the new runs count in their place "
        f"({sweep_id}-0002: OSError: disk full; {sweep_id}-0003: OSError: disk full)."
    ) in markdown
