"""The bad-input corpus beyond sweep specs: CLI arguments, dataset metadata, audio, stores,
caches and checkpoints. One row a case; ``specs/`` holds the spec cases, one file each, with
their expectation on the first line (``# expect: EXIT | FRAGMENT``).

A row builds what it needs in its own workspace and returns the command line to run (or runs
a function for the cases no command reaches). The harness (``tests/test_bad_inputs.py``)
checks the exit code, that the fragment is on one output line, that no traceback was printed,
and, for every refused input, that the sweep store and the audio cache are byte for byte as
they were.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests import layouts

Argv = list[str]


@dataclass
class Workspace:
    """A case's own folder, with a sweep store holding one sweep and an audio cache folder."""

    dir: Path
    store: Path
    cache: Path
    sweep_id: str
    good_spec: Path

    def csv_dataset(
        self, rows: list[tuple[str, str, int, str]] | None = None, name: str = "data"
    ) -> Path:
        """The csv layout (meta.csv: filename,label,fold,group) with 0.5 s clips at 16 kHz;
        ``rows`` default to classes a and b, 4 clips each over folds 1 and 2."""
        root = self.dir / name
        root.mkdir()
        if rows is None:
            layouts.make_csv(root)
        else:
            for rel, *_ in rows:
                if not rel.startswith(("/", "..")):
                    layouts.write_wav(root / rel)
            layouts.make_csv(root, rows)
        return root

    def check(self, root: Path, dataset: str = "csv") -> Argv:
        return ["data", "check", str(root), "-d", dataset]

    def train(self, root: Path, *sets: str) -> Argv:
        knobs = [
            "dataset=csv", f"data_root={root}", "epochs=1", "fold=1", "sample_rate=16000",
            "arch=dcase2017_mlp", "crop_seconds=0.5", "batch_size=4", "val_fraction=0.25",
            "device=cpu", *sets,
        ]  # fmt: skip
        return ["train", "--tracking", "off", *(a for k in knobs for a in ("--set", k))]


@dataclass(frozen=True)
class Case:
    """One hostile input: what to build and run, and what must come out."""

    id: str
    build: Callable[[Workspace], Argv] | None = None
    call: Callable[[Workspace], tuple[int, str]] | None = None  # for inputs no command reaches
    exit: int = 2
    says: str = ""
    unprivileged: bool = False  # run as a user that file modes bind (root ignores them)
    fail_writes_under: Callable[[Workspace], Path] | None = None  # a full disk there
    env: Callable[[Workspace], dict[str, str]] | None = None


def rows_ab(folds: int = 2, per_fold: int = 2) -> list[tuple[str, str, int, str]]:
    return [
        (f"clips/{lab}_{f}_{i}.wav", lab, f, f"{lab}-g{f}")
        for lab in ("a", "b")
        for f in range(1, folds + 1)
        for i in range(per_fold)
    ]


def _replace_clip(ws: Workspace, rel: str, write: Callable[[Path], None]) -> Path:
    root = ws.csv_dataset()
    path = root / rel
    path.unlink()
    write(path)
    return root


def _wav_samples(
    data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT"
) -> Callable[[Path], None]:
    return lambda path: sf.write(path, data, rate, subtype=subtype)


def _wav_header(channels: int, frames: int, rate: int = 16000) -> bytes:
    """A PCM_16 RIFF/WAVE header (and its data) written by hand, for shapes no encoder writes."""
    data = bytes(2 * max(channels, 1) * frames)
    block = 2 * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _flac_claiming(frames: int) -> Callable[[Path], None]:
    """Half a second of FLAC whose STREAMINFO says it holds ``frames`` samples (the 36-bit
    total at bytes 18-25; 0: unknown, as an encoder writing to a pipe leaves it): decoders
    size their buffer from it."""

    def write(path: Path) -> None:
        buf = io.BytesIO()
        sf.write(buf, layouts.tone(0.5, 16000), 16000, format="FLAC")
        data = bytearray(buf.getvalue())
        assert data[:4] == b"fLaC"
        fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
        data[18:26] = (fields | frames).to_bytes(8, "big")
        path.write_bytes(bytes(data))

    return write


def _write_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _edit_meta(ws: Workspace, edit: Callable[[str], str], rows: list | None = None) -> Path:
    root = ws.csv_dataset(rows)
    meta = root / "meta.csv"
    meta.write_text(edit(meta.read_text()))
    return root


def _without(root: Path, rel: str) -> Path:
    (root / rel).unlink()
    return root


def _meta_bytes(ws: Workspace, data: bytes) -> Path:
    root = ws.csv_dataset()
    (root / "meta.csv").write_bytes(data)
    return root


def _symlink_outside(ws: Workspace) -> Argv:
    root = ws.csv_dataset()
    outside = ws.dir / "outside.wav"
    layouts.write_wav(outside)
    (root / "clips/a_1.wav").unlink()
    (root / "clips/a_1.wav").symlink_to(outside)
    return ws.check(root)


def _symlink_loop(ws: Workspace) -> Argv:
    root = ws.csv_dataset()
    (root / "clips/a_1.wav").unlink()
    (root / "clips/a_1.wav").symlink_to(root / "clips/a_1.lnk")
    (root / "clips/a_1.lnk").symlink_to(root / "clips/a_1.wav")
    return ws.check(root)


def _urbansound8k(ws: Workspace, edit: Callable[[list[list[str]]], None]) -> Argv:
    root = ws.dir / "us8k"
    layouts.make_urbansound8k(root, folds=2)
    meta = root / "metadata" / "UrbanSound8K.csv"
    with meta.open(newline="") as f:
        table = list(csv.reader(f))
    edit(table)
    with meta.open("w", newline="") as f:
        csv.writer(f).writerows(table)
    return ws.check(root, "urbansound8k")


def _set_fold(table: list[list[str]], fold: str) -> None:
    name = table[1][0]
    table[1][5] = fold
    table[1][0] = name  # the clip stays where it is; only the row's fold changes


def _mixed_rates(ws: Workspace) -> Argv:
    rows = rows_ab()
    root = ws.dir / "data"
    for rel, *_ in rows:
        layouts.write_wav(root / rel, rate=44100 if "a_1_0" not in rel else 8000)
    layouts.make_csv(root, rows)
    return ws.check(root)


def _store_bytes(ws: Workspace, data: bytes) -> Path:
    path = ws.dir / "other.db"
    path.write_bytes(data)
    return path


def _foreign_sqlite(ws: Workspace) -> Argv:
    path = ws.dir / "photos.db"
    with sqlite3.connect(path) as db:
        db.execute("create table photos (id integer primary key, name text)")
        db.execute("insert into photos (name) values ('cat.jpg')")
    db.close()
    return ["status", "--store", str(path)]


def _truncated_store(ws: Workspace) -> Argv:
    path = ws.dir / "truncated.db"
    data = ws.store.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return ["report", "--store", str(path), "--out", str(ws.dir / "report")]


def _read_only_store(ws: Workspace) -> Argv:
    ws.store.chmod(0o444)
    ws.store.parent.chmod(0o555)  # no journal can be created beside it either
    return ["create", str(ws.good_spec), "--store", str(ws.store)]


def _truncated_checkpoint(ws: Workspace) -> tuple[int, str]:
    """A requeued run whose checkpoint was cut short (disk full, kill mid-copy) starts over."""
    from asc_sweep.cli import _parse_sets
    from asc_sweep.run.checkpoint import CHECKPOINT
    from asc_sweep.run.context import StandaloneContext
    from asc_sweep.run.train import train_and_evaluate
    from asc_sweep.sweep.config import RunConfig

    root = ws.csv_dataset()
    run_dir = ws.dir / "run"
    run_dir.mkdir()
    config = RunConfig.from_dict({**_parse_sets(ws.train(root)[4::2]), "epochs": 2})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = train_and_evaluate(config, context=StandaloneContext(run_dir=run_dir))
        (run_dir / CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
        again = train_and_evaluate(config, context=StandaloneContext(run_dir=run_dir))
    said = "\n".join(str(w.message) for w in caught)
    ok = again.resumed_from_epoch is None and len(again.history) == len(first.history)
    return (0 if ok else 1), said


def _cache_on_full_disk(ws: Workspace) -> Argv:
    root = ws.csv_dataset()
    return ["data", "cache", str(root), "-d", "csv", "-r", "16000"]


def _prune_read_only_caches(ws: Workspace) -> Argv:
    """The workspace's cache folder holds a damaged cache (prunable) and cannot be written."""
    ws.cache.chmod(0o555)
    return ["data", "caches", "--prune"]


def _pickle_checkpoint(ws: Workspace) -> tuple[int, str]:
    """A checkpoint holding a pickled callable is refused (weights only), the run starts over."""
    import torch

    from asc_sweep.run.checkpoint import CHECKPOINT, load_checkpoint

    run_dir = ws.dir / "run"
    run_dir.mkdir()
    torch.save({"config_hash": "x", "hook": os.system}, run_dir / CHECKPOINT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = load_checkpoint(run_dir, "x")
    return (0 if state is None else 1), "\n".join(str(w.message) for w in caught)


def _old_format_checkpoint(ws: Workspace) -> tuple[int, str]:
    """A checkpoint of this configuration written by another asc-sweep version (torch.optim's
    optimiser state) is not resumed: the run starts over and ends as an uninterrupted one."""
    import torch

    from asc_sweep.cli import _parse_sets
    from asc_sweep.run.checkpoint import CHECKPOINT
    from asc_sweep.run.context import StandaloneContext
    from asc_sweep.run.train import train_and_evaluate
    from asc_sweep.sweep.config import RunConfig, config_hash

    root = ws.csv_dataset()
    run_dir = ws.dir / "run"
    run_dir.mkdir()
    config = RunConfig.from_dict({**_parse_sets(ws.train(root)[4::2]), "epochs": 2})
    first = train_and_evaluate(config)
    layout = {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    old = {"config_hash": config_hash(first.config), "epoch": 1, "optimizer": layout}
    torch.save(old, run_dir / CHECKPOINT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = train_and_evaluate(config, context=StandaloneContext(run_dir=run_dir))
    said = "\n".join(str(w.message) for w in caught)
    losses = [[h["train/loss"] for h in r.history] for r in (first, again)]
    ok = again.resumed_from_epoch is None and losses[0] == losses[1]
    return (0 if ok else 1), said


SHORT = np.full(28, 0.1, dtype=np.float32)  # a 100-byte WAV file: 28 float samples
NAN = np.where(np.arange(8000) == 100, np.nan, 0.1).astype(np.float32)
INF = np.where(np.arange(8000) == 100, np.inf, 0.1).astype(np.float32)

CASES: list[Case] = [
    # --- command-line arguments -----------------------------------------------------------
    Case("cli-spec-missing", lambda ws: ["create", str(ws.dir / "nope.yaml"), "--store", str(ws.store)], says="nope.yaml: no such file"),
    Case("cli-spec-is-a-folder", lambda ws: ["create", str(ws.dir), "--store", str(ws.store)], says="is a folder, not a YAML sweep spec"),
    Case("cli-train-negative-epochs", lambda ws: ["train", "--set", "epochs=-1"], says="epochs: -1 is out of range; epochs must be >= 1"),
    Case("cli-train-set-without-equals", lambda ws: ["train", "--set", "epochs"], says="--set 'epochs': write key=value"),
    Case("cli-train-unknown-knob", lambda ws: ["train", "--set", "epoch=3"], says="unknown knob (did you mean 'epochs'?)"),
    Case("cli-train-lr-nan", lambda ws: ["train", "--set", "lr=nan"], says="lr: 'nan' is not a number"),
    Case("cli-launch-ten-thousand-agents", lambda ws: ["launch", ws.sweep_id, "--store", str(ws.store), "--agents", "10000"], says="--agents 10000: at most"),
    Case("cli-demo-ten-thousand-agents", lambda ws: ["demo", "--data", str(ws.dir / "demo"), "--store", str(ws.dir / "demo.db"), "--agents", "10000"], says="--agents 10000: at most"),
    Case("cli-create-seed-too-large", lambda ws: ["create", str(ws.good_spec), "--store", str(ws.store), "--seed", str(10**24)], says="--seed"),
    Case("cli-create-max-attempts-too-large", lambda ws: ["create", str(ws.good_spec), "--store", str(ws.store), "--max-attempts", str(10**24)], says="--max-attempts"),
    Case("cli-create-lease-never-ends", lambda ws: ["create", str(ws.good_spec), "--store", str(ws.store), "--lease-seconds", "inf"], says="--lease-seconds"),
    Case("cli-launch-hidden-gpu", lambda ws: ["launch", ws.sweep_id, "--store", str(ws.store), "--gpus", "0,7"], env=lambda ws: {"CUDA_VISIBLE_DEVICES": "0,1"}, says="--gpus '0,7': GPU 7 is not visible on this host; visible: 0,1"),
    Case("cli-launch-gpu-superscript", lambda ws: ["launch", ws.sweep_id, "--store", str(ws.store), "--gpus", "\u00b2"], says="give GPU indices separated by commas"),
    Case("cli-launch-zero-agents", lambda ws: ["launch", ws.sweep_id, "--store", str(ws.store), "--agents", "0"], says="--agents"),
    Case("cli-status-unknown-sweep", lambda ws: ["status", "zzzzzz", "--store", str(ws.store)], says="zzzzzz"),
    Case("cli-retry-a-pending-run", lambda ws: ["retry", ws.sweep_id, "--store", str(ws.store), "--run", "1"], says="-0001 is pending: only failed runs not yet retried can be retried; nothing was queued"),
    Case("cli-retry-unknown-run", lambda ws: ["retry", ws.sweep_id, "--store", str(ws.store), "--run", "999"], says="has no run 999"),
    Case("cli-retry-run-of-another-sweep", lambda ws: ["retry", ws.sweep_id, "--store", str(ws.store), "--run", "zzzzzz-0001"], says="'zzzzzz-0001': not a run of sweep"),
    Case("cli-retry-wandb-sweep", lambda ws: ["retry", "entity/project/abc123"], says="`retry` works on sweeps in asc-sweep's own stores"),
    Case("cli-report-unknown-sweep", lambda ws: ["report", "zzzzzz", "--store", str(ws.store)], says="zzzzzz"),
    Case("cli-unknown-backend", lambda ws: ["create", str(ws.good_spec), "--backend", "mongo", "--store", str(ws.store)], says="--backend 'mongo': allowed: local"),
    Case("cli-store-in-missing-folder", lambda ws: ["create", str(ws.good_spec), "--store", str(ws.dir / "no" / "such" / "x.db")], says="such does not exist"),
    Case("cli-agent-bad-function", lambda ws: ["agent", ws.sweep_id, "--store", str(ws.store), "--function", "no_such_module:fn"], says="no_such_module"),
    Case("cli-check-missing-folder", lambda ws: ws.check(ws.dir / "nowhere"), says="nowhere"),
    Case("cli-check-unknown-dataset", lambda ws: ws.check(ws.dir, "audioset"), says="'audioset'"),
    Case("cli-synth-unknown-realism", lambda ws: ["data", "synth", str(ws.dir / "s"), "--realism", "extreme"], says="extreme"),
    Case("cli-cache-rate-zero", lambda ws: ["data", "cache", str(ws.csv_dataset()), "-d", "csv", "-r", "0"], says="--sample-rate 0: 0 is out of range; sample_rate must be >= 1000"),
    Case("cli-caches-negative-days", lambda ws: ["data", "caches", "--prune", "--unused-days", "-1"], says="--unused-days"),
    Case("cli-caches-dry-run-alone", lambda ws: ["data", "caches", "--dry-run"], says="--dry-run: only with --prune"),
    Case("caches-prune-read-only", _prune_read_only_caches, unprivileged=True, says="Permission denied"),
    Case("cli-caches-root-is-a-file", lambda ws: ["data", "caches"], env=lambda ws: {"ASC_SWEEP_CACHE": str(ws.good_spec)}, says="ASC_SWEEP_CACHE names the caches' folder"),
    # --- dataset metadata -----------------------------------------------------------------
    Case("meta-path-dotdot", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace("clips/a_0.wav", "../outside.wav"))), says="meta.csv:2: path '../outside.wav' leaves the dataset folder"),
    Case("meta-path-absolute", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace("clips/a_0.wav", "/etc/hostname"))), says="meta.csv:2: path '/etc/hostname' leaves the dataset folder"),
    Case("meta-symlink-outside", _symlink_outside, says="clips/a_1.wav: a link to a file outside the dataset folder"),
    Case("meta-path-too-long", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace("clips/a_1.wav", "clips/" + "x" * 300 + ".wav"))), says="xxxxx...: not a usable path (File name too long)"),
    Case("meta-symlink-loop", _symlink_loop, says="meta.csv:3: clips/a_1.wav: not a usable path (links that lead back to it)"),
    Case("meta-label-only-in-test", lambda ws: ws.check(ws.csv_dataset([*rows_ab(), ("clips/c_0.wav", "c", 2, "c-g")])), says="fold 2: class 'c' is tested but never trained on"),
    Case("meta-fold-without-a-class", lambda ws: ws.check(ws.csv_dataset([r for r in rows_ab(folds=3) if not (r[1] == "b" and r[2] == 3)])), says="fold 3: no test clips of class 'b'"),
    Case("meta-fold-zero", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace(",a,1,", ",a,0,", 1))), says="meta.csv:2: fold '0' is not a whole number >= 1"),
    Case("meta-fold-text", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace(",a,1,", ",a,one,", 1))), says="meta.csv:2: fold 'one' is not a whole number >= 1"),
    Case("meta-header-only", lambda ws: ws.check(_edit_meta(ws, lambda t: t.splitlines()[0] + "\n")), says="meta.csv: lists no usable clips"),
    Case("meta-missing-column", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace("label", "class", 1))), says="meta.csv: missing column(s) label"),
    Case("meta-empty-label", lambda ws: ws.check(_edit_meta(ws, lambda t: t.replace(",a,1,", ",,1,", 1))), says="meta.csv:2: no 'label' in this row"),
    Case("meta-not-utf8", lambda ws: ws.check(_meta_bytes(ws, b"filename,label,fold,group\nclips/a_0.wav,caf\xe9,1,g\n")), says="meta.csv: not valid UTF-8"),
    Case("meta-nul-byte", lambda ws: ws.check(_meta_bytes(ws, b"filename,label,fold,group\nclips/a_0.wav,a\x00,1,g\n")), says="meta.csv:2: a NUL byte"),
    Case("meta-file-missing", lambda ws: ws.check(_without(ws.csv_dataset(), "meta.csv")), says="meta.csv: metadata file not found"),
    Case("meta-duplicate-row", lambda ws: ws.check(_edit_meta(ws, lambda t: t + t.splitlines()[1] + "\n")), says="meta.csv:10: clips/a_0.wav is listed again (first on line 2)"),
    Case("meta-missing-clip", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", lambda p: None)), says="meta.csv:3: clips/a_1.wav: file not found"),
    Case("meta-missing-clip-in-training", lambda ws: ws.train(_replace_clip(ws, "clips/a_1.wav", lambda p: None)), says="meta.csv:3: clips/a_1.wav: file not found"),
    Case("meta-label-only-in-test-training", lambda ws: ws.train(ws.csv_dataset([*rows_ab(), ("clips/c_0.wav", "c", 1, "c-g")])), says="fold 1: class 'c' is tested but never trained on"),
    Case("us8k-fold-eleven", lambda ws: _urbansound8k(ws, lambda t: _set_fold(t, "11")), says="UrbanSound8K.csv:2: fold 11 does not exist; urbansound8k has folds 1-10"),
    Case("us8k-clip-in-other-fold-folder", lambda ws: _urbansound8k(ws, lambda t: _set_fold(t, "2")), says="UrbanSound8K.csv:2: audio/fold2/"),
    Case("dataset-folder-is-a-file", lambda ws: ws.check(ws.good_spec), says="not a folder"),
    # --- audio ----------------------------------------------------------------------------
    Case("audio-shorter-than-a-window", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _wav_samples(SHORT))), says="meta.csv:3: clips/a_1.wav: 28 samples, shorter than one"),
    Case("audio-nan-samples", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _wav_samples(NAN))), says="meta.csv:3: clips/a_1.wav: has NaN or infinite samples"),
    Case("audio-inf-samples", lambda ws: ws.check(_replace_clip(ws, "clips/b_2.wav", _wav_samples(INF))), says="meta.csv:8: clips/b_2.wav: has NaN or infinite samples"),
    Case("audio-nan-in-training", lambda ws: ws.train(_replace_clip(ws, "clips/a_1.wav", _wav_samples(NAN))), says="clips/a_1.wav: has NaN or infinite samples"),
    Case("audio-zero-channels", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(_wav_header(0, 100)))), says="meta.csv:3: clips/a_1.wav: cannot decode"),
    Case("audio-64-channels", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(_wav_header(64, 8000)))), says="meta.csv:3: clips/a_1.wav: 64 channels; at most 8"),
    Case("audio-8khz-in-44khz-dataset", _mixed_rates, exit=0, says="clips/a_1_0.wav: 8000 Hz while most clips are 44100 Hz"),
    Case("audio-header-claims-years", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _flac_claiming(2**35))), says="meta.csv:3: clips/a_1.wav: 35791 minutes long by its header; clips of at most 60 minutes"),
    Case("audio-header-claims-years-in-training", lambda ws: ws.train(_replace_clip(ws, "clips/a_1.wav", _flac_claiming(2**35))), says="clips/a_1.wav: 35791 minutes long by its header"),
    Case("audio-flac-without-a-length", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _flac_claiming(0))), says="meta.csv:3: clips/a_1.wav: its header gives no length (a FLAC written to a pipe?), which soundfile cannot decode; re-encode the file"),
    Case("audio-rate-3-hz", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(_wav_header(1, 8000, rate=3)))), says="meta.csv:3: clips/a_1.wav: sample rate 3 Hz is outside 1000-768000 Hz (a damaged header?)"),
    Case("audio-empty-file", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(b""))), says="meta.csv:3: clips/a_1.wav: empty file (0 bytes)"),
    Case("audio-not-audio", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(b"<html>404 Not Found</html>" * 10))), says="meta.csv:3: clips/a_1.wav: cannot decode"),
    Case("audio-truncated", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(_wav_header(1, 8000)[:3000]))), says="meta.csv:3: clips/a_1.wav: truncated"),
    Case("audio-a-folder", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", lambda p: p.mkdir())), says="meta.csv:3: clips/a_1.wav: is not a file"),
    Case("audio-zero-samples", lambda ws: ws.check(_replace_clip(ws, "clips/a_1.wav", _write_bytes(_wav_header(1, 0)))), says="meta.csv:3: clips/a_1.wav: zero length"),
    # --- sweep stores ---------------------------------------------------------------------
    Case("store-truncated", _truncated_store, says="truncated.db: damaged"),
    Case("store-other-programs-sqlite", _foreign_sqlite, says="photos.db: not an asc-sweep store"),
    Case("store-text-file", lambda ws: ["status", "--store", str(_store_bytes(ws, b"hello, not a database\n" * 100))], says="other.db: not an asc-sweep store"),
    Case("store-is-a-folder", lambda ws: ["status", "--store", str(ws.dir)], says="is a folder"),
    Case("store-read-only", _read_only_store, unprivileged=True, says="read-only"),
    Case("store-empty", lambda ws: ["status", "--store", str(ws.dir / "fresh.db")], says="no sweep"),
    # --- caches and checkpoints -----------------------------------------------------------
    Case("cache-disk-full", _cache_on_full_disk, fail_writes_under=lambda ws: ws.cache, says="No space left on device"),
    Case("cache-root-is-a-file", _cache_on_full_disk, env=lambda ws: {"ASC_SWEEP_CACHE": str(ws.good_spec)}, says="ASC_SWEEP_CACHE"),
    Case("checkpoint-truncated", call=_truncated_checkpoint, exit=0, says="unreadable checkpoint"),
    Case("checkpoint-with-pickled-code", call=_pickle_checkpoint, exit=0, says="unreadable checkpoint"),
    Case("checkpoint-of-another-version", call=_old_format_checkpoint, exit=0, says="another version of asc-sweep"),
]  # fmt: skip
