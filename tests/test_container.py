"""The agent image (docker/Dockerfile), built and run with podman.

Marked ``container``: the build installs PyTorch (several GB) and takes minutes, so ``make test``
leaves it out; ``make test-container`` (run by CI) runs it. No image registry is reachable, so
the base is a Debian image made with debootstrap from the machine's own mirror, the stand-in
for the default ``python:3.11-slim-bookworm`` base.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from asc_sweep.backends import LocalBackend

pytestmark = pytest.mark.container

ROOT = Path(__file__).parents[1]
BASE = "localhost/debian-python:bookworm"
IMAGE = "localhost/asc-sweep:test"


@pytest.fixture(scope="module")
def podman() -> Iterator[list[str]]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "containers.conf"
        conf.write_text(
            "[containers]\ndefault_ulimits=[]\n"
        )  # setrlimit is refused in a VM sandbox
        os.environ["CONTAINERS_CONF"] = str(conf)
        cmd = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
        if subprocess.run([*cmd, "image", "exists", BASE]).returncode != 0:
            _make_base(cmd, Path(tmp))
        yield cmd


def _make_base(podman: list[str], tmp: Path) -> None:
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (needed to make a base image offline)")
    sources = "\n".join(p.read_text() for p in Path("/etc/apt/sources.list.d").glob("*.sources"))
    mirror = re.search(r"^URIs:\s*(\S+)", sources, re.M)
    rootfs = tmp / "rootfs"
    subprocess.run(
        ["debootstrap", "--variant=minbase",
         "--include=python3,python3-venv,python3-pip,ca-certificates", "bookworm", str(rootfs),
         mirror.group(1) if mirror else "http://deb.debian.org/debian"],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        [*podman, "import", "-", BASE], stdin=tar.stdout, check=True, capture_output=True
    )
    tar.wait()


@pytest.fixture(scope="module")
def image(podman: list[str]) -> list[str]:
    build = subprocess.run(
        [*podman, "build", "--network", "host", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
         "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, "-f", "docker/Dockerfile", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return podman


def _run(podman: list[str], *args: str, volume: Path | None = None, env: dict[str, str] | None = None,
         entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [*podman, "run", "--rm", "--network", "none"]
    if volume is not None:
        cmd += ["-v", f"{volume}:/runs"]
    for key, value in (env or {}).items():
        cmd += ["-e", f"{key}={value}"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return subprocess.run([*cmd, IMAGE, *args], capture_output=True, text=True, timeout=600)


SPEC = """\
method: grid
metric: {name: val/accuracy, goal: maximize}
parameters:
  dataset: {value: synth}
  data_root: {value: /runs/synth}
  arch: {value: dcase2017_mlp}
  epochs: {value: 1}
  n_mels: {value: 40}
  fold: {values: [1, 2]}
"""


def test_the_image_runs_a_sweep_on_a_mounted_store(image: list[str], tmp_path: Path) -> None:
    version = _run(image, "--version")
    assert version.returncode == 0 and version.stdout.startswith("asc-sweep ")
    whoami = _run(image, "-c", "id -u", entrypoint="sh")
    assert whoami.stdout.strip() not in ("", "0"), whoami  # agents do not run as root
    tmp_path.chmod(0o777)  # the image's user (uid 10001) writes the mounted folder
    (tmp_path / "spec.yaml").write_text(SPEC)
    script = (
        "asc-sweep data synth /runs/synth --clips-per-class 8 --seconds 1 --sample-rate 16000"
        " && asc-sweep create /runs/spec.yaml --store /runs/sweeps.db"
        " && asc-sweep agent --store /runs/sweeps.db --tracking offline"
    )
    run = _run(image, "-c", script, volume=tmp_path, entrypoint="sh")
    assert run.returncode == 0, run.stderr[-3000:]
    # The store written inside the container is the host's to read.
    with LocalBackend(tmp_path / "sweeps.db") as backend:
        (sweep,) = backend.list_sweeps()
        runs = backend.runs(sweep.id)
        assert [r.state for r in runs] == ["finished", "finished"]
        assert all(0.0 <= (r.summary or {})["test/accuracy"] <= 1.0 for r in runs)
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # W&B files under WANDB_DIR=/runs
    status = _run(image, "status", "--store", "/runs/sweeps.db", "--json", volume=tmp_path)
    assert json.loads(status.stdout)["finished"] == 2


def test_entrypoint_and_wandb_command(image: list[str]) -> None:
    no_gpu = _run(image, "agent", "lab/asc/swp123", env={"AGENTS_PER_GPU": "2"})
    assert no_gpu.returncode == 2 and "no GPU is visible" in no_gpu.stderr
    # The command a W&B sweep registers resolves inside the image.
    wandb_run = _run(image, "wandb-run", "/runs/args.json")
    assert wandb_run.returncode == 2 and "W&B's agent" in wandb_run.stderr
