"""Fault-injection soak: a real sweep survives random kill -9, SIGTERM and SIGINT of its agents.

A grid of real training runs (synthetic scenes, several epochs each) runs with N agent
processes while a driver sends random signals at random moments: any time (mid-epoch, mid
store write), or the moment a checkpoint is being written (its temporary file exists). A
killed agent is restarted at once. Leases are short, so a kill -9'd agent's run goes back to
the queue within seconds.

At the end it checks what a user relies on, against the same grid run undisturbed:

* every configuration finished exactly once (one store row each, one "finished" report in all
  agent logs), none lost, none failed;
* every run's stored history is continuous from epoch 1 to the last;
* every run's final metrics and per-epoch training losses equal the undisturbed run's
  (CPU, one thread per agent: deterministic);
* the report is complete (no configuration with missing folds).

Usage: python benchmarks/soak.py [--folds 4 --inits 3 --rates 2] [--agents 3] [--events 50]
       [--epochs 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from asc_sweep.backends import LocalBackend
from asc_sweep.backends.local import LocalController
from asc_sweep.data.synth import SynthSpec, generate
from asc_sweep.report import write_report
from asc_sweep.sweep.spec import parse_spec

SIGNALS = {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}
FACTORS = {
    "fold": [1, 2, 3, 4],
    "init": ["default", "he_normal", "xavier_uniform", "orthogonal"],
    "sample_rate": [8000, 16000],
}


@dataclass
class SoakResult:
    runs: int
    agents: int
    events: dict[str, int] = field(default_factory=dict)  # signal -> count
    at_checkpoint: int = 0  # events sent while a checkpoint was being written
    restarts: int = 0
    finished: int = 0
    lost: int = 0
    duplicated: int = 0
    failed: int = 0
    broken_histories: int = 0
    mismatches: int = 0
    report_complete: bool = False
    requeues_seen: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.failed or self.broken_histories
                    or self.mismatches or not self.report_complete or self.problems)  # fmt: skip


def grid_spec(folds: int, inits: int, rates: int, epochs: int, data_root: Path) -> dict[str, Any]:
    """folds x inits x sample rates real training runs of the DCASE 2017 MLP."""
    fixed = {"dataset": "synth", "data_root": str(data_root), "arch": "dcase2017_mlp",
             "n_mels": 32, "epochs": epochs, "batch_size": 8, "crop_seconds": 0.5, "patience": 0,
             "device": "cpu", "val_fraction": 0.25, "lr": 0.003}  # fmt: skip
    params: dict[str, Any] = {k: {"value": v} for k, v in fixed.items()}
    params["fold"] = {"values": FACTORS["fold"][:folds]}
    params["init"] = {"values": FACTORS["init"][:inits]}
    params["sample_rate"] = {"values": FACTORS["sample_rate"][:rates]}
    return {"method": "grid", "metric": {"name": "val/accuracy", "goal": "maximize"},
            "parameters": params}  # fmt: skip


class Agents:
    """N supervised agent processes; each incarnation logs to its own file."""

    def __init__(self, store: Path, sweep_id: str, n: int, log_dir: Path, env: dict[str, str]):
        self.store, self.sweep_id, self.log_dir, self.env = store, sweep_id, log_dir, env
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n
        self.logs: list[IO[bytes]] = []
        self.started = 0
        self.problems: list[str] = []
        for i in range(n):
            self.start(i)

    def start(self, i: int) -> None:
        log = open(self.log_dir / f"agent-{self.started:03d}.log", "wb")  # noqa: SIM115
        self.logs.append(log)
        cmd = [sys.executable, "-m", "asc_sweep", "agent", self.sweep_id, "--store",
               str(self.store), "--tracking", "off", "--threads", "1", "--poll-seconds", "0.2"]  # fmt: skip
        self.procs[i] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.started += 1

    def live(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is None]

    def reap(self) -> list[str]:
        """Restart agents that exited while the sweep is unfinished; returns their problems."""
        problems = []
        finished = self._finished()
        for i, p in enumerate(self.procs):
            if p is None or p.poll() is None:
                continue
            if p.returncode == 2:  # a usage error would repeat forever: report, do not restart
                problems.append(f"agent exited 2 (usage error); see {self.log_dir}")
                self.procs[i] = None
            elif finished:
                self.procs[i] = None
            else:
                self.start(i)
        return problems

    def _finished(self) -> bool:
        with LocalBackend(self.store) as backend:
            return backend.get_sweep(self.sweep_id).state == "finished"

    def wait_all(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while any(p is not None for p in self.procs):
            self.problems += self.reap()
            if time.time() > deadline:
                raise TimeoutError("agents did not finish the sweep in time")
            time.sleep(0.2)
        for log in self.logs:
            log.close()


def checkpoint_writing(runs_dir: Path) -> bool:
    return any(runs_dir.glob("*/.checkpoint.pt.tmp")) if runs_dir.exists() else False


def run_sweep(work: Path, spec: dict[str, Any], agents: int, env: dict[str, str],
              events: int = 0, seed: int = 0, result: SoakResult | None = None) -> LocalBackend:  # fmt: skip
    """Run the grid in a store under ``work``, sending ``events`` random signals meanwhile."""
    work.mkdir(parents=True)
    store = work / "sweep.db"
    backend = LocalBackend(store)
    # Short leases bring a kill -9'd agent's run back fast; enough attempts that no run is
    # given up on however often it is hit.
    sweep = backend.create_sweep(parse_spec(yaml.safe_dump(spec)), lease_seconds=3,
                                 max_attempts=10_000, seed=0)  # fmt: skip
    logs = work / "logs"
    logs.mkdir()
    pool = Agents(store, sweep.id, agents, logs, env)
    rng = random.Random(seed)
    runs_dir = work / "asc-sweep-runs" / sweep.id
    sent = 0
    while sent < events and backend.get_sweep(sweep.id).state != "finished":
        pool.problems += pool.reap()
        time.sleep(rng.uniform(0.3, 1.5))
        at_checkpoint = rng.random() < 0.3
        if at_checkpoint:  # wait (briefly) for a checkpoint being written
            deadline = time.time() + 3
            while not checkpoint_writing(runs_dir) and time.time() < deadline:
                time.sleep(0.002)
            at_checkpoint = checkpoint_writing(runs_dir)
        live = pool.live()
        if not live:
            continue
        name = rng.choice(list(SIGNALS))
        proc = pool.procs[rng.choice(live)]
        assert proc is not None
        try:
            proc.send_signal(SIGNALS[name])
        except ProcessLookupError:
            continue
        sent += 1
        if result is not None:
            result.events[name] = result.events.get(name, 0) + 1
            result.at_checkpoint += int(at_checkpoint)
    pool.wait_all(timeout=1800)
    if result is not None:
        result.restarts = pool.started - agents
        result.problems += pool.problems
        text = "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log")))
        result.requeues_seen = text.count("back in the queue")
        reports = [line.split() for line in text.splitlines()]
        finished = Counter(w[0] for w in reports if len(w) > 1 and w[1] == "finished"
                           and w[0].startswith(f"{sweep.id}-"))  # fmt: skip
        result.duplicated = sum(n - 1 for n in finished.values() if n > 1)
    return backend


def soak(folds: int = 4, inits: int = 3, rates: int = 2, agents: int = 3, events: int = 50,
         epochs: int = 4, seed: int = 0, work: Path | None = None) -> SoakResult:  # fmt: skip
    """The whole soak in ``work`` (a temporary folder by default)."""
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work or tmp)
        data = base / "synth"
        generate(data, SynthSpec(classes=4, clips_per_class=8, seconds=1.0, sample_rate=16000),
                 workers=1)  # fmt: skip
        env = dict(os.environ, ASC_SWEEP_CACHE=str(base / "cache"), PYTHONUNBUFFERED="1")
        env.pop("ASC_SWEEP_STORE", None)
        spec = grid_spec(folds, inits, rates, epochs, data)
        runs = folds * inits * rates
        result = SoakResult(runs=runs, agents=agents)
        disturbed = run_sweep(base / "soak", spec, agents, env, events, seed, result)
        calm = run_sweep(base / "calm", spec, agents, env)
        compare(disturbed, calm, runs, epochs, result, base / "report")
        disturbed.close()
        calm.close()
    result.seconds = time.time() - t0
    return result


def compare(disturbed: LocalBackend, calm: LocalBackend, runs: int, epochs: int,
            result: SoakResult, report_dir: Path) -> None:  # fmt: skip
    (sweep,) = disturbed.list_sweeps()
    (ref_sweep,) = calm.list_sweeps()
    rows = disturbed.runs(sweep.id)
    reference = {r.config_hash: r for r in calm.runs(ref_sweep.id)}
    hashes = Counter(r.config_hash for r in rows)
    result.duplicated += sum(n - 1 for n in hashes.values() if n > 1)
    result.lost = len(set(reference) - set(hashes)) + sum(
        r.state in ("pending", "running") for r in rows
    )
    result.failed = sum(r.state == "failed" for r in rows)
    result.finished = sum(r.state == "finished" for r in rows)
    for run in rows:
        history = disturbed.history(run.id)
        if [h.get("epoch") for h in history] != list(range(1, epochs + 1)):
            result.broken_histories += 1
            result.problems.append(f"{run.name}: stored epochs {[h.get('epoch') for h in history]}")
        ref = reference.get(run.config_hash)
        if ref is None or run.summary is None or ref.summary is None:
            continue
        same = all(run.summary.get(k) == ref.summary.get(k)
                   for k in ("test/accuracy", "test/log_loss", "test/macro_f1", "best_epoch"))  # fmt: skip
        same = same and [h["train/loss"] for h in history] == [
            h["train/loss"] for h in calm.history(ref.id)
        ]
        if not same:
            result.mismatches += 1
            result.problems.append(f"{run.name}: metrics differ from the undisturbed run")
    records = LocalController(disturbed, sweep).records()
    data, _ = write_report(records, report_dir, sweep_id=sweep.id)
    result.report_complete = len(records) == runs and all(not c.missing for c in data.cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--folds", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--inits", type=int, default=3, choices=range(1, 5))
    parser.add_argument("--rates", type=int, default=2, choices=range(1, 3))
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    result = soak(args.folds, args.inits, args.rates, args.agents, args.events, args.epochs,
                  args.seed)  # fmt: skip
    sent = sum(result.events.values())
    print(f"{result.runs} runs x {args.epochs} epochs, {args.agents} agents, seed {args.seed}: "
          f"{result.seconds:.0f} s\n")  # fmt: skip
    print(
        "| events sent | kill -9 | SIGTERM | SIGINT | at a checkpoint write | agent restarts "
        "| requeued at once | finished | lost | duplicated | failed | broken histories "
        "| metric mismatches | report complete |"
    )
    print("| " + " | ".join(["---:"] * 13) + " | --- |")
    print(f"| {sent} | {result.events.get('kill -9', 0)} | {result.events.get('SIGTERM', 0)} | "
          f"{result.events.get('SIGINT', 0)} | {result.at_checkpoint} | {result.restarts} | "
          f"{result.requeues_seen} | {result.finished} | {result.lost} | {result.duplicated} | "
          f"{result.failed} | {result.broken_histories} | {result.mismatches} | "
          f"{'yes' if result.report_complete else 'no'} |")  # fmt: skip
    for problem in result.problems:
        print(f"- {problem}")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
