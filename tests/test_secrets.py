"""Secrets never leak: with a W&B API key and a PostgreSQL password planted, a whole sweep
(with a failing run), its report and the container's entry point write neither to any file,
any stored row or any process command line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, agent_env

API_KEY = "f00dcafe" * 5  # planted; a W&B key is 40 hex characters
SPEC = """\
method: grid
metric: {{name: val/accuracy, goal: maximize}}
parameters:
  dataset: {{value: synth}}
  data_root: {{value: "{root}"}}
  seed: {{values: [0, 1]}}
  arch: {{value: dcase2017_mlp}}
  n_mels: {{value: 40}}
  epochs: {{value: 1}}
  crop_seconds: {{value: 0.5}}
  fold: {{values: [1, 2]}}
"""


class CommandLines:
    """Reads every process's command line on the machine, every 20 ms, in a thread."""

    def __init__(self, secrets: list[bytes]) -> None:
        self.secrets, self.seen, self.hits = secrets, 0, set[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(0.02):
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                self.seen += 1
                if any(s in cmdline for s in self.secrets):
                    self.hits.add(cmdline.replace(b"\0", b" ").decode(errors="replace"))


def files_under(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, bytes | None]:
    """A PostgreSQL store whose URL holds a password, or (where no server can be started
    here) an SQLite store file, whose URL holds none."""
    from tests.pgserver import PASSWORD, skip_reason

    if skip_reason():
        return str(tmp_path / "work" / "sweeps.db"), None
    url = request.getfixturevalue("new_pg_database")()
    assert PASSWORD in url
    return url, PASSWORD.encode()


def stored_rows(url: str) -> str:
    """Every row of every asc-sweep table, as text."""
    if "://" not in url:
        import sqlite3

        with sqlite3.connect(url) as db:
            return "\n".join(db.iterdump())
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return "\n".join(
            str(row)
            for table in ("sweeps", "runs", "history", "asc_sweep_meta")
            for row in conn.execute(f"SELECT row_to_json(t)::text FROM {table} t").fetchall()
        )


def test_no_secret_reaches_a_file_a_stored_row_or_a_command_line(
    synth_root: Path, tmp_path: Path, store_url: tuple[str, bytes | None]
) -> None:
    url, password = store_url
    secrets = [API_KEY.encode()] + ([password] if password else [])
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    spec = work / "spec.yaml"
    spec.write_text(SPEC.format(root=synth_root))
    wandb_dir = tmp_path / "wandb-files"
    env = agent_env(WANDB_API_KEY=API_KEY, ASC_SWEEP_STORE=url, WANDB_DIR=str(wandb_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    entrypoint = ["sh", str(ROOT / "docker" / "entrypoint.sh")]

    def run(*argv: str, expect: int = 0) -> str:
        proc = subprocess.run(
            [*argv], env=env, cwd=work, capture_output=True, text=True, timeout=400
        )
        assert proc.returncode == expect, proc.stdout + proc.stderr
        return proc.stdout + "\n" + proc.stderr

    with CommandLines(secrets) as watch:
        outputs = [run("asc-sweep", "create", str(spec))]
        sweep_id = outputs[0].split("\n")[0].strip().splitlines()[-1]
        # The whole sweep, through the image's entry point: 2 runs train, 2 crash mid-run.
        outputs.append(
            run(*entrypoint, "launch", sweep_id, "--agents", "2", "--tracking", "offline",
                "--function", "runfns:trainer_crashing_on_seed_1")
        )  # fmt: skip
        outputs.append(run("asc-sweep", "status", sweep_id))
        outputs.append(run("asc-sweep", "report", sweep_id, "--out", str(work / "report")))
        outputs.append(run(*entrypoint, "list"))
    assert watch.seen > 50 and not watch.hits, watch.hits

    rows = stored_rows(url)
    assert "failed" in rows and "finished" in rows  # a failing run was part of it
    assert (work / "report" / "report.md").is_file()
    assert list((wandb_dir / "wandb").glob("offline-run-*")), "W&B wrote its offline runs"
    written = list(files_under(work, wandb_dir, Path(os.environ["ASC_SWEEP_CACHE"])))
    assert len(written) > 20
    for secret in secrets:
        assert secret.decode() not in "\n".join(outputs)
        assert secret.decode() not in rows
        leaks = [p for p in written if secret in p.read_bytes()]
        assert not leaks, leaks


def test_no_yaml_is_read_with_an_unsafe_loader_and_no_subprocess_goes_through_a_shell() -> None:
    """The code-level rules behind the tests above, checked over the whole package."""
    import re

    sources = {p: p.read_text() for p in (ROOT / "asc_sweep").rglob("*.py")}
    unsafe = re.compile(
        r"yaml\.(unsafe_)?load\((?![^)]*SafeLoader)|FullLoader|shell=True|os\.system\("
    )
    offenders = [f"{p}:{i}" for p, text in sources.items() for i, line in enumerate(text.splitlines(), 1)
                 if unsafe.search(line)]  # fmt: skip
    assert not offenders
    weights = [
        line for text in sources.values() for line in text.splitlines() if "torch.load(" in line
    ]
    assert weights and all("weights_only=True" in line for line in weights)


def test_the_image_runs_as_a_user_without_root() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), users
