"""Interactions: does one factor's effect change with another's level? Checked against their
definition, as properties of any sweep's numbers, for calibration by simulation, and in the
report's words.

Calibration (``test_a_planted_null_interaction_is_rejected_at_the_nominal_rate``), measured
with its seed over 2,000 simulated sweeps of init x arch x opt x 4 folds, the effect of init
drawn per architecture and fold, equicorrelated across folds with rho = 1/4 and alike in mean:
the corrected t over the 4 fold-level contrasts rejects the true null of no interaction in
5.65% of sweeps at alpha 0.05; the plain t over the same contrasts in 13.4%. With a planted
interaction of 0.05 (fold sd 0.02) the corrected t finds it in 42% of sweeps.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asc_sweep.report import RunRecord, console_table, write_report
from asc_sweep.report.findings import findings
from asc_sweep.report.render import sections
from asc_sweep.report.stats import analyse, holm, interactions, simple_effects

FOLDS = [1, 2, 3, 4]
INITS = ["default", "he_normal", "xavier_uniform"]
ARCHS = ["cnn6", "crnn", "m5"]


def crossed(planted: float, rng: np.random.Generator, rho: float = 0.25, sd: float = 0.02,
            folds: list[int] = FOLDS) -> list[RunRecord]:  # fmt: skip
    """init (default vs he_normal) x arch (cnn6, crnn) x opt x fold records. He init's effect
    is drawn per architecture and fold, equicorrelated across folds with ``rho`` (the overlap of
    the folds' training sets); on crnn its mean is ``planted`` larger than on cnn6."""
    n = len(folds)
    cov = sd**2 * ((1 - rho) * np.eye(n) + rho * np.ones((n, n)))
    shift = {
        arch: rng.multivariate_normal(np.full(n, 0.02 + (planted if arch == "crnn" else 0.0)), cov)
        for arch in ("cnn6", "crnn")
    }
    out = []
    for i, fold in enumerate(folds):
        base = 0.7 + rng.normal(0, 0.05)  # folds differ a lot: pairing removes it
        for arch in ("cnn6", "crnn"):
            for opt in ("adam", "sgd"):
                noise = rng.normal(0, 0.005, 2)
                for init, acc in (
                    ("default", base + noise[0]),
                    ("he_normal", base + shift[arch][i] + noise[1]),
                ):
                    params = {"init": init, "arch": arch, "opt": opt, "fold": fold}
                    summary = {"test/accuracy": float(acc), "data/train_clips": 300,
                               "data/test_clips": 100}  # fmt: skip
                    out.append(RunRecord(f"r{len(out)}", params, "finished", summary, []))
    return out


def grid(value: dict[tuple[str, str, int], float]) -> list[RunRecord]:
    """init x arch x fold records with the given test accuracy per (init, arch, fold)."""
    return [
        RunRecord(f"r{i}", {"init": init, "arch": arch, "fold": fold}, "finished",
                  {"test/accuracy": acc})
        for i, ((init, arch, fold), acc) in enumerate(value.items())
    ]  # fmt: skip


def contrasts(records: list[RunRecord], factor: str, other: str, ratio: float = 1 / 3) -> dict:
    simple = simple_effects(records, factor, "test/accuracy", factors=[factor, other], ratio=ratio)
    reference = records[0].params[other]
    return {(i.level, i.held): i for i in interactions(simple, factor, other, reference, ratio)}


accuracies = st.lists(
    st.floats(0.0, 1.0, allow_nan=False), min_size=len(INITS) * len(ARCHS) * len(FOLDS),
    max_size=len(INITS) * len(ARCHS) * len(FOLDS),
)  # fmt: skip
KEYS = [(init, arch, fold) for init in INITS for arch in ARCHS for fold in FOLDS]


def test_a_contrast_is_the_difference_of_two_simple_effects_fold_by_fold() -> None:
    rng = np.random.default_rng(11)
    acc = {k: float(rng.uniform(0.5, 0.9)) for k in KEYS}
    found = contrasts(grid(acc), "init", "arch")
    assert set(found) == {(i, a) for i in INITS[1:] for a in ARCHS[1:]}  # 2 x 2 contrasts
    for (init, arch), c in found.items():
        by_hand = [
            (acc[init, arch, f] - acc["default", arch, f])
            - (acc[init, "cnn6", f] - acc["default", "cnn6", f])
            for f in FOLDS
        ]
        assert c.diffs == pytest.approx(by_hand) and c.replicates == FOLDS
        assert (c.reference, c.held_reference) == ("default", "cnn6")
        assert c.at_held == pytest.approx(
            np.mean([acc[init, arch, f] - acc["default", arch, f] for f in FOLDS])
        )
        assert c.at_held - c.at_reference == pytest.approx(c.mean)
        d = np.asarray(by_hand)
        se = math.sqrt((1 / 4 + 1 / 3) * d.var(ddof=1))
        assert c.mean - c.ci_low == pytest.approx(3.182446 * se, rel=1e-5)  # t(0.975, 3)
    assert [c.p_holm for c in found.values()] == pytest.approx(holm([c.p for c in found.values()]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(values=accuracies)
def test_it_is_the_same_number_either_way_round(values: list[float]) -> None:
    """The effect of init changing with arch is the effect of arch changing with init."""
    records = grid(dict(zip(KEYS, values, strict=True)))
    by_init, by_arch = contrasts(records, "init", "arch"), contrasts(records, "arch", "init")
    for (init, arch), c in by_init.items():
        swapped = by_arch[arch, init]
        assert swapped.diffs == pytest.approx(c.diffs, abs=1e-12)
        assert (swapped.at_held - swapped.at_reference) == pytest.approx(c.mean, abs=1e-12)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    values=accuracies,
    init_shift=st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3),
    arch_shift=st.lists(st.floats(-0.5, 0.5), min_size=3, max_size=3),
    planted=st.floats(-0.3, 0.3),
    where=st.sampled_from([(i, a) for i in INITS[1:] for a in ARCHS[1:]]),
)
def test_additive_effects_make_no_interaction_and_a_planted_one_moves_its_contrast_alone(
    values: list[float], init_shift: list[float], arch_shift: list[float], planted: float,
    where: tuple[str, str],
) -> None:  # fmt: skip
    acc = dict(zip(KEYS, values, strict=True))
    before = contrasts(grid(acc), "init", "arch")
    additive = {
        (i, a, f): v + init_shift[INITS.index(i)] + arch_shift[ARCHS.index(a)]
        for (i, a, f), v in acc.items()
    }
    after = contrasts(grid(additive), "init", "arch")
    for key, c in before.items():
        assert after[key].diffs == pytest.approx(c.diffs, abs=1e-9)
    # One cell moved by `planted` in every fold: its contrast moves by it, no other does.
    moved = {k: v + (planted if k[:2] == where else 0.0) for k, v in acc.items()}
    shifted = contrasts(grid(moved), "init", "arch")
    for key, c in before.items():
        expected = c.mean + (planted if key == where else 0.0)
        assert shifted[key].mean == pytest.approx(expected, abs=1e-9)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.floats(0.0, 1.0), st.just(math.nan)), max_size=12))
def test_holm_is_the_step_down_definition(pvalues: list[float]) -> None:
    adjusted = holm(pvalues)
    valid = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m = len(valid)
    for rank, (p, i) in enumerate(valid):
        # Holm: the largest of min(1, (m - j) p_(j)) over the p-values at or below this one.
        definition = max(min(1.0, (m - j) * valid[j][0]) for j in range(rank + 1))
        assert adjusted[i] == pytest.approx(definition)
        assert p <= adjusted[i] <= 1.0
    for i, p in enumerate(pvalues):
        assert math.isnan(adjusted[i]) == math.isnan(p)
    # A family member's adjusted p does not depend on the order the family is listed in.
    order = list(reversed(range(len(pvalues))))
    again = holm([pvalues[i] for i in order])
    for j, i in enumerate(order):
        assert again[j] == pytest.approx(adjusted[i], nan_ok=True)


@pytest.mark.slow
def test_a_planted_null_interaction_is_rejected_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(2026)
    sweeps = 2000
    rejected = 0
    for _ in range(sweeps):
        (c,) = contrasts(crossed(0.0, rng), "init", "arch").values()
        assert c.n == 4  # one contrast per fold
        rejected += c.p < 0.05
    assert 0.03 <= rejected / sweeps <= 0.08


def test_a_planted_interaction_is_found_and_said(tmp_path: Path) -> None:
    records = crossed(0.08, np.random.default_rng(3), sd=0.01)
    data, files = write_report(records, tmp_path, sweep_id="abc123")
    (c,) = data.interactions["init", "arch"]
    assert (c.level, c.held, c.n) == ("he_normal", "crnn", 4)
    assert c.ci_low > 0 and c.p_holm < 0.05
    assert c.mean == pytest.approx(0.08, abs=0.03)
    said = findings(data)
    sentence = next(s for s in said if s.startswith("On test/accuracy, init=he_normal"))
    assert sentence.startswith(
        f"On test/accuracy, init=he_normal against init=default depends on arch: "
        f"{c.at_held:+.3f} with arch=crnn and {c.at_reference:+.3f} with arch=cnn6 (difference "
        f"{c.mean:+.3f}, 95% CI {c.ci_low:+.3f} to {c.ci_high:+.3f}; corrected t over 4 folds"
    )
    assert "opposite ways" not in sentence  # he_normal helps both, crnn more
    main = next(s for s in said if "init=he_normal" in s and "default" in s and s != sentence)
    assert main.endswith("This effect depends on arch (below).")
    # opt has no interaction with init: said so, with the smallest p.
    assert any(s.startswith("No clear interaction of init and opt on test/accuracy (1 contrast "
                            "over 4 folds; smallest p") for s in said)  # fmt: skip
    for text in (files.markdown.read_text(), files.html.read_text(), files.latex.read_text()):
        assert "Interactions" in text and "arch=crnn" in text
    for heading, _, (head, _rows), _plots in sections(data):  # W&B tables need unique columns
        assert len(set(head)) == len(head), heading


def test_effects_csv_holds_every_tested_difference_at_full_precision(tmp_path: Path) -> None:
    records = crossed(0.08, np.random.default_rng(3), sd=0.01)
    data, files = write_report(records, tmp_path, sweep_id="abc123")
    rows = list(csv.DictReader(files.effects_csv.open()))
    kinds = [r["kind"] for r in rows]
    assert kinds.count("main") == sum(len(v) for v in data.effects.values())
    assert kinds.count("simple") == sum(len(v) for v in data.simple_effects.values())
    assert kinds.count("interaction") == sum(len(v) for v in data.interactions.values())
    assert kinds.count("convergence") == len(data.convergence_effects)
    (main,) = [r for r in rows if r["kind"] == "main" and r["factor"] == "init"]
    (he,) = data.effects["init"]
    assert float(main["mean"]) == he.mean and float(main["p_holm"]) == he.p_holm  # every digit
    assert [float(d) for d in main["diffs"].split("; ")] == he.diffs
    assert main["replicates"] == "1; 2; 3; 4" and main["within"] == "" and main["other"] == ""
    (c,) = data.interactions["init", "arch"]
    (row,) = [r for r in rows if r["kind"] == "interaction" and r["other"] == "arch"]
    assert (row["level"], row["held"], row["held_reference"]) == ("he_normal", "crnn", "cnn6")
    assert float(row["ci_low"]) == c.ci_low and float(row["at_held"]) == c.at_held
    assert row["p_t"] == "" and row["p_better"] == ""  # tests an interaction does not have
    (simple,) = [r for r in rows if r["kind"] == "simple" and r["factor"] == "init"
                 and r["within"] == "arch=crnn"]  # fmt: skip
    assert float(simple["mean"]) == pytest.approx(c.at_held)


def test_a_reversal_is_said_to_be_averaged_over(tmp_path: Path) -> None:
    """He init helps one architecture and hurts the other: its main effect is an average of
    opposite effects, and the report says so beside it."""
    rng = np.random.default_rng(5)
    acc = {}
    for fold in FOLDS:
        base = 0.7 + rng.normal(0, 0.05)
        for arch, gain in (("cnn6", 0.05), ("crnn", -0.05)):
            acc["default", arch, fold] = base + rng.normal(0, 0.003)
            acc["he_normal", arch, fold] = base + gain + rng.normal(0, 0.003)
    data, _ = write_report(grid(acc), tmp_path, sweep_id="abc123")
    (c,) = data.interactions["init", "arch"]
    assert c.reverses and c.at_held < 0 < c.at_reference
    said = findings(data)
    assert any("The two effects point opposite ways: the main effect averages over them." in s
               for s in said)  # fmt: skip
    (main,) = data.effects["init"]
    assert abs(main.mean) < 0.01  # the average hides both effects


def test_a_contrast_every_fold_shows_alike_is_not_called_unclear() -> None:
    acc = {(i, a, f): 0.7 + 0.01 * f + (0.05 if (i, a) == ("he_normal", "crnn") else 0.0)
           for i in ("default", "he_normal") for a in ("cnn6", "crnn") for f in FOLDS}  # fmt: skip
    data = analyse(grid(acc), sweep_id="x", sweep_name=None, factors=["init", "arch"])
    said = findings(data)
    assert (
        "On test/accuracy, init=he_normal against init=default is +0.050 more with arch=crnn than "
        "with arch=cnn6 in each of 4 folds alike: without spread there is no interval and no test."
    ) in said
    assert not any(s.startswith("No clear interaction") for s in said)


def test_rankings_over_seeds_count_folds() -> None:
    rng = np.random.default_rng(9)
    records = [
        RunRecord(f"r{n}", {"init": init, "fold": fold, "seed": seed}, "finished",
                  {"test/accuracy": 0.7 + 0.02 * INITS.index(init) + rng.normal(0, 0.01)})
        for n, (init, fold, seed) in enumerate(
            (i, f, s) for i in INITS for f in FOLDS for s in (0, 1)
        )
    ]  # fmt: skip
    data = analyse(records, sweep_id="x", sweep_name=None, factors=["init"])
    assert data.rankings["init"].n_blocks == 4  # a fold's seeds averaged: one block a fold
    assert any("over 4 folds (Friedman" in s for s in findings(data))


# --- properties of the main and simple effects and rankings the interactions build on --------


def effects_of(records: list[RunRecord], reference: str = "default") -> dict:
    data = analyse(records, sweep_id="x", sweep_name=None, factors=["init", "arch"],
                   references={"init": reference})  # fmt: skip
    return {e.level: e for e in data.effects["init"]}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    values=accuracies,
    fold_shift=st.lists(st.floats(-0.3, 0.3), min_size=4, max_size=4),
    arch_shift=st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3),
    scale=st.floats(0.1, 10.0),
)
def test_main_effects_ignore_fold_and_other_factor_offsets_and_follow_the_scale(
    values: list[float], fold_shift: list[float], arch_shift: list[float], scale: float
) -> None:
    acc = dict(zip(KEYS, values, strict=True))
    before = effects_of(grid(acc))
    offset = {(i, a, f): v + fold_shift[f - 1] + arch_shift[ARCHS.index(a)]
              for (i, a, f), v in acc.items()}  # fmt: skip
    after = effects_of(grid(offset))
    scaled = effects_of(grid({k: v * scale for k, v in acc.items()}))
    for level, e in before.items():
        assert after[level].diffs == pytest.approx(e.diffs, abs=1e-9)
        s = scaled[level]
        assert s.mean == pytest.approx(scale * e.mean, abs=1e-9)
        assert s.ci_high - s.ci_low == pytest.approx(
            scale * (e.ci_high - e.ci_low), abs=1e-9, nan_ok=True
        )
        assert s.p == pytest.approx(e.p, abs=1e-6, nan_ok=True)
        assert e.p_holm >= e.p or math.isnan(e.p)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(values=accuracies)
def test_swapping_level_and_reference_negates_the_effect_alone(values: list[float]) -> None:
    records = grid(dict(zip(KEYS, values, strict=True)))
    forward = effects_of(records)["he_normal"]
    backward = effects_of(records, reference="he_normal")["default"]
    assert backward.mean == pytest.approx(-forward.mean, abs=1e-12)
    assert (backward.ci_low, backward.ci_high) == pytest.approx(
        (-forward.ci_high, -forward.ci_low), abs=1e-12, nan_ok=True
    )
    assert backward.p == pytest.approx(forward.p, nan_ok=True)
    assert backward.bayes.better == pytest.approx(forward.bayes.worse, nan_ok=True)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    init_effect=st.lists(st.floats(-0.2, 0.2), min_size=4, max_size=4),
    arch_shift=st.lists(st.floats(-0.3, 0.3), min_size=3, max_size=3),
)
def test_without_interaction_every_simple_effect_is_the_main_effect(
    init_effect: list[float], arch_shift: list[float]
) -> None:
    acc = {(i, a, f): 0.6 + arch_shift[ARCHS.index(a)] + (init_effect[f - 1] if i == "he_normal" else 0.0)
           for (i, a, f) in KEYS}  # fmt: skip
    records = grid(acc)
    (main,) = [e for e in effects_of(records).values() if e.level == "he_normal"]
    simple = simple_effects(records, "init", "test/accuracy", factors=["init", "arch"])
    at = [e for e in simple if e.level == "he_normal"]
    assert {e.within["arch"] for e in at} == set(ARCHS)
    for e in at:
        assert e.diffs == pytest.approx(main.diffs, abs=1e-9)
        assert e.diffs == pytest.approx(init_effect, abs=1e-9)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    values=st.lists(st.floats(0.01, 1.0), min_size=len(INITS) * len(FOLDS),
                    max_size=len(INITS) * len(FOLDS)),
    power=st.floats(0.2, 5.0),
)  # fmt: skip
def test_rankings_depend_only_on_the_order_within_each_fold(
    values: list[float], power: float
) -> None:
    """Friedman ranks within each fold: a transform that keeps every order keeps the ranks."""
    acc = dict(zip([(i, f) for i in INITS for f in FOLDS], values, strict=True))

    def ranks(value: dict[tuple[str, int], float]) -> list[float]:
        records = [RunRecord(f"r{n}", {"init": i, "fold": f}, "finished", {"test/accuracy": v})
                   for n, ((i, f), v) in enumerate(value.items())]  # fmt: skip
        data = analyse(records, sweep_id="x", sweep_name=None, factors=["init"])
        return data.rankings["init"].ranks

    r = ranks(acc)
    assert sum(r) == pytest.approx(6.0) and all(1.0 <= x <= 3.0 for x in r)  # 3 levels
    assert ranks({k: v**power for k, v in acc.items()}) == pytest.approx(r)
    # Higher is better: the level best in every fold ranks 1.
    best = {k: v + (2.0 if k[0] == "xavier_uniform" else 0.0) for k, v in acc.items()}
    assert ranks(best)[INITS.index("xavier_uniform")] == 1.0


def test_many_clear_interactions_are_counted_and_the_reversals_said_first() -> None:
    """Sample rate x arch in a big sweep can hold a dozen clear contrasts: the findings count
    them and say three, opposite effects first, then the largest."""
    rng = np.random.default_rng(1)
    rates, archs = [8000, 16000, 22050, 32000], ["cnn6", "cnn10", "m5", "crnn"]
    gain = {"cnn6": 0.01, "cnn10": 0.03, "m5": 0.06, "crnn": -0.005}  # crnn loses a little
    records = []
    for fold in FOLDS:
        base = 0.7 + rng.normal(0, 0.03)
        for rate in rates:
            for arch in archs:
                acc = base + gain[arch] * rates.index(rate) + rng.normal(0, 0.002)
                records.append(RunRecord(f"r{len(records)}", {"sample_rate": rate, "arch": arch,
                                         "fold": fold}, "finished", {"test/accuracy": acc}))  # fmt: skip
    data = analyse(records, sweep_id="x", sweep_name=None, factors=["sample_rate", "arch"])
    found = data.interactions["sample_rate", "arch"]
    held = [i for i in found if i.p_holm < 0.05]
    assert len(found) == 9 and len(held) > 3
    said = [s for s in findings(data)
            if s.startswith("On test/accuracy, sample_rate=") or "interact on" in s]  # fmt: skip
    assert said[0] == (
        f"sample_rate and arch interact on test/accuracy: {len(held)} of 9 contrasts are clear "
        "after Holm (the Interactions table lists them); the 3 with opposite effects or the "
        "largest differences:"
    )
    assert len(said) == 4
    reversals = [i for i in held if i.reverses]
    assert reversals and all(i.held == "crnn" for i in reversals)
    shown = said[1 : 1 + len(reversals[:3])]
    assert all("with arch=crnn" in s and "opposite ways" in s for s in shown)


def test_a_chosen_reference_turns_the_contrast_round() -> None:
    """--reference arch=crnn: the contrasts are taken against crnn, the same numbers negated."""
    records = crossed(0.08, np.random.default_rng(3), sd=0.01)
    plain = analyse(records, sweep_id="x", sweep_name=None, factors=["init", "arch"])
    turned = analyse(records, sweep_id="x", sweep_name=None, factors=["init", "arch"],
                     references={"arch": "crnn"})  # fmt: skip
    (a,) = plain.interactions["init", "arch"]
    (b,) = turned.interactions["init", "arch"]
    assert (b.held, b.held_reference) == ("cnn6", "crnn")
    assert b.diffs == pytest.approx([-d for d in a.diffs])
    assert (b.ci_low, b.ci_high) == pytest.approx((-a.ci_high, -a.ci_low))
    assert b.p_holm == pytest.approx(a.p_holm)
    assert (b.at_held, b.at_reference) == pytest.approx((a.at_reference, a.at_held))


# --- knobs a search sampled from a range ------------------------------------------------------


def searched(runs: int, rng: np.random.Generator, easy_fold: float = 0.0) -> list[RunRecord]:
    """A random search: lr log-uniform and mixup uniform (a value per run), arch from a list,
    a fold each; accuracy falls with lr, does not depend on mixup, and is ``easy_fold``
    higher on fold 4."""
    out = []
    for i in range(runs):
        lr = float(10 ** rng.uniform(-4, -1))
        params = {"lr": lr, "mixup": float(rng.uniform(0, 1)), "arch": ARCHS[i % 2],
                  "fold": int(rng.integers(1, 5))}  # fmt: skip
        acc = 0.7 - 0.05 * math.log10(lr) + rng.normal(0, 0.02)
        acc += easy_fold if params["fold"] == 4 else 0.0
        out.append(RunRecord(f"r{i}", params, "finished", {"test/accuracy": float(acc)}))
    return out


def test_knobs_sampled_from_a_range_get_a_rank_correlation_not_level_tests(
    tmp_path: Path,
) -> None:
    """A knob with a value per run pairs nothing, and testing it level by level took time
    growing with the cube of the runs (9 s for 100 runs, 70 s for 200, and a table of 238,800
    simple effects)."""
    records = searched(300, np.random.default_rng(0))
    data, files = write_report(records, tmp_path, sweep_id="search")
    assert data.factors == ["lr", "mixup", "arch"]  # the cross-fold table still shows them
    assert set(data.effects) == {"arch"} and not data.simple_effects and not data.interactions
    lr, mixup = data.sampled
    assert (lr.knob, lr.levels, lr.runs) == ("lr", 300, 300)
    assert lr.rho < -0.5 and lr.p < 0.001 and mixup.p > 0.01
    xs, ys = zip(*lr.points, strict=True)
    assert lr.rho == pytest.approx(stats_spearman(xs, ys))
    said = findings(data)
    assert (
        "lr took 300 values, too many to compare level by level (more than 20: a search over a "
        f"range): higher lr goes with lower test/accuracy (Spearman's rho {lr.rho:+.2f} over 300 "
        "runs, each against its fold's mean, p < 0.001)."
    ) in said
    assert any(s.startswith("mixup took 300 values") and "no clear monotone relation" in s
               for s in said)  # fmt: skip
    assert (
        "arch=crnn and arch=cnn6 have no runs alike in every other knob: the sampled knobs (lr, "
        "mixup) differ in every run; a grid over this factor's levels would compare them."
    ) in said
    assert {"sampled-lr.png", "sampled-mixup.png"} <= {p.name for p in files.plots}
    text = files.markdown.read_text()
    assert "## Sampled knobs" in text and "## Per fold" not in text  # a fold each: no fold table
    rows = [r for r in csv.DictReader(files.effects_csv.open()) if r["kind"] == "sampled"]
    assert [(r["factor"], r["n"]) for r in rows] == [("lr", "300"), ("mixup", "300")]
    assert float(rows[0]["rho"]) == lr.rho and float(rows[0]["p"]) == lr.p
    # The configurations best first (against their folds), none said to lack the folds a
    # search never drew for it.
    relative = [c.relative for c in data.cells]
    assert relative == sorted(relative, reverse=True) and not any(c.missing for c in data.cells)
    best = data.cells[0]
    assert (
        f"| {best.params['lr']:.6g} | {best.params['mixup']:.6g} | {best.params['arch']} |" in text
    )
    again = analyse(records, sweep_id="search", sweep_name=None, factors=data.factors,
                    expected_folds=[1, 2, 3, 4])  # fmt: skip
    assert not any(c.missing for c in again.cells)
    terminal = console_table(data)
    assert terminal.row_count == 20 and "the best 20 of 300 configurations" in str(terminal.title)


def test_a_search_s_draws_are_ordered_against_their_folds(tmp_path: Path) -> None:
    """Fold 4 is easier by 0.2 for every configuration. By the raw figure the search's best
    were all draws that landed on fold 4; against each fold's mean, the best lrs lead
    whatever fold they drew."""
    records = searched(200, np.random.default_rng(4), easy_fold=0.2)
    data, files = write_report(records, tmp_path, sweep_id="search")
    by_raw = sorted(records, key=lambda r: -r.summary["test/accuracy"])[:20]  # type: ignore[operator]
    assert {r.params["fold"] for r in by_raw} == {4}
    top = data.cells[:20]
    folds = {r.params["fold"] for r in records for c in top if r.params["lr"] == c.params["lr"]}
    assert folds == {1, 2, 3, 4}
    centre = {f: np.mean([r.summary["test/accuracy"] for r in records if r.params["fold"] == f])
              for f in (1, 2, 3, 4)}  # fmt: skip
    run = next(r for r in records if r.params["lr"] == top[0].params["lr"])
    assert top[0].relative == pytest.approx(
        run.summary["test/accuracy"] - centre[run.params["fold"]]
    )  # type: ignore[operator]
    assert max(math.log10(c.params["lr"]) for c in top) < -2.5  # the low lrs, which are better
    # The rank correlation takes each run against its fold's mean too: -0.90, where the
    # folds' own difference left in gives -0.62.
    (lr, _) = data.sampled
    assert lr.centred and lr.rho < -0.85
    pooled = stats_spearman(tuple(r.params["lr"] for r in records),
                            tuple(r.summary["test/accuracy"] for r in records))  # type: ignore[arg-type]  # fmt: skip
    assert pooled > -0.7
    text = files.markdown.read_text()
    assert "against the mean of the search's runs on the same fold" in text
    assert "the best of 200 draws and flatter their configurations" in text
    assert "| vs fold |" in text and f"| {top[0].relative:+.3f} |" in text
    terminal = console_table(data)
    assert [c.header for c in terminal.columns][-3] == "vs fold"
    with files.summary_csv.open() as f:
        first = next(csv.DictReader(f))
    assert float(first["test/accuracy vs fold"]) == pytest.approx(top[0].relative)


def stats_spearman(xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Spearman's rho as Pearson's correlation of the ranks."""
    rx, ry = np.argsort(np.argsort(xs)), np.argsort(np.argsort(ys))
    return float(np.corrcoef(rx, ry)[0, 1])


def test_a_factor_with_no_paired_level_is_one_sentence() -> None:
    rng = np.random.default_rng(2)
    records = searched(60, rng)
    for i, r in enumerate(records):  # a third architecture
        r.params["arch"] = ["cnn6", "crnn", "m5"][i % 3]  # type: ignore[index]
    data = analyse(records, sweep_id="x", sweep_name=None, factors=["lr", "mixup", "arch"])
    said = [s for s in findings(data) if "arch=" in s or "of arch " in s or "Ranking arch" in s]
    assert said == [
        "No level of arch (crnn, m5) has runs alike in every other knob to compare with "
        "arch=cnn6: the sampled knobs (lr, mixup) differ in every run; a grid over this "
        "factor's levels would compare them."
    ]
