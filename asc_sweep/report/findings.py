"""What a sweep shows, in sentences a reader can quote: the number, its interval and the test."""

from __future__ import annotations

import math

from asc_sweep.report.cv import Ranking, describe_p
from asc_sweep.report.stats import MAX_LEVELS, Effect, Interaction, ReportData, SampledKnob
from asc_sweep.sweep import environment

ALPHA = 0.05
SHOWN_INTERACTIONS = 3  # clear interactions of one pair of factors said in words; the rest counted
# Posterior mass within the ROPE from which we say "practically equal": 0.95, as the report's
# intervals are 95% (Benavoli et al., JMLR 2017, decide at 0.95 too). At 0.5 the report said
# "practically equal" of a difference with P = 0.50 within the ROPE and 0.33 beyond it.
PRACTICALLY_EQUAL = 0.95


def replicates(e: Effect | Interaction | Ranking) -> str:
    """ "4 folds" (seeds averaged within each), or "5 seeds of one fold" where only one fold
    ran: what a test replicates over."""
    n = e.n_blocks if isinstance(e, Ranking) else e.n
    if e.unit == "seed":
        return f"{n} seed{'s' if n != 1 else ''} of one fold"
    return f"{n} fold{'s' if n != 1 else ''}"


def test_name(e: Effect | Interaction) -> str:
    """The corrected resampled t over folds; over the seeds of one fold, the plain paired t
    (no other fold's training set overlaps)."""
    return "paired t" if e.unit == "seed" else "corrected t"


def effect_sentence(e: Effect, data: ReportData, *, higher_is_better: bool | None = None,
                    label: str | None = None, digits: int = 3) -> str:  # fmt: skip
    """One effect in words, e.g. ``sample_rate=16000 beats sample_rate=8000 on test/accuracy by
    0.182 (95% CI 0.155 to 0.209; corrected t over 4 folds, p = 0.003)``. ``label`` names the
    metric (default: its key) and ``higher_is_better`` its direction (default: the report's
    metric's)."""
    level, ref = f"{e.factor}={e.level}", f"{e.factor}={e.reference}"
    metric = label or e.metric
    higher = data.higher_is_better if higher_is_better is None else higher_is_better

    def num(x: float, sign: str = "+") -> str:
        return f"{x:{sign}.{digits}f}"

    if e.n == 0:
        return f"{level} and {ref} have no runs alike in every other knob{unpaired_why(data)}"
    if e.n == 1:
        return (f"{level} against {ref} on {metric}: {num(e.mean)} from a single {e.unit}: no "
                "interval and no test; more folds would tell.")  # fmt: skip
    if math.isnan(e.ci_low):  # every replicate the same difference
        return (f"{level} against {ref} on {metric}: {num(e.mean)} in each of "
                f"{replicates(e)} alike: without spread there is no interval and no test.")  # fmt: skip
    p = e.p_holm if not math.isnan(e.p_holm) else e.p
    test = f"{test_name(e)} over {replicates(e)}, {describe_p(p)}"
    ci = f"95% CI {num(e.ci_low)} to {num(e.ci_high)}"
    better = (e.mean > 0) == higher
    if not math.isnan(p) and p < ALPHA and e.mean != 0:
        winner, loser = (level, ref) if better else (ref, level)
        if e.mean < 0:  # said as winner - loser: so is its interval
            ci = f"95% CI {num(-e.ci_high)} to {num(-e.ci_low)}"
        return f"{winner} beats {loser} on {metric} by {num(abs(e.mean), '')} ({ci}; {test})."
    if e.bayes.equal >= PRACTICALLY_EQUAL:
        return (f"{level} and {ref} are practically equal on {metric}: {num(e.mean)} "
                f"(P = {e.bayes.equal:.2f} that the difference is within ±{e.bayes.rope:g}; "
                f"{test}).")  # fmt: skip
    # The chance that the side the data lean to is better by more than the ROPE (read with
    # the reference's it would be a small number beside a "no clear difference").
    lean, chance = (
        (level, e.bayes.better) if e.bayes.better >= e.bayes.worse else (ref, e.bayes.worse)
    )
    return (f"No clear difference between {level} and {ref} on {metric}: {num(e.mean)} ({ci}; "
            f"{test}; P({lean} better by more than {e.bayes.rope:g}) = {chance:.2f}, "
            f"P(within ±{e.bayes.rope:g}) = {e.bayes.equal:.2f}).")  # fmt: skip


def unpaired_sentence(effects: list[Effect], data: ReportData) -> str:
    """A factor none of whose levels has a run alike in every other knob to its reference's."""
    e = effects[0]
    return (f"No level of {e.factor} ({', '.join(str(x.level) for x in effects)}) has runs "
            f"alike in every other knob to compare with {e.factor}={e.reference}"
            f"{unpaired_why(data)}")  # fmt: skip


def unpaired_why(data: ReportData) -> str:
    """The end of a sentence saying levels have no runs alike: not yet, or never in a search
    (a value per run of each sampled knob: no two runs will ever be alike in it)."""
    if not data.sampled:
        return " yet."
    knobs = ", ".join(k.knob for k in data.sampled)
    return (
        f": the sampled {'knobs' if len(data.sampled) > 1 else 'knob'} ({knobs}) differ in "
        "every run; a grid over this factor's levels would compare them."
    )


def convergence_sentence(e: Effect, data: ReportData) -> str:
    """The convergence question ("does He init converge faster?") in words: epochs to 90% of
    the best validation accuracy, where fewer is better."""
    return "Convergence: " + effect_sentence(
        e, data, higher_is_better=False, digits=1,
        label="epochs to 90% of the best validation accuracy (fewer is better)",
    )  # fmt: skip


def ranking_sentence(factor: str, r: Ranking, metric: str) -> str:
    order = sorted(zip(r.ranks, r.levels, strict=True), key=lambda x: x[0])
    ranked = ", ".join(f"{level} ({rank:.2f})" for rank, level in order)
    return (f"Ranking {factor} by {metric} over {replicates(r)} (Friedman by permutation, {describe_p(r.p)}), "
            f"mean rank (1 = best): {ranked}; mean ranks further apart than "
            f"{r.critical_difference:.2f} differ (Nemenyi, alpha 0.05).")  # fmt: skip


def clear(i: Interaction) -> bool:
    """An interaction contrast that holds after Holm's correction across its pair of factors."""
    return not math.isnan(i.p_holm) and i.p_holm < ALPHA and i.mean != 0


def interaction_sentences(a: str, b: str, found: list[Interaction], metric: str) -> list[str]:
    """Each clear interaction of factors ``a`` and ``b`` in words, with the two effects it
    compares (at most ``SHOWN_INTERACTIONS`` of them, reversals and the largest first, after a
    sentence counting them all), and each that every replicate shows alike (no spread, so no
    test); where neither kind is found, one sentence saying no interaction is clear, with the
    smallest p."""
    tested = [i for i in found if i.n >= 2]
    out = []
    held = sorted((i for i in tested if clear(i)), key=lambda i: (not i.reverses, -abs(i.mean)))
    if len(held) > SHOWN_INTERACTIONS:
        out.append(f"{a} and {b} interact on {metric}: {len(held)} of {len(tested)} contrasts "
                   f"are clear after Holm (the Interactions table lists them); the "
                   f"{SHOWN_INTERACTIONS} with opposite effects or the largest differences:")  # fmt: skip
    for i in held[:SHOWN_INTERACTIONS]:
        reading = (" The two effects point opposite ways: the main effect averages over them."
                   if i.reverses else "")  # fmt: skip
        out.append(
            f"On {metric}, {i.factor}={i.level} against {i.factor}={i.reference} depends on "
            f"{i.other}: {i.at_held:+.3f} with {i.other}={i.held} and {i.at_reference:+.3f} "
            f"with {i.other}={i.held_reference} (difference {i.mean:+.3f}, 95% CI "
            f"{i.ci_low:+.3f} to {i.ci_high:+.3f}; {test_name(i)} over {replicates(i)}, "
            f"{describe_p(i.p_holm)} after Holm).{reading}"
        )
    for i in tested:
        if math.isnan(i.ci_low) and i.mean != 0:  # every replicate the same contrast
            out.append(
                f"On {metric}, {i.factor}={i.level} against {i.factor}={i.reference} is "
                f"{i.mean:+.3f} more with {i.other}={i.held} than with "
                f"{i.other}={i.held_reference} in each of {replicates(i)} alike: without spread "
                "there is no interval and no test."
            )
    if tested and not out:
        defined = [i.p_holm for i in tested if not math.isnan(i.p_holm)]
        smallest = (
            f"smallest {describe_p(min(defined))} after Holm" if defined else "no test defined"
        )
        contrasts = f"{len(tested)} contrast{'s' if len(tested) != 1 else ''}"
        out.append(f"No clear interaction of {a} and {b} on {metric} ({contrasts} over "
                   f"{replicates(tested[0])}; {smallest}).")  # fmt: skip
    return out


def sampled_sentence(k: SampledKnob, metric: str) -> str:
    """A knob a search sampled from a range, in words: how its value goes with the metric."""
    head = (f"{k.knob} took {k.levels} values, too many to compare level by level (more than "
            f"{MAX_LEVELS}: a search over a range)")  # fmt: skip
    if k.drawn:
        head = (f"{k.knob} was drawn from a range by the spec ({k.levels} values), so its "
                "values are not compared level by level")  # fmt: skip
    if math.isnan(k.rho):
        return (f"{head}; no rank correlation with {metric} can be given ({k.runs} runs with a "
                "numeric value and the metric).")  # fmt: skip
    pooled = "each against its fold's mean" if k.centred else "every fold pooled"
    over = f"Spearman's rho {k.rho:+.2f} over {k.runs} runs, {pooled}, {describe_p(k.p)}"
    if k.p < ALPHA and k.rho != 0:
        more = "higher" if k.rho > 0 else "lower"
        return f"{head}: higher {k.knob} goes with {more} {metric} ({over})."
    return f"{head}: no clear monotone relation with {metric} ({over})."


def depends_on(e: Effect, data: ReportData) -> list[str]:
    """The other factors on which a main effect clearly depends (its interactions)."""
    others = []
    for (a, b), found in data.interactions.items():
        for i in found:
            if clear(i) and (
                (a == e.factor and i.level == e.level and i.reference == e.reference)
                or (b == e.factor and i.held == e.level and i.held_reference == e.reference)
            ):
                others.append(b if a == e.factor else a)
    return list(dict.fromkeys(others))


def seeds_sentence(fewest: int, most: int) -> str:
    """How the seeds of a sweep count: within their fold, not as replicates of it."""
    seeds = f"{most}" if fewest == most else f"{fewest} to {most}"
    return (f"Seeds: {seeds} per configuration and fold, averaged within each fold for every "
            "test and for the cross-fold and per-fold tables. The tests replicate over folds: a "
            "fold's seeds share its test clips, so they narrow the training's own noise, not "
            "the split's.")  # fmt: skip


def one_fold_sentence(data: ReportData) -> str:
    """What a sweep of one fold's seeds can tell: the tests replicate over its seeds."""
    fold = next((r.params.get("fold") for r in data.records), None)
    return (f"Only fold {fold} ran, so the tests replicate over its seeds (plain paired t, "
            "no correction: no other fold's training set overlaps): they tell a difference from "
            "the training's own noise on this one split, not how it carries to other "
            "recordings; more folds would tell that.")  # fmt: skip


def seed_shares(data: ReportData) -> str | None:
    """For each main effect, how much of its spread between folds is the seeds' noise: what
    more seeds, or only more folds, would narrow."""
    shares = [(e, e.seed_share) for effects in data.effects.values() for e in effects
              if not math.isnan(e.seed_share)]  # fmt: skip
    if not shares:
        return None
    said = ", ".join(f"{e.factor}={e.level} vs {e.reference} {'all' if share >= 1 else f'{share:.0%}'}"
                     for e, share in shares)  # fmt: skip
    return (f"Of each effect's spread between folds, the seeds' own noise makes up about: "
            f"{said}. Where it is small, the folds' splits move the difference more than seeds "
            f"do and only more folds would narrow its interval; where it is large, more seeds "
            f"would too.")  # fmt: skip


def environment_sentences(data: ReportData) -> list[str]:
    """Where the counted runs ran in more than one environment (another precision, device or
    release rounds otherwise, and training carries that on): which, and how many of each
    effect's pairs compared runs across them; an effect all of whose pairs did cannot be told
    apart from the environments' difference."""
    if not data.environments:
        return []
    mix = environment.describe(data.environments)
    out = [
        f"The runs counted ran in more than one environment: {mix}. Figures can differ between "
        "environments beyond what the seeds do, so compare runs of alike hosts."
    ]
    crossed = [e for effects in data.effects.values() for e in effects if e.mixed_pairs]
    confounded = [e for e in crossed if e.mixed_pairs == e.pairs]
    if crossed:
        out.append(
            "Pairs that compared runs of different environments: "
            + ", ".join(
                f"{e.factor}={e.level} vs {e.reference} {e.mixed_pairs} of {e.pairs}"
                for e in crossed
            )
            + "."
        )
    for e in confounded:
        out.append(
            f"Every pair behind {e.factor}={e.level} vs {e.reference} compared runs of different "
            f"environments: that difference cannot be told apart from the environments' own; "
            f"run both levels on alike hosts (runs.csv lists each run's)."
        )
    return out


def findings(data: ReportData) -> list[str]:
    """One sentence per effect of every swept factor (a ranking first for 3+ levels), then
    what was left out."""
    out = []
    for factor, effects in data.effects.items():
        if factor in data.rankings:
            out.append(ranking_sentence(factor, data.rankings[factor], data.metric))
        if len(effects) > 1 and not any(e.n for e in effects):  # one sentence, not one a level
            out.append(unpaired_sentence(effects, data))
            continue
        for e in effects:
            line = effect_sentence(e, data)
            if others := depends_on(e, data):
                line += f" This effect depends on {' and '.join(others)} (below)."
            out.append(line)
    for (a, b), found in data.interactions.items():
        out += interaction_sentences(a, b, found, data.metric)
    out += [convergence_sentence(e, data) for e in data.convergence_effects if e.n]
    out += [sampled_sentence(k, data.metric) for k in data.sampled]
    if not data.factors:
        out.append("Only the fold (or seed) varies: there is no factor to compare; the tables "
                   "show the spread over folds.")  # fmt: skip
    if data.unit == "seed":
        out.append(one_fold_sentence(data))
    elif data.seeds[1] > 1:
        out.append(seeds_sentence(*data.seeds))
        if shares := seed_shares(data):
            out.append(shares)
    out += environment_sentences(data)
    if data.excluded:
        reasons = sorted({why for _, why in data.excluded})
        out.append(
            f"{len(data.excluded)} runs are left out of means and tests ({'; '.join(reasons)})."
        )
    if data.retried:
        failures = "; ".join(f"{name}: {why}" for name, why in data.retried)
        out.append(
            f"{len(data.retried)} failed {'run was' if len(data.retried) == 1 else 'runs were'} "
            f"run again (`asc-sweep retry`), and the new runs count in their place ({failures})."
        )
    return out
