"""train_and_evaluate end to end on real synthetic audio: results, resume, W&B, the CLI."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml

from asc_sweep.backends import LocalBackend
from asc_sweep.cli.demo import DEMO_SPEC
from asc_sweep.report import RunRecord
from asc_sweep.run import runtime, train
from asc_sweep.run.checkpoint import load_checkpoint
from asc_sweep.run.context import StandaloneContext
from asc_sweep.run.result import RunResult
from asc_sweep.run.runtime import cpu_has_native_bf16
from asc_sweep.run.state import TrainState
from asc_sweep.run.tracking import Tracker, WandbTracker
from asc_sweep.run.train import train_and_evaluate
from asc_sweep.sweep.config import ARCH_NAMES, RunConfig
from asc_sweep.sweep.spec import load_spec

from .conftest import ROOT, agent_env, mlp_sweep
from .wandb_log import read_offline_run

SWEEPS = ROOT / "sweeps"


def tiny(synth_root: Path, **overrides: Any) -> RunConfig:
    knobs = {"dataset": "synth", "data_root": str(synth_root), "sample_rate": 16000, "n_mels": 40,
             "arch": "dcase2018_cnn", "epochs": 3, "batch_size": 8, "crop_seconds": 0.5, "patience": 0,
             "device": "cpu", "val_fraction": 0.25}  # fmt: skip
    knobs.update(overrides)
    return RunConfig.from_dict(knobs)


def test_a_run_produces_every_figure(synth_root: Path) -> None:
    result = train_and_evaluate(tiny(synth_root, specaugment=True, mixup=0.2))
    test = result.test
    assert 0 <= test["accuracy"] <= 1 and test["log_loss"] > 0 and 0 <= test["macro_f1"] <= 1
    assert (
        len(test["confusion"]) == 4 and sum(map(sum, test["confusion"])) == 8
    )  # fold 1: 8 test clips
    assert len(test["per_class_accuracy"]) == 4
    assert result.epochs_run == 3 and [h["epoch"] for h in result.history] == [1, 2, 3]
    assert {"train/loss", "val/accuracy", "lr", "time/epoch_seconds"} <= set(result.history[0])
    assert result.epochs_to_90 is not None and 1 <= result.epochs_to_90 <= 3
    assert result.parameters > 0 and result.macs_per_clip > 0
    assert (
        result.timings["inference_ms_per_clip"] > 0 and result.timings["train_clips_per_second"] > 0
    )
    assert result.environment["packages"]["torch"] and result.environment["device_type"] == "cpu"
    # Mixed precision on a CPU only where bfloat16 is native (AMX, AVX512-BF16); the run says which.
    native = cpu_has_native_bf16()
    assert result.environment["precision"] == ("bfloat16" if native else "float32")
    summary = result.summary()
    assert summary["test/accuracy"] == test["accuracy"] and "test/accuracy/rain" in summary


def test_a_run_records_the_revision_of_the_asc_sweep_source_it_ran(tmp_path: Path) -> None:
    """The revision is the package's own checkout's (not the working folder's), marked
    ``+dirty`` where its tracked files were changed, and None for a copy no repository
    tracks (an installed release, in a project's repository or in none)."""

    def git(repo: Path, *args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    repo = tmp_path / "checkout"
    package = repo / "asc_sweep"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    sha = git(repo, "rev-parse", "HEAD")
    assert runtime.git_revision(package) == sha
    (package / "__init__.py").write_text("changed = True\n")
    assert runtime.git_revision(package) == sha  # read once a process: what it imported
    runtime.git_revision.cache_clear()
    assert runtime.git_revision(package) == sha + "+dirty"
    untracked = repo / "venv" / "asc_sweep"  # an installed copy inside another repository
    untracked.mkdir(parents=True)
    (untracked / "__init__.py").write_text("")
    assert runtime.git_revision(untracked) is None
    assert runtime.git_revision(tmp_path) is None  # no repository at all
    assert runtime.git_revision() == runtime.git_revision(runtime.PACKAGE_DIR)


def killed_then_resumed(
    config: RunConfig,
    run_dir: Path,
    killed_at_step: int,
    on_killed: Callable[[Path], None] | None = None,
) -> RunResult:
    """Train ``config`` until its process dies while reporting epoch ``killed_at_step + 1``,
    then run it again from ``run_dir``, as a requeued run does (``on_killed`` sees the run
    folder in between)."""

    class Killed(Exception):
        pass

    class Dies(StandaloneContext):
        def log(self, metrics: Mapping[str, Any], step: int | None = None, **kw: Any) -> None:
            if step == killed_at_step:
                raise Killed

    with pytest.raises(Killed):
        train_and_evaluate(config, context=Dies(run_dir=run_dir))
    if on_killed is not None:
        on_killed(run_dir)
    return train_and_evaluate(config, context=StandaloneContext(run_dir=run_dir))


def test_a_requeued_run_resumes_and_ends_as_an_uninterrupted_one(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny(synth_root, specaugment=True, mixup=0.2)
    straight = train_and_evaluate(config)
    resumed = killed_then_resumed(config, tmp_path / "run", killed_at_step=1)
    assert resumed.resumed_from_epoch == 1
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in straight.history]
    assert resumed.test == straight.test


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
@pytest.mark.parametrize("selection", ["average", "best_accuracy"])
def test_a_resumed_run_holds_its_selected_weights_on_the_run_s_device(
    selection: str, synth_root: Path, tmp_path: Path
) -> None:
    """A checkpoint is read onto the CPU; the weights a run averages (or its best epoch's) go
    to the run's device, where the next epochs add to them (left on the CPU, a run resumed on
    a GPU inside the averaging window failed at its next epoch). torch's ``meta`` device plays
    the GPU: no arithmetic, but the same device checks."""
    config = tiny(synth_root, selection=selection)
    killed_at = tmp_path / "killed"  # the run folder as the kill left it: epoch 2's checkpoint

    def keep(run_dir: Path) -> None:
        shutil.copytree(run_dir, killed_at)

    killed_then_resumed(config, tmp_path / "run", killed_at_step=2, on_killed=keep)
    setup = train.set_up(config)
    setup.net.to("meta")
    state = train.initial_state(config, setup)
    assert state.restore(killed_at) and state.epoch == 2
    kept = state.selection.best_weights
    assert kept is not None and {w.device.type for w in kept.values()} == {"meta"}
    state.end_epoch({"train/loss": 1.0, "train/accuracy": 0.5, "val/accuracy": 1.0,
                     "time/epoch_seconds": 1.0}, clips=8)  # fmt: skip
    assert state.selection.best_epoch == 3


def test_a_checkpoint_of_a_process_that_saw_more_gpus_resumes(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint holds one CUDA random state per GPU its process saw (an unpinned agent on
    a 2-GPU host); a process that sees one (a pinned agent, another host) restores that one
    (``set_rng_state_all`` failed on the missing device). torch.cuda is played by the test:
    what is checked is which states go to which device."""
    config = tiny(synth_root)
    run_dir = tmp_path / "run"

    def two_gpus(run_dir: Path) -> None:
        path = run_dir / "checkpoint.pt"
        state = torch.load(path, weights_only=True)
        state["rng"]["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in (1, 2)]
        torch.save(state, path)
        shutil.copytree(run_dir, tmp_path / "killed")

    killed_then_resumed(config, run_dir, killed_at_step=1, on_killed=two_gpus)
    setup = train.set_up(config)
    state = train.initial_state(config, setup)
    restored: dict[int, int] = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda s, device=0: restored.__setitem__(device, int(s[0])))  # fmt: skip
    assert state.restore(tmp_path / "killed") and state.epoch == 1
    assert restored == {0: 1}  # the first GPU's state, on the one GPU this process sees


def test_a_run_resumed_in_another_environment_records_each_attempts(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run put back and resumed on another host (another precision, another torch) trained
    its epochs in two environments: it records both, with their epochs, and the report reads
    its precision as the one, then the other. A run resumed where it started records one."""
    config = tiny(synth_root)
    same = killed_then_resumed(config, tmp_path / "same", killed_at_step=1)
    assert "attempts" not in same.environment
    real = train.environment
    first = real(torch.device("cpu"), same.environment["precision"])

    def other_host(device: torch.device, precision: str) -> dict[str, Any]:
        env = real(device, precision)
        return {**env, "precision": "float16", "packages": {**env["packages"], "torch": "9.9"}}

    moved = killed_then_resumed(
        config,
        tmp_path / "moved",
        killed_at_step=1,
        on_killed=lambda _: monkeypatch.setattr(train, "environment", other_host),
    )
    attempts = moved.environment["attempts"]
    assert [a["epochs"] for a in attempts] == [[1, 1], [2, 3]]
    assert attempts[0]["environment"]["precision"] == first["precision"]
    seen = RunRecord("r", {}, "finished", {"environment": moved.environment}).environment
    assert seen["precision"] == f"{first['precision']}, then float16"
    assert seen["torch"] == f"{first['packages']['torch']}, then 9.9"
    assert [h["train/loss"] for h in moved.history] == [h["train/loss"] for h in same.history]
    # An attempt that resumed after the last epoch trains none, but tests: it is on record.
    here, there = {"precision": "float32"}, {"precision": "bfloat16"}
    done = SimpleNamespace(resumed_from=3, epoch=3, environment=there,
                           earlier=[{"epochs": [1, 3], "environment": here}])  # fmt: skip
    assert TrainState.attempts(done) == [  # type: ignore[arg-type]
        {"epochs": [1, 3], "environment": here},
        {"epochs": [], "environment": there},
    ]


def test_checkpoints_every_n_epochs_still_resume_bit_for_bit(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny(synth_root, checkpoint_every=2)
    straight = train_and_evaluate(config)
    resumed = killed_then_resumed(config, tmp_path / "run", killed_at_step=2)
    assert resumed.resumed_from_epoch == 2  # epoch 1 was not saved, epoch 2 was
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in straight.history]
    assert resumed.test == straight.test


def test_the_wandb_offline_run_holds_config_history_and_summary(
    synth_root: Path, tmp_path: Path
) -> None:
    config = tiny(synth_root, fold=2, init="he_normal")
    tracker = WandbTracker("offline", directory=tmp_path)
    result = train_and_evaluate(
        config, tracker, context=StandaloneContext("abc123-0007"), tags=["abc123"]
    )
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    # W&B's core process writes the transaction log; on a loaded machine the last records can
    # land just after finish() returns, so read until the whole run is there (or 30 s pass).
    deadline = time.time() + 30
    while True:
        run = read_offline_run(run_dir)
        if ("arch" in run.config and "test/accuracy" in run.summary) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert (
        run.config["arch"] == "dcase2018_cnn"
        and run.config["init"] == "he_normal"
        and run.config["fold"] == 2
    )
    epochs = [h for h in run.history if "epoch" in h]
    assert [h["epoch"] for h in epochs] == [1, 2, 3]
    assert [h["val/accuracy"] for h in epochs] == [h["val/accuracy"] for h in result.history]
    assert run.summary["test/accuracy"] == result.test["accuracy"]
    assert run.summary["parameters"] == result.parameters
    assert run.summary["environment"]["precision"] == result.environment["precision"]
    assert run.group == config.group and run.job_type == "fold2" and run.tags == ["abc123"]
    assert run.name == "abc123-0007"


def test_w_b_lists_the_installed_packages_once_per_process_and_every_run_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb.util

    listed = []

    class Package:
        key, version = "asc-sweep-probe", "1.2.3"

    def working_set() -> list[Package]:
        listed.append(1)
        return [Package()]

    monkeypatch.setattr(wandb.util, "working_set", working_set)
    for name in ("first", "second"):
        tracker = WandbTracker("offline", directory=tmp_path)
        with tracker.session({"arch": "x"}, name=name, group="g", job_type="fold1", tags=[]):
            tracker.log({"epoch": 1}, step=0)
            tracker.finish({"test/accuracy": 0.5}, confusion=[[1]], classes=["a"])
    assert len(listed) == 1  # not once a run
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    deadline = time.time() + 30  # W&B's core process writes the files
    while True:
        found = [(r / "files" / "requirements.txt") for r in runs]
        texts = [f.read_text() if f.exists() else "" for f in found]
        if all("asc-sweep-probe==1.2.3" in t for t in texts) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert all("asc-sweep-probe==1.2.3" in t for t in texts), texts


def test_the_api_key_never_reaches_output(
    synth_root: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    secret = "0123456789abcdef0123456789abcdef01234567"
    env = agent_env(WANDB_API_KEY=secret, WANDB_MODE="offline", WANDB_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "train", "--set", "dataset=synth", "--set", f"data_root={synth_root}",
         "--set", "epochs=1", "--set", "n_mels=40", "--set", "crop_seconds=0.5", "--tracking", "offline"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert secret.encode() not in path.read_bytes(), path


def test_the_tracker_hears_the_audio_being_decoded_where_the_run_builds_the_cache(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Decoding(Tracker):
        def __init__(self) -> None:
            self.calls: list[tuple[int, int]] = []

        def decoding(self, done: int, total: int) -> None:
            self.calls.append((done, total))

    monkeypatch.setenv("ASC_SWEEP_CACHE", str(tmp_path / "cache"))
    first, second = Decoding(), Decoding()
    train_and_evaluate(tiny(synth_root, epochs=1), first)
    assert first.calls[-1] == (32, 32) and len(first.calls) == 32  # every clip, in order
    train_and_evaluate(tiny(synth_root, epochs=1), second)
    assert second.calls == []  # the cache was there: nothing decoded


def test_cli_train_writes_a_result(
    synth_root: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    out = tmp_path / "result.json"
    result = cli("train", "--set", "dataset=synth", "--set", f"data_root={synth_root}", "--set", "epochs=1",
                 "--set", "arch=dcase2017_mlp", "--set", "n_mels=40", "--tracking", "off", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["epochs_run"] == 1 and "accuracy" in saved["test"]
    assert "test/accuracy" in result.stdout
    assert "epoch 1, loss" in result.stderr and "1/1" in result.stderr  # the epochs as they end
    bad = cli("train", "--set", "arch=vgg", "--tracking", "off")
    assert bad.exit_code == 2 and "arch: 'vgg' is not allowed" in bad.stderr
    no_data = cli("train", "--set", "data_root=/nowhere", "--tracking", "off")
    assert no_data.exit_code == 2 and "dataset folder not found" in no_data.stderr


def test_agents_run_the_real_trainer_and_store_results(synth_root: Path, store: Path) -> None:
    sweep_id = mlp_sweep(store, synth_root, epochs=2)
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "agent", sweep_id, "--store", str(store), "--tracking", "off"],
        env=agent_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with LocalBackend(store) as backend:
        runs = backend.runs(sweep_id)
        assert [r.state for r in runs] == ["finished", "finished"]
        for run in runs:
            assert run.summary and 0 <= run.summary["test/accuracy"] <= 1
            assert len(run.summary["confusion"]) == 4
            assert [h["epoch"] for h in backend.history(run.id)] == [
                1,
                2,
            ]  # per-epoch history stored


def test_shipped_specs_validate() -> None:
    specs = sorted(SWEEPS.glob("*.yaml"))
    assert {p.stem for p in specs} >= {"demo", "sr-init-ablation", "dcase2016-archs", "dcase2017-archs",
                                        "esc50-archs", "urbansound8k-archs"}  # fmt: skip
    for path in specs:
        load_spec(path)
    assert load_spec(SWEEPS / "sr-init-ablation.yaml").grid_size() == 5 * 4 * 4 * 4
    assert (
        yaml.safe_load((SWEEPS / "demo.yaml").read_text()) == DEMO_SPEC
    )  # the file and the command agree


@pytest.mark.slow
def test_quick_demo(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "asc_sweep", "demo", "--quick", "--tracking", "off"],
        env={**agent_env(), "ASC_SWEEP_CACHE": str(tmp_path / "cache")}, capture_output=True, text=True,
        timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test/accuracy across folds" in proc.stderr
    assert "what this sweep shows:" in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "sample_rate=16000" in ln]
    assert "corrected t over 2 folds" in line  # the fold is the unit of replication: n = 2
    assert "full report (tables, paired tests, plots): reports/" in proc.stderr
    # The synthetic classes that differ only above 4 kHz cost 8 kHz accuracy, even in 3 epochs.
    effect = re.search(r"(?:by |: )([+-]?\d+\.\d{3})", line)  # "beats ... by X" or ": +X ("
    assert effect is not None and abs(float(effect.group(1))) > 0.05, line
    with LocalBackend(tmp_path / "asc-sweep.db") as backend:
        sweep = backend.get_sweep()
        assert sweep.name == "demo-quick" and sweep.state == "finished"
        assert {r.state for r in backend.runs(sweep.id)} == {"finished"}
    assert os.path.exists(tmp_path / "asc-sweep-data" / "synth" / "meta.csv")


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_every_architecture_trains_through_the_real_loop(arch: str, synth_root: Path) -> None:
    """Front end (or raw waveform), augmentation, mixup, masked pooling and cost, per model."""
    result = train_and_evaluate(tiny(synth_root, arch=arch, epochs=1, specaugment=True, mixup=0.2))
    assert result.epochs_run == 1 and 0 <= result.test["accuracy"] <= 1
    assert result.macs_per_clip > 0 and result.timings["inference_ms_per_clip"] > 0


def test_one_short_clip_a_batch_trains_with_the_fewest_bands(synth_root: Path) -> None:
    """batch_size 1, 16 bands and 0.2 s crops: CP-ResNet's last map is one value per class,
    which failed the run in torch's batch norm."""
    config = tiny(synth_root, arch="cp_resnet", n_mels=16, batch_size=1, crop_seconds=0.2, epochs=1)
    result = train_and_evaluate(config)
    assert result.epochs_run == 1 and math.isfinite(result.history[0]["train/loss"])


@pytest.mark.parametrize(
    "knobs",
    [{}, {"eval_segment_seconds": 0.25, "eval_hop_seconds": 0.05}],
    ids=["clips", "segments"],
)
def test_a_run_with_its_clips_resident_on_the_device_trains_the_same_run(
    knobs: dict[str, Any], synth_root: Path
) -> None:
    """``resident: always`` (the GPU path: clips held on the device, batches built there) and
    host batches give the same run, bit for bit: same crops, batches, history and result
    (evaluated on whole clips, or voted over segments planned from the batches' lengths)."""

    def figures(resident: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        result = train_and_evaluate(tiny(synth_root, resident=resident, gain_db=3.0, **knobs))
        rows = [{k: v for k, v in h.items() if not k.startswith("time/")} for h in result.history]
        return rows, result.test

    assert figures("always") == figures("never")


@pytest.mark.parametrize("path", ["kernel", "banded", "torchaudio"])
def test_the_front_end_stays_float32_inside_evaluation_s_autocast_region(
    path: str, synth_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evaluate`` holds one autocast region open over a pass (weights cast once); the
    log-mel front end inside it still computes in float32, as in training, on every path:
    the compiled kernel, banded torch ops, and torchaudio's transform (what GPUs run: its mel
    product would be lowered otherwise)."""
    from asc_sweep.data import features

    if path != "kernel":
        monkeypatch.setattr(features, "_melkernel", None)
    setup = train.set_up(tiny(synth_root, arch="dcase2018_cnn"))
    assert setup.net.front is not None
    if path == "torchaudio":
        setup.net.front.banded = False
    setup.net.eval()
    waves, lengths, _ = next(iter(setup.loaders["test"]))
    plain, _ = setup.net.features(waves, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside, _ = setup.net.features(waves, lengths)
    assert inside.dtype == torch.float32 and torch.equal(inside, plain)


def test_amp_off_or_float16_trains_a_cpu_run_in_float32(synth_root: Path) -> None:
    """``amp: false`` is float32 everywhere; float16 (a GPU type with loss scaling) is not
    used on a CPU, which trains in float32 then (fp16 is emulated there: 28x slower for
    cnn10, measured)."""
    for knobs in ({"amp": False}, {"amp_dtype": "float16"}):
        result = train_and_evaluate(tiny(synth_root, epochs=1, **knobs))
        assert result.environment["precision"] == "float32", knobs


def test_float16_with_loss_scaling_resumes_bit_for_bit(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GPU path for GPUs without bf16 (fp16 autocast, GradScaler), run on the CPU (only
    the choice of precision is forced; the loop, the scaler and the checkpoints are the
    run's own): the scaler really skips overflowing steps and backs off, its state is
    checkpointed, and a killed run resumes to the same figures as an uninterrupted one (a
    scaler started afresh would skip its first steps again)."""
    monkeypatch.setattr(train, "mixed_precision", lambda config, device: torch.float16)
    config = tiny(synth_root)
    straight = train_and_evaluate(config)
    assert straight.environment["precision"] == "float16"
    scales: list[float] = []

    def scaler_state(run_dir: Path) -> None:
        state = load_checkpoint(run_dir, straight.config_hash)
        assert state is not None and state["epoch"] == 1
        scales.append(state["scaler"]["scale"])

    resumed = killed_then_resumed(
        config, tmp_path / "run", killed_at_step=1, on_killed=scaler_state
    )
    assert resumed.resumed_from_epoch == 1
    assert scales and scales[0] < 2.0**16  # backed off from its initial scale: steps overflowed
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in straight.history]
    assert resumed.test == straight.test


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this host")
def test_a_checkpoint_that_cannot_be_written_keeps_the_previous_one(tmp_path: Path) -> None:
    from asc_sweep.errors import CheckpointError
    from asc_sweep.run.checkpoint import CHECKPOINT, save_checkpoint

    run_dir = tmp_path / "run"
    save_checkpoint(run_dir, {"config_hash": "h", "epoch": 1, "w": torch.arange(4.0)})
    (run_dir / f".{CHECKPOINT}.tmp").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt: cannot write .*No space left"):
        save_checkpoint(run_dir, {"config_hash": "h", "epoch": 2, "w": torch.zeros(1 << 20)})
    assert sorted(p.name for p in run_dir.iterdir()) == [CHECKPOINT]
    state = load_checkpoint(run_dir, "h")
    assert state is not None and state["epoch"] == 1 and torch.equal(state["w"], torch.arange(4.0))
    with pytest.raises(CheckpointError, match="cannot write"):  # a file where the folder goes
        save_checkpoint(run_dir / CHECKPOINT / "sub", {"epoch": 3})


def test_deterministic_knob_pins_cudnn_and_is_the_default() -> None:
    from asc_sweep.run.runtime import seed_everything

    assert RunConfig().deterministic is True
    seed_everything(3, deterministic=False)
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    seed_everything(3)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


@pytest.mark.parametrize("training", [False, True])
def test_a_clip_batched_with_longer_ones_is_seen_as_it_is_alone(training: bool) -> None:
    """Past a clip's end its features hold the normalised mean (0), the value a convolution
    pads with at the tensor's edge, in training (after every augmentation) as in evaluation.
    Its frames are those it has alone, the last ones too, whose windows reach past its end
    (its reflection there, as alone: ``LogMel.pad_ends``). The log-mel of the zeros, far
    below any recording, moved a short clip's test probabilities by 0.05 in dcase2018_cnn
    (0.10 in sb_cnn) with the clips it was batched with; the last frames alone, by 0.003."""
    from asc_sweep.data.features import LogMel, fit_normalization
    from asc_sweep.models import build_model
    from asc_sweep.models.common import ModelSpec

    torch.manual_seed(0)
    time_ = torch.linspace(0, 1, 16000)
    short = torch.randn(1, 16000) * 0.1 * (1 + torch.sin(6 * time_))
    long = torch.randn(1, 32000) * 0.1
    batch, lengths = torch.zeros(2, 32000), torch.tensor([16000, 32000])
    batch[0, :16000], batch[1] = short[0], long[0]
    front = LogMel(sample_rate=16000, n_mels=64)
    fit_normalization(front, [(batch, lengths)])
    torch.manual_seed(1)
    model = build_model("dcase2018_cnn", ModelSpec(4, 64, 16000))
    knobs = dict(gain_db=0.0, freq_shift=2, filter_db=6.0, mixstyle=1.0) if training else {}
    net = train.Pipeline(front, model, training, **knobs).train(training)  # type: ignore[arg-type]
    with torch.no_grad():
        torch.manual_seed(2)
        x, frames = net.features(batch, lengths)
        n = int(frames[0])
        assert n < x.shape[-1] and torch.equal(x[0, :, n:], torch.zeros_like(x[0, :, n:]))
        if training:
            return
        alone, _ = net.features(short, lengths[:1])
        assert torch.allclose(alone[0], x[0, :, :n], atol=1e-4)
        probs = torch.softmax(net(batch, lengths)[0], 0)
        assert (probs - torch.softmax(net(short, lengths[:1])[0], 0)).abs().max() < 1e-4


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_a_run_s_test_figures_do_not_depend_on_how_its_clips_are_batched(
    arch: str, tmp_path: Path
) -> None:
    """UrbanSound8K's clips differ in length (here 0.2 to 0.7 s, at six rates): a run's test
    figures are the same, to float rounding, whether each test batch holds one clip or all of
    them, padded to the longest (with a trained network's batch norm; piczak_cnn's deltas
    once read the zeros past a clip's end, where alone they replicate its last frame, and
    cnn6's deeper convolutions once met batch-normalised padding)."""
    from . import layouts
    from .test_models import as_if_trained

    layouts.make_urbansound8k(tmp_path / "us8k")
    knobs = {"dataset": "urbansound8k", "data_root": str(tmp_path / "us8k"), "fold": 1,
             "sample_rate": 16000, "n_mels": 40, "arch": arch, "batch_size": 8, "device": "cpu",
             "val_fraction": 0.25, "amp": False}  # fmt: skip
    config = RunConfig.from_dict(knobs)  # float32: bf16 kernels round by the batch's shape
    torch.manual_seed(0)
    setup = train.set_up(config)
    as_if_trained(setup.net.model)
    if setup.net.front is not None:
        batches = ((w, n) for w, n, _ in setup.loaders["train"])
        train.fit_normalization(setup.net.front, batches)
    together = train.evaluate(setup, "test")
    lengths = {int(n) for _, ns, _ in setup.loaders["test"] for n in ns}
    assert len(lengths) > 2  # the test batch holds clips of several lengths
    setup.loaders["test"] = train.make_loader(
        setup.data, setup.data.test, batch_size=1, crop_samples=None, shuffle=False, seed=0
    )
    alone = train.evaluate(setup, "test")
    assert alone["accuracy"] == together["accuracy"]
    assert alone["log_loss"] == pytest.approx(together["log_loss"], abs=1e-5)
