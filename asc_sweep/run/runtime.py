"""Where and how a run executes: device choice, seeding, and the environment it records."""

from __future__ import annotations

import functools
import platform
import random
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from asc_sweep.errors import DeviceUnavailable

PACKAGES = ("asc-sweep", "torch", "torchaudio", "numpy", "wandb", "sweeps", "soundfile")


def pick_device(choice: str) -> torch.device:
    """``auto``: the GPU when there is one; ``cuda`` without one is an error naming the knob."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            "device: cuda was asked for but no CUDA GPU is visible on this host "
            "(CUDA_VISIBLE_DEVICES, or a container started without GPUs?); allowed here: auto, cpu"
        )
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (every device). ``deterministic`` also pins cuDNN to
    deterministic kernels and turns off its autotuner, whose choice of kernel varies from run
    to run; without it, GPU results of a resumed run differ from an uninterrupted one in the
    last bits (and grow apart over epochs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware: Intel AMX (Xeon 4th
    generation and later) or AVX512-BF16 (AMD EPYC from Zen 4, Intel Cooper Lake). There,
    mixed precision trains most convolutional models 1.6x to 4x faster than float32
    (``benchmarks/models.py``, on both kinds); elsewhere bfloat16 is emulated and slower."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(torch.cpu, name, None)
        try:
            if probe and probe():
                return True
        except RuntimeError:
            continue
    return False


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


PACKAGE_DIR = Path(__file__).resolve().parents[1]


@functools.cache
def git_revision(package: Path = PACKAGE_DIR) -> str | None:
    """The git revision of the asc-sweep source this process runs, ``+dirty`` where its
    tracked files differ from that revision; None where the package is not a git checkout's
    (an installed release: its version says which). Read once a process: the code a process
    runs is the code it imported."""

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", "-C", str(package), *args], capture_output=True,
                                  text=True, timeout=5, check=False)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None

    # The package's own files must be tracked: an installed copy may sit in a virtual
    # environment inside some other repository (a project's .venv).
    tracked = git("ls-files", "--error-unmatch", "__init__.py")
    head = git("rev-parse", "HEAD")
    if not tracked or tracked.returncode or not head or head.returncode or not head.stdout.strip():
        return None
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    dirty = bool(changed and changed.stdout.strip())
    return head.stdout.strip() + ("+dirty" if dirty else "")


def environment(device: torch.device, precision: str = "float32") -> dict[str, object]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "packages": versions,
        "device": device_name(device),
        "device_type": device.type,
        "torch_threads": torch.get_num_threads(),
        "precision": precision,  # of training: float32, or autocast's bfloat16 / float16
        "git_revision": git_revision(),
    }
