"""Which folds hyperband stops: a finished sweep's real validation curves replayed through the
engine's hyperband, with thresholds drawn over every run (as W&B's controller draws them) and
among the runs on the same data (same fold and dataset, and seed where the spec lists seeds;
what asc-sweep's stores do).

Each run is replayed epoch by epoch as the one running run, against every other run's whole
history (the view late in a sweep, when most runs have ended); it counts as stopped at the
first epoch hyperband would stop it. The sweep itself need not have used early termination:
its runs' histories are what hyperband would have read.

Usage: python benchmarks/hyperband_folds.py --store FILE [--sweep ID] [--metric val/accuracy]
                                            [--min-iter 3] [--eta 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from asc_sweep.backends import LocalBackend
from asc_sweep.sweep import engine


def stopped(spec: Mapping[str, Any], runs: Sequence[engine.EngineRun]) -> dict[str, int]:
    """Each run hyperband would stop, with the epoch (1-based) at which it would."""
    out = {}
    for run in runs:
        others = [r for r in runs if r.name != run.name]
        for cut in range(1, len(run.history) + 1):
            me = engine.EngineRun(run.name, "running", run.params, run.history[:cut])
            if run.name in engine.runs_to_stop(spec, [*others, me]):
                out[run.name] = cut
                break
    return out


def pooled(runs: Sequence[engine.EngineRun]) -> list[engine.EngineRun]:
    """The runs with the knobs that set their data taken out: one pool, as W&B's controller
    sees a sweep."""
    return [
        engine.EngineRun(r.name, r.state, {k: v for k, v in r.params.items()
                                           if k not in engine.SAME_DATA}, r.history)
        for r in runs
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--sweep", default=None, help="sweep id [default: the latest]")
    parser.add_argument("--metric", default="val/accuracy")
    parser.add_argument("--min-iter", type=int, default=3)
    parser.add_argument("--eta", type=float, default=2.0)
    args = parser.parse_args()
    with LocalBackend(args.store) as store:
        sweep = store.get_sweep(args.sweep)
        finished = store.runs(sweep.id, ["finished", "stopped"])
        runs = [
            engine.EngineRun(str(r.id), "finished", r.params,
                             [{args.metric: h[args.metric]} for h in store.history(r.id)
                              if args.metric in h])
            for r in finished
        ]  # fmt: skip
    goal = "minimize" if args.metric.endswith("loss") else "maximize"
    spec = {**sweep.spec, "metric": {"name": args.metric, "goal": goal},
            "early_terminate": {"type": "hyperband", "min_iter": args.min_iter, "eta": args.eta}}  # fmt: skip
    by_fold: dict[Any, list[engine.EngineRun]] = {}
    for r in runs:
        by_fold.setdefault(r.params.get("fold"), []).append(r)
    together, apart = stopped(spec, pooled(runs)), stopped(spec, runs)
    print(f"sweep {sweep.id}: {len(runs)} runs, hyperband min_iter {args.min_iter}, eta "
          f"{args.eta:g}, on {args.metric}\n")  # fmt: skip
    print("| fold | runs | mean best " + args.metric + " | stopped, thresholds over every run "
          "| stopped, thresholds among the runs on the same data |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: |")
    for fold in sorted(by_fold, key=str):
        members = by_fold[fold]
        best = statistics.fmean(
            (max if goal == "maximize" else min)(h[args.metric] for h in r.history)
            for r in members if r.history
        )  # fmt: skip
        names = {r.name for r in members}
        print(f"| {fold} | {len(members)} | {best:.3f} | {sum(n in names for n in together)} | "
              f"{sum(n in names for n in apart)} |")  # fmt: skip
    swept = [k for k in dict.fromkeys(k for r in runs for k in r.params)
             if k not in ("fold", "seed") and len({repr(r.params.get(k)) for r in runs}) > 1]  # fmt: skip
    for label, decided in (("every run", together), ("the runs on the same data", apart)):
        counts = Counter(
            ", ".join(f"{k}={r.params.get(k)}" for k in swept) for r in runs if r.name in decided
        )
        said = "; ".join(f"{config}: {n}" for config, n in sorted(counts.items())) or "none"
        print(f"\nstopped with thresholds over {label}: {said}")


if __name__ == "__main__":
    main()
