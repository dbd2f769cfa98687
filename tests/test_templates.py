"""The launch templates in agents/: valid files whose commands are real asc-sweep invocations."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer
import yaml

from asc_sweep.cli import app

AGENTS = Path(__file__).parents[1] / "agents"


def _agent_options() -> set[str]:
    command = typer.main.get_command(app).commands["agent"]  # type: ignore[attr-defined]
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


def _check_agent_args(args: list[str]) -> None:
    assert args[0] == "agent" and len(args) >= 2
    options = {a for a in args[2:] if a.startswith("--")}
    assert options <= _agent_options(), options - _agent_options()


def test_compose_runs_one_agent_per_gpu_on_a_postgres_store() -> None:
    compose = yaml.safe_load((AGENTS / "docker-compose.yml").read_text())
    services = dict(compose["services"])
    postgres = services.pop("postgres")
    assert postgres["image"].startswith("postgres:") and "healthcheck" in postgres
    assert "PGPASSWORD" in postgres["environment"]["POSTGRES_PASSWORD"]  # from the environment
    gpus = []
    for service in services.values():
        _check_agent_args(service["command"])
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        gpus += device["device_ids"]
        assert any(v.endswith(":/cache") for v in service["volumes"])
        env = service["environment"]
        assert "postgresql://asc@postgres:5432/asc" in env["ASC_SWEEP_STORE"]
        assert ":" not in env["ASC_SWEEP_STORE"].split("//")[1].split("@")[0]  # no password
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert gpus == [str(i) for i in range(len(services))]


def test_kubernetes_job_runs_agents_with_a_gpu_each() -> None:
    job = yaml.safe_load((AGENTS / "k8s-job.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["parallelism"] >= 1
    (container,) = job["spec"]["template"]["spec"]["containers"]
    _check_agent_args(container["args"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e for e in container["env"]}
    # Secrets are never in the file: the W&B key, the store URL and its password.
    for name in ("WANDB_API_KEY", "ASC_SWEEP_STORE", "PGPASSWORD"):
        assert "secretKeyRef" in env[name]["valueFrom"]
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_slurm_array_script() -> None:
    script = AGENTS / "slurm-array.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage: sbatch --array" in usage.stderr
    assert "#SBATCH --gres=gpu:1" in script.read_text()
    assert "--threads" in _agent_options()


def test_slurm_array_refuses_a_local_store_across_nodes() -> None:
    """A store file is one host's: the array (tasks on many nodes) takes a PostgreSQL store or
    a W&B sweep, and refuses a password on the command line."""
    script = AGENTS / "slurm-array.sh"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "ASC_SWEEP_VENV": "/nonexistent"}
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                              env=env)  # fmt: skip

    local = run("k3x9qa", "--store", "/shared/asc.db")
    assert local.returncode == 2 and "cannot be shared between" in local.stderr
    assert "--store /shared" not in script.read_text()  # no example shares one any more
    leaky = run("k3x9qa", "--store", "postgresql://asc:hunter2@db:5432/asc")
    assert leaky.returncode == 2 and "PGPASSWORD" in leaky.stderr
    # A PostgreSQL store gets past the checks to the agent command (absent here: exit 127).
    shared = run("k3x9qa", "--store", "postgresql://asc@db:5432/asc")
    assert shared.returncode == 127 and "/nonexistent/bin/asc-sweep" in shared.stderr
