"""The GPU path, on a CUDA host (skipped, with the reason, everywhere else): every architecture
trains under bf16 and under fp16 with loss scaling (and the frame-level loss and votes of
frame_targets), a run killed on the GPU resumes bit for bit with deterministic kernels (and
resumes from a checkpoint written where more GPUs were seen), the host never waits for the GPU
batch by batch, clips held on the GPU train the same run as host batches, a clip batched with a
longer one is classified as it is alone, augmentations draw what they draw on a CPU, masked
pooling under autocast matches float32, and two agents share one GPU.
``benchmarks/gpu.sh`` runs these first on a GPU host."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from asc_sweep.backends import LocalBackend
from asc_sweep.models.common import masked_mean, time_mask
from asc_sweep.run.train import train_and_evaluate
from asc_sweep.sweep.config import ARCH_NAMES
from asc_sweep.sweep.spec import parse_spec

from .conftest import ROOT, agent_env
from .test_models import change_batched_against_alone
from .test_train import killed_then_resumed, tiny

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this host"),
]


@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_every_architecture_trains_on_cuda(arch: str, amp_dtype: str, synth_root: Path) -> None:
    config = tiny(synth_root, arch=arch, epochs=1, device="cuda", amp_dtype=amp_dtype,
                  specaugment=True, mixup=0.2)  # fmt: skip
    result = train_and_evaluate(config)
    assert result.environment["device_type"] == "cuda"
    assert math.isfinite(result.history[0]["train/loss"])
    assert 0 <= result.test["accuracy"] <= 1 and math.isfinite(result.test["log_loss"])


@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_frame_targets_train_and_vote_on_cuda(amp_dtype: str, synth_root: Path) -> None:
    """The DCASE 2017 recipe's frame-level loss and frame votes under autocast."""
    config = tiny(synth_root, arch="dcase2017_mlp", epochs=1, device="cuda",
                  amp_dtype=amp_dtype, frame_targets=True, voting="majority")  # fmt: skip
    result = train_and_evaluate(config)
    assert math.isfinite(result.history[0]["train/loss"])
    assert 0 <= result.test["accuracy"] <= 1


@pytest.mark.parametrize("arch", ["dcase2018_cnn", "crnn"])  # crnn: cuDNN's GRU, gathers
def test_a_run_killed_on_cuda_resumes_bit_for_bit(
    arch: str, synth_root: Path, tmp_path: Path
) -> None:
    config = tiny(synth_root, arch=arch, device="cuda", deterministic=True, specaugment=True,
                  mixup=0.2)  # fmt: skip
    straight = train_and_evaluate(config)
    resumed = killed_then_resumed(config, tmp_path / "run", killed_at_step=1)
    assert resumed.resumed_from_epoch == 1
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in straight.history]
    assert resumed.test == straight.test


def test_a_checkpoint_written_where_more_gpus_were_seen_resumes(
    synth_root: Path, tmp_path: Path
) -> None:
    """An unpinned agent on a bigger host saved a random state per GPU; this process, which
    sees fewer, resumes with the first ones (selection ``average``: its weights back on the
    GPU, the first epoch after the resume inside the averaging window)."""
    config = tiny(synth_root, device="cuda", selection="average")

    def more_gpus(run_dir: Path) -> None:
        path = run_dir / "checkpoint.pt"
        state = torch.load(path, weights_only=True)
        state["rng"]["cuda"] = [*state["rng"]["cuda"], state["rng"]["cuda"][0]]
        torch.save(state, path)

    resumed = killed_then_resumed(config, tmp_path / "run", killed_at_step=1, on_killed=more_gpus)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_run == 3


@pytest.mark.parametrize(
    ("resident", "knobs"),
    [
        ("always", {}),
        ("never", {}),
        ("never", {"arch": "crnn"}),  # its GRU over clips of several lengths
        # segments voted into clips: 7 a clip (gathered across clips) and 16 (a clip alone)
        ("never", {"eval_segment_seconds": 0.25, "eval_hop_seconds": 0.125}),
        ("always", {"eval_segment_seconds": 0.25, "eval_hop_seconds": 0.125}),
        ("never", {"eval_segment_seconds": 0.25, "eval_hop_seconds": 0.05, "voting": "majority"}),
    ],
)
def test_the_host_does_not_wait_for_the_gpu_batch_by_batch(
    resident: str, knobs: dict[str, object], synth_root: Path
) -> None:
    """Training and evaluation read nothing back from the GPU a batch: the host queues the
    next steps' kernels while the GPU runs. torch's sync debug mode warns at every wait; a run
    with twice the batches (half the batch size) must wait as often as the other."""
    waits = []
    for batch_size in (4, 8):
        config = tiny(synth_root, device="cuda", batch_size=batch_size, epochs=2, resident=resident,
                      specaugment=True, mixup=0.2, gain_db=3.0, freq_shift=2, filter_db=3.0,
                      mixstyle=0.5, **knobs)  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_and_evaluate(config)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        waits.append(sum("synchroniz" in str(w.message) for w in caught))
    assert waits[0] == waits[1], f"waits with batches of 4 and of 8: {waits}"


def test_clips_resident_on_the_gpu_train_the_same_run_as_host_batches(synth_root: Path) -> None:
    """``resident: auto`` holds a small fold on the GPU; the run equals the host-batch one."""
    from asc_sweep.data.prepare import prepare_fold, resident_device

    config = tiny(synth_root, device="cuda", deterministic=True, gain_db=3.0)
    _, data = prepare_fold(config)
    assert resident_device("auto", torch.device("cuda"), data) is not None
    runs = [train_and_evaluate(tiny(synth_root, device="cuda", deterministic=True, gain_db=3.0,
                                    resident=r)) for r in ("auto", "never")]  # fmt: skip
    assert [h["train/loss"] for h in runs[0].history] == [h["train/loss"] for h in runs[1].history]
    assert runs[0].test == runs[1].test


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_a_clip_batched_on_cuda_is_classified_as_it_is_alone(arch: str) -> None:
    """As on a CPU (``test_models.py``), where each layer's mask is a multiply on the device
    whether or not a clip is short. In float32; cuDNN may pick other kernels for a batch of
    two than for one clip, so the two agree to float32 rounding, not bit for bit."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        assert change_batched_against_alone(arch, torch.device("cuda")) < 1e-4
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def test_every_augmentation_draws_on_cuda_what_it_draws_on_a_cpu() -> None:
    """The draws come from torch's CPU stream on any device, so a run's augmentations do not
    depend on where it runs (masks and shifts exactly; gains to float32 rounding)."""
    from asc_sweep.run.augment import (
        SpecAugment,
        freq_mixstyle,
        random_filter,
        random_gain,
        shift_bands,
    )

    x, frames = torch.randn(16, 40, 120) + 1, torch.randint(1, 121, (16,))
    std = torch.rand(40, 1) + 0.5
    spec = SpecAugment(freq=6, time=30).train()
    steps = [
        lambda x, f: spec(x, f),
        lambda x, f: shift_bands(x, 3),
        lambda x, f: random_filter(x, 6.0, std.to(x.device)),
        lambda x, f: freq_mixstyle(x, 1.0, f),
        lambda x, f: random_gain(x.flatten(1), 6.0).view_as(x),
    ]
    for index, step in enumerate(steps):
        torch.manual_seed(index)
        on_cpu = step(x, frames)
        torch.manual_seed(index)
        on_gpu = step(x.cuda(), frames.cuda()).cpu()
        if index < 2:
            assert torch.equal(on_gpu, on_cpu), index
        else:
            assert torch.allclose(on_gpu, on_cpu, atol=1e-5), index


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_masked_mean_under_autocast_matches_float32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 64, 400, device="cuda") + 2
    lengths = torch.randint(260, 401, (32,), device="cuda")
    mask = time_mask(lengths, 1, 400)
    exact = masked_mean(x, mask)
    with torch.autocast("cuda", dtype=dtype):
        low = masked_mean(x.to(dtype), mask)
    assert torch.allclose(low.float(), exact, rtol=2**-7 if dtype == torch.bfloat16 else 2**-10)


def test_two_agents_share_one_gpu(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    spec = parse_spec(
        f"method: grid\nparameters:\n  dataset: {{value: synth}}\n"
        f"  data_root: {{value: {synth_root}}}\n  sample_rate: {{value: 16000}}\n"
        "  n_mels: {value: 40}\n  epochs: {value: 2}\n  crop_seconds: {value: 0.5}\n"
        "  device: {value: cuda}\n  fold: {values: [1, 2, 3, 4]}\n  seed: {values: [1, 2]}\n"
    )
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(spec)
    cmd = [sys.executable, "-m", "asc_sweep", "launch", sweep.id, "--store", str(store),
           "--agents-per-gpu", "2", "--gpus", "0", "--tracking", "off"]  # fmt: skip
    proc = subprocess.run(cmd, env=agent_env(), capture_output=True, text=True, timeout=600,
                          cwd=ROOT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with LocalBackend(store) as backend:
        runs = backend.runs(sweep.id)
    assert len(runs) == 8 and {r.state for r in runs} == {"finished"}  # device: cuda held
    assert len({r.agent for r in runs}) == 2
