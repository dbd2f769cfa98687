"""Fixtures: a store in a temporary folder, spec files, the CLI, real agent processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asc_sweep.backends import LocalBackend
from asc_sweep.cli import app

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "sweeps.db"


@pytest.fixture
def backend(store: Path) -> Iterator[LocalBackend]:
    b = LocalBackend(store)
    yield b
    b.close()


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli() -> Callable[..., object]:
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def agent_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def start_agent(
    store: Path, sweep_id: str, function: str, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """A real agent process, as a user starts one."""
    cmd = [
        sys.executable,
        "-m",
        "asc_sweep",
        "agent",
        sweep_id,
        "--store",
        str(store),
        "--function",
        f"runfns:{function}",
        "--poll-seconds",
        "0.1",
        *args,
    ]
    return subprocess.Popen(
        cmd, env=agent_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
