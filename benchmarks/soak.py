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
       [--epochs 12] [--seed 0]
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
from asc_sweep.errors import StoreError
from asc_sweep.report import write_report
from asc_sweep.sweep.spec import parse_spec

# When signals land: while a checkpoint is written, mid-run (past the first epoch: mid-epoch,
# mid store write), or at any moment (agent start-up, a claim, test evaluation).
MODES = {"checkpoint": 0.3, "mid-run": 0.5, "any": 0.2}
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
    moments: dict[str, int] = field(default_factory=dict)  # MODES -> count
    restarts: int = 0
    finished: int = 0
    lost: int = 0
    duplicated: int = 0
    failed: int = 0
    broken_histories: int = 0
    mismatches: int = 0
    report_complete: bool = False
    requeues_seen: int = 0
    resumed: int = 0  # runs that finished from a checkpoint of an earlier attempt
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.failed or self.broken_histories
                    or self.mismatches or not self.report_complete or self.problems)  # fmt: skip


def grid_spec(folds: int, inits: int, rates: int, epochs: int, data_root: Path) -> dict[str, Any]:
    """folds x inits x sample rates real training runs of the DCASE 2018 CNN (a few seconds
    each here, so that most signals land mid-run)."""
    fixed = {"dataset": "synth", "data_root": str(data_root), "arch": "dcase2018_cnn",
             "n_mels": 32, "epochs": epochs, "batch_size": 8, "crop_seconds": 1.0, "patience": 0,
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
        # A reader can meet a transient SQLite error while a killed agent's WAL is recovered;
        # agents retry such errors, and so does the harness.
        for attempt in range(20):
            try:
                with LocalBackend(self.store) as backend:
                    return backend.get_sweep(self.sweep_id).state == "finished"
            except StoreError:
                if attempt == 19:
                    raise
                time.sleep(0.1)
        return False

    def wait_all(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while any(p is not None for p in self.procs):
            self.problems += self.reap()
            if time.time() > deadline:
                raise TimeoutError("agents did not finish the sweep in time")
            time.sleep(0.2)
        for log in self.logs:
            log.close()


def holder(backend: LocalBackend, sweep_id: str, pool: Agents, run_names: set[str] | None,
           rng: random.Random, min_epochs: int = 0) -> int | None:  # fmt: skip
    """The pool index of a live agent, drawn at random among those holding a running run (one
    of ``run_names``, when given, with at least ``min_epochs`` stored epochs)."""
    live = {pool.procs[i].pid: i for i in pool.live()}  # type: ignore[union-attr]
    found = []
    for run in backend.runs(sweep_id, ["running"]):
        pid = int((run.agent or ":0").rsplit(":", 1)[1])
        if pid not in live or (run_names is not None and run.name not in run_names):
            continue
        if len(backend.history(run.id)) >= min_epochs:
            found.append(live[pid])
    return rng.choice(found) if found else None


def pick_target(mode: str, backend: LocalBackend, sweep_id: str, pool: Agents, runs_dir: Path,
                rng: random.Random) -> tuple[int | None, str]:  # fmt: skip
    """An agent to signal, and when: the one writing a checkpoint, one mid-run (past its first
    epoch), or any live agent (start-up included). Waits up to 15 s for the first two, then
    falls back to any."""
    deadline = time.time() + 15
    while time.time() < deadline and mode != "any":
        if mode == "checkpoint":
            writing = {p.parent.name for p in runs_dir.glob("*/.checkpoint.pt.tmp")}
            target = holder(backend, sweep_id, pool, writing, rng) if writing else None
        else:
            target = holder(backend, sweep_id, pool, None, rng, min_epochs=1)
        if target is not None:
            return target, mode
        time.sleep(0.002 if mode == "checkpoint" else 0.05)
    live = pool.live()
    return (rng.choice(live) if live else None), "any"


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
    total = sweep.total or 1
    while sent < events and backend.get_sweep(sweep.id).state != "finished":
        pool.problems += pool.reap()
        time.sleep(rng.uniform(0.1, 0.8))
        # Spread the events over the whole sweep: event i waits for i/events of it to be done.
        if backend.counts(sweep.id).done < sent * total // events:
            continue
        wanted = rng.choices(list(MODES), weights=list(MODES.values()))[0]
        target, mode = pick_target(wanted, backend, sweep.id, pool, runs_dir, rng)
        proc = None if target is None else pool.procs[target]
        if proc is None:
            continue
        name = rng.choice(list(SIGNALS))
        try:
            proc.send_signal(SIGNALS[name])
        except ProcessLookupError:
            continue
        sent += 1
        if result is not None:
            result.events[name] = result.events.get(name, 0) + 1
            result.moments[mode] = result.moments.get(mode, 0) + 1
    pool.wait_all(timeout=1800)
    if result is not None:
        result.restarts = pool.started - agents
        result.problems += pool.problems
        text = "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log")))
        result.requeues_seen = text.count(" back in the queue (")
        reports = [line.split() for line in text.splitlines()]
        finished = Counter(w[0] for w in reports if len(w) > 1 and w[1] == "finished"
                           and w[0].startswith(f"{sweep.id}-"))  # fmt: skip
        result.duplicated = sum(n - 1 for n in finished.values() if n > 1)
    return backend


def soak(folds: int = 4, inits: int = 3, rates: int = 2, agents: int = 3, events: int = 50,
         epochs: int = 12, seed: int = 0, work: Path | None = None, clips: int = 32) -> SoakResult:  # fmt: skip
    """The whole soak in ``work`` (a temporary folder by default)."""
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work or tmp)
        data = base / "synth"
        generate(data, SynthSpec(classes=4, clips_per_class=clips, seconds=2.0, sample_rate=16000),
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
    result.resumed = sum(bool((r.summary or {}).get("resumed_from_epoch")) for r in rows)
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
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    result = soak(args.folds, args.inits, args.rates, args.agents, args.events, args.epochs,
                  args.seed)  # fmt: skip
    sent = sum(result.events.values())
    print(f"{result.runs} runs x {args.epochs} epochs, {args.agents} agents, seed {args.seed}: "
          f"{result.seconds:.0f} s\n")  # fmt: skip
    print(
        "| events sent | kill -9 | SIGTERM | SIGINT | during a checkpoint write | mid-run | any moment | agent restarts "
        "| requeued at once | resumed from a checkpoint | finished | lost | duplicated | failed | broken histories "
        "| metric mismatches | report complete |"
    )
    print("| " + " | ".join(["---:"] * 16) + " | --- |")
    print(f"| {sent} | {result.events.get('kill -9', 0)} | {result.events.get('SIGTERM', 0)} | "
          f"{result.events.get('SIGINT', 0)} | {result.moments.get('checkpoint', 0)} | "
          f"{result.moments.get('mid-run', 0)} | {result.moments.get('any', 0)} | {result.restarts} | "
          f"{result.requeues_seen} | {result.resumed} | {result.finished} | {result.lost} | {result.duplicated} | "
          f"{result.failed} | {result.broken_histories} | {result.mismatches} | "
          f"{'yes' if result.report_complete else 'no'} |")  # fmt: skip
    for problem in result.problems:
        print(f"- {problem}")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
