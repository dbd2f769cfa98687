"""The bad-input corpus: every hostile input gets one line naming the culprit and what is
allowed, the expected exit code, no traceback, and leaves the store and the cache untouched.

Cases: ``tests/bad_inputs/specs/*.yaml`` (one spec a file, expectation on its first line) and
``tests/bad_inputs/cases.py`` (everything else, one row a case). pytest prints the corpus's
size and pass count at the end of the session.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import os
import pwd
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from asc_sweep.cli import app

from .bad_inputs.cases import CASES, Case, Workspace

SPECS = Path(__file__).parent / "bad_inputs" / "specs"
EXPECT = re.compile(rb"^(?:\xef\xbb\xbf)?# expect: (\d+) \| (.*?)\r?$", re.M)

GOOD_SPEC = """\
method: grid
metric: {name: val/accuracy, goal: maximize}
parameters:
  dataset: {value: synth}
  arch: {values: [dcase2018_cnn, sb_cnn]}
"""


def spec_cases() -> list[Case]:
    cases = []
    for path in sorted(SPECS.glob("*.yaml")):
        head = EXPECT.match(path.read_bytes())
        assert head, f"{path}: the first line must be '# expect: EXIT | FRAGMENT'"
        code, fragment = int(head[1]), head[2].decode()

        def build(ws: Workspace, path: Path = path) -> list[str]:
            return ["create", str(path), "--store", str(ws.store)]

        cases.append(Case(f"spec-{path.stem}", build, exit=code, says=fragment))
    return cases


ALL = spec_cases() + CASES


def store_digest(path: Path) -> str:
    """Every table, index and row of an SQLite store (its logical content: SQLite may fold
    its write-ahead log into the main file on any open, which changes bytes, not content)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()
    finally:
        db.close()


def tree_digest(path: Path) -> str:
    """Names and contents of every file under ``path``."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.exists() else []:
        if p.name.endswith(".lock"):  # lock files are created on demand and stay empty
            continue
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    # A world-readable folder: some cases run as an unprivileged user.
    folder = Path(tempfile.mkdtemp(prefix="bad-input-"))
    folder.chmod(0o755)
    cache = folder / "cache"
    (cache / "synth-0123456789abcdef-16000").mkdir(parents=True)
    (cache / "synth-0123456789abcdef-16000" / "index.json").write_text('{"version": 1}')
    monkeypatch.setenv("ASC_SWEEP_CACHE", str(cache))
    monkeypatch.chdir(folder)
    good = folder / "good.yaml"
    good.write_text(GOOD_SPEC)
    stores = folder / "stores"
    stores.mkdir()
    store = stores / "sweeps.db"
    result = CliRunner().invoke(app, ["create", str(good), "--store", str(store)])
    assert result.exit_code == 0, result.output
    sweep_id = result.output.strip().splitlines()[-1]
    with contextlib.closing(sqlite3.connect(store)) as db:  # everything into the main file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    yield Workspace(folder, store, cache, sweep_id, good)
    for p in [folder, *folder.rglob("*")]:
        with contextlib.suppress(OSError):
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Act as ``nobody`` (file modes bind it) when running as root; as yourself otherwise."""
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


class _FullDisk(io.RawIOBase):
    """A file on a full disk: opening works, the first write fails with ENOSPC."""

    def __init__(self, real: Any, path: str) -> None:
        self._real, self._path = real, path

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self._real.close()
        super().close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextlib.contextmanager
def disk_full_under(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Writes to files under ``folder`` fail as on a full disk (reads are unaffected)."""
    real_open = builtins.open

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, (str, os.PathLike)):
            path = Path(os.fspath(file)).absolute()
            if path.is_relative_to(folder) and not path.name.endswith(".lock"):
                return _FullDisk(handle, str(path))
        return handle

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", fake_open)
        m.setattr(io, "open", fake_open)
        yield


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_bad_input(case: Case, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace
    if case.env is not None:
        for key, value in case.env(ws).items():
            monkeypatch.setenv(key, value)
    before = {"store": store_digest(ws.store), "cache": tree_digest(ws.cache)}
    if case.call is not None:
        code, output = case.call(ws)
    else:
        assert case.build is not None
        argv = case.build(ws)
        with contextlib.ExitStack() as stack:
            if case.unprivileged:
                stack.enter_context(unprivileged())
            if case.fail_writes_under is not None:
                stack.enter_context(disk_full_under(case.fail_writes_under(ws), monkeypatch))
            result = CliRunner().invoke(app, argv)
        code, output = result.exit_code, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{case.id}: crashed:\n{output}") from result.exception
    assert "Traceback" not in output, output
    assert code == case.exit, f"{case.id}: exit {code}, expected {case.exit}:\n{output}"
    lines = [line for line in output.splitlines() if case.says in line]
    assert lines, f"{case.id}: no line says {case.says!r}:\n{output}"
    if case.exit != 0:
        after = {"store": store_digest(ws.store), "cache": tree_digest(ws.cache)}
        assert after == before, f"{case.id}: changed {[n for n in before if before[n] != after[n]]}"
        leftovers = [p.name for p in ws.cache.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"{case.id}: partial files left in the cache: {leftovers}"
