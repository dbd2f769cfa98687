"""Render a report: Markdown, self-contained HTML with plots, CSV, LaTeX (booktabs), PNG plots."""

from __future__ import annotations

import base64
import csv
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asc_sweep.report.cv import Ranking, describe_p
from asc_sweep.report.findings import findings, replicates, test_name
from asc_sweep.report.records import RunRecord
from asc_sweep.report.stats import (
    MAX_LEVELS,
    Cell,
    ClassTable,
    Effect,
    Interaction,
    Pivot,
    ReportData,
)

CELL_METRICS = (
    ("test/accuracy", "accuracy", 3),
    ("test/macro_f1", "macro-F1", 3),
    ("test/log_loss", "log-loss", 3),
    ("epochs_to_90", "epochs to 90%", 1),
    ("time/inference_ms_per_clip", "latency ms", 2),
    ("parameters", "parameters", 0),
)


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def knob(value: Any) -> str:
    """A knob's value in a table: a float to 6 significant digits (a sampled learning rate
    reads 0.000100131, not 0.00010013133462910044); runs.csv keeps every digit."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --- tables as rows (shared by every format) ---------------------------------------------------


def against_fold(c: Cell) -> str:
    """A search's configuration against the mean of the runs on its folds (``Cell.relative``)."""
    return "-" if math.isnan(c.relative) else f"{c.relative:+.3f}"


def cell_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    relative = ["vs fold"] if data.fold_relative else []
    head = [*data.factors, *(label for _, label, _ in CELL_METRICS), *relative, "n", "incomplete"]
    rows = []
    for c in data.cells:
        row = [knob(c.params.get(f)) for f in data.factors]
        for metric, _, digits in CELL_METRICS:
            mean, std = c.mean(metric), c.std(metric)
            row.append("-" if math.isnan(mean) else f"{fmt(mean, digits)} ± {fmt(std, digits)}")
        if relative:
            row.append(against_fold(c))
        row += [str(c.n(data.metric)), "; ".join(c.missing)]
        rows.append(row)
    return head, rows


def effect_rows(
    effects: Sequence[Effect], within: bool = False
) -> tuple[list[str], list[list[str]]]:
    rope = effects[0].bayes.rope if effects else 0.01
    unit, test = _unit(effects)
    head = [*(["within"] if within else []), "level", "vs", unit, "mean diff", "95% CI",
            f"p ({test})", "Holm", "p (t)", "p (Wilcoxon)", "P(better)",
            f"P(equal, ±{rope:g})", "P(worse)"]  # fmt: skip
    rows = [
        [
            *([", ".join(f"{k}={v}" for k, v in e.within.items())] if within else []),
            f"{e.factor}={e.level}",
            str(e.reference),
            str(e.n),
            fmt(e.mean, 4),
            f"[{fmt(e.ci_low, 4)}, {fmt(e.ci_high, 4)}]",
            fmt_p(e.p),
            fmt_p(e.p_holm),
            fmt_p(e.p_t),
            fmt_p(e.p_wilcoxon),
            fmt(e.bayes.better, 2),
            fmt(e.bayes.equal, 2),
            fmt(e.bayes.worse, 2),
        ]
        for e in effects
    ]
    return head, rows


def _unit(tested: Sequence[Effect] | Sequence[Interaction]) -> tuple[str, str]:
    """The replicates' column name and the test's: folds and the corrected t, or, where only
    one fold ran, its seeds and the paired t."""
    if not tested:
        return "folds", "corrected t"
    return f"{tested[0].unit}s", test_name(tested[0])


def interaction_rows(found: Sequence[Interaction]) -> tuple[list[str], list[list[str]]]:
    unit, test = _unit(found)
    head = ["level", "vs", "other factor at", "against its", unit, "effect there", "effect at its reference",
            "difference", "95% CI", f"p ({test})", "Holm"]  # fmt: skip
    rows = [
        [
            f"{i.factor}={i.level}",
            str(i.reference),
            f"{i.other}={i.held}",
            str(i.held_reference),
            str(i.n),
            fmt(i.at_held, 4),
            fmt(i.at_reference, 4),
            fmt(i.mean, 4),
            f"[{fmt(i.ci_low, 4)}, {fmt(i.ci_high, 4)}]",
            fmt_p(i.p),
            fmt_p(i.p_holm),
        ]
        for i in found
    ]
    return head, rows


def ranking_rows(r: Ranking) -> tuple[list[str], list[list[str]]]:
    order = sorted(zip(r.ranks, r.levels, strict=True), key=lambda x: x[0])
    return ["level", "mean rank (1 = best)"], [[str(level), fmt(rank, 2)] for rank, level in order]


def fold_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    t = data.fold_table
    assert t is not None
    names = [f"{data.unit} {k}" for k in t.replicates]
    head = [*data.factors, *names, "mean"]
    rows = []
    for params, values in t.rows:
        finite = [v for v in values if not math.isnan(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        rows.append(
            [*(knob(params.get(f)) for f in data.factors), *(fmt(v) for v in values), fmt(mean)]
        )
    return head, rows


def class_rows(t: ClassTable) -> tuple[list[str], list[list[str]]]:
    head = ["class", *(str(v) for v in t.levels)]
    delta = len(t.levels) == 2 and t.factor is not None
    if delta:
        head.append(f"Δ {t.levels[1]} vs {t.levels[0]}")
    rows = []
    for c, values in zip(t.classes, t.values, strict=True):
        row = [c, *(fmt(v) for v in values)]
        if delta:
            row.append(fmt(values[1] - values[0]))
        rows.append(row)
    return head, rows


def excluded_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    return ["run", "left out because"], [[name, why] for name, why in data.excluded]


def pivot_rows(p: Pivot) -> tuple[list[str], list[list[str]]]:
    head = [f"{p.row_factor} \\ {p.col_factor}", *map(str, p.cols)]
    rows = []
    for i, level in enumerate(p.rows):
        rows.append(
            [str(level)]
            + [fmt(v) + (" *" if p.best[i] == j else "") for j, v in enumerate(p.values[i])]
        )
    return head, rows


def cost_rows(data: ReportData) -> tuple[list[str], list[list[str]]]:
    head = [*data.cost_factors, data.metric, "latency ms", "Pareto"]
    rows = [[*(str(p.label[f]) for f in data.cost_factors), fmt(p.accuracy), fmt(p.latency_ms, 2), "yes" if p.pareto else ""]
            for p in data.costs]  # fmt: skip
    return head, rows


# --- Markdown -----------------------------------------------------------------------------------


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[" ".join(c.replace("|", "\\|").split()) for c in r] for r in [list(head), *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


Section = tuple[str, str, tuple[list[str], list[list[str]]], list[str]]


def sections(data: ReportData) -> list[Section]:
    """(title, explanation, table, names of the plots that go with it) in report order."""
    over = "seeds of the one fold" if data.unit == "seed" else "folds"
    about = (f"Mean ± std over {over} per configuration; n = {over} with a {data.metric}. "
             "Incomplete configurations list their missing folds and are not averaged over them.")  # fmt: skip
    if data.sampled:
        order = f"best {data.metric} first"
        if data.fold_relative:
            order = (f"best first by {data.metric} against the mean of the search's runs on the "
                     f"same fold (column 'vs fold'): folds differ, and by the raw figure the best "
                     f"would be the draws that landed on the easiest fold")  # fmt: skip
        about = (f"Each configuration the search drew, {order}; n = its folds with a "
                 f"{data.metric} (a search draws a configuration for one fold at a time). The "
                 f"top figures are the best of {len(data.cells)} draws and flatter their "
                 f"configurations: run the best few over every fold, with a grid, to know "
                 f"them.")  # fmt: skip
    out: list[Section] = [("Cross-fold results", about, cell_rows(data), [])]
    tests = (f"The unit of replication is the fold: differences between runs alike in every other "
             f"knob are averaged within each fold (seeds too: a fold's runs share its test clips), "
             f"so n counts folds. 95% CI and p: corrected "
             f"resampled t-test (Nadeau & Bengio 2003, n_test/n_train = {data.test_train_ratio:.3f}), "
             f"Holm across the factor's levels; plain paired t and Wilcoxon over the same folds "
             f"for comparison; P: Bayesian correlated t-test (Benavoli et al. 2017), region of "
             f"practical equivalence ±{data.rope:g}.")  # fmt: skip
    if data.unit == "seed":
        tests = (f"Only one fold ran: the unit of replication is its seed (differences between "
                 f"runs alike in every other knob averaged within each seed, so n counts seeds), "
                 f"and the tests tell a difference from the training's own noise on this one "
                 f"split, not how it carries to other recordings. 95% CI and p: paired t over "
                 f"the seeds (no correction: no other fold's training set overlaps), Holm across "
                 f"the factor's levels; Wilcoxon over the same seeds for comparison; P: Bayesian "
                 f"t-test, region of practical equivalence ±{data.rope:g}.")  # fmt: skip
    every = [e for effects in data.effects.values() for e in effects]
    if every:
        out.append(("Main effects", f"Every level of every factor against its reference, in "
                    f"{data.metric}. {tests}", effect_rows(every), ["forest"]))  # fmt: skip
    for factor in data.effects:
        if factor in data.rankings:
            r = data.rankings[factor]
            out.append((f"Ranking of {factor}", f"Mean rank of each level over {replicates(r)} "
                        f"(Friedman test by permutation, {describe_p(r.p)}); levels whose mean ranks differ by more "
                        f"than {r.critical_difference:.2f} differ (Nemenyi, alpha 0.05; Demšar 2006).",
                        ranking_rows(r), [f"cd-{_slug(factor)}"]))  # fmt: skip
        simple = data.simple_effects.get(factor)
        if simple:
            out.append((f"Effect of {factor} within each level of the other factors",
                        "The same tests, holding one other factor at one level; Holm within each "
                        "held level.", effect_rows(simple, within=True), []))  # fmt: skip
    if data.interactions:
        found = [i for pair in data.interactions.values() for i in pair]
        out.append(("Interactions", "Does one factor's effect change with another's level? Per "
                    "fold, a level's effect against its reference where the other factor "
                    "is at one level, minus the same effect where it is at its reference (the "
                    "same number either way round). Corrected t as above; Holm across each pair "
                    "of factors' contrasts.", interaction_rows(found), ["interactions"]))  # fmt: skip
    if data.sampled:
        out.append(("Sampled knobs", f"Knobs a random or bayes search draws from a range (or with "
                    f"more than {MAX_LEVELS} values): each run is its own level, so nothing pairs and no "
                    f"level is tested against another. Spearman's rank correlation of the value "
                    f"with {data.metric} over the runs, every fold pooled (not paired by fold); "
                    f"where the runs ran on several folds, each run's {data.metric} is taken "
                    f"against the mean of the runs on its fold, so that the folds' own "
                    f"differences do not blur the ranks.",
                    (["knob", "values", "runs", "Spearman's rho", "p"],
                     [[k.knob, str(k.levels), str(k.runs), fmt(k.rho, 2), fmt_p(k.p)]
                      for k in data.sampled]),
                    [f"sampled-{_slug(k.knob)}" for k in data.sampled]))  # fmt: skip
    for p in data.pivots:
        out.append((f"{p.row_factor} x {p.col_factor}", f"Mean {data.metric}; * marks the best cell of each row.",
                    pivot_rows(p), [f"pivot-{_slug(p.row_factor)}-{_slug(p.col_factor)}"]))  # fmt: skip
    if data.fold_table is not None and data.fold_table.rows and not data.sampled:
        each = "seed of the one fold" if data.unit == "seed" else "fold (the mean of its seeds)"
        out.append((f"Per {data.unit}", f"{data.metric} of every configuration in every {each}: "
                    "the numbers every test above starts from.", fold_rows(data), []))  # fmt: skip
    for t in data.class_tables:
        by = f"by {t.factor}" if t.factor else "over all runs"
        out.append((f"Per class, {by}", "Mean test accuracy of each class" + (f" for each level of {t.factor}" if t.factor else "")
                    + "; which classes a level wins or loses.", class_rows(t),
                    [f"classes-{_slug(t.factor or 'all')}"]))  # fmt: skip
    if data.confusions:
        out.append(("Confusion matrices", "Test confusion summed over folds and the other knobs, "
                    + (f"per {data.confusion_factor}." if data.confusion_factor else "over all runs."),
                    (["rows: truth", "columns: predicted"], []),
                    [f"confusion-{_slug(str(level))}" for level in data.confusions]))  # fmt: skip
    if data.convergence_effects:
        out.append((f"Convergence by {data.curve_factor}", "Epochs to reach 90% of the best validation accuracy, tested "
                    "as above (negative: converges sooner).", effect_rows(data.convergence_effects),
                    [f"convergence-{_slug(f)}" for f in data.curve_factors]))  # fmt: skip
    if data.costs:
        out.append(("Accuracy against inference latency", "Batch-1 latency per clip; Pareto: no other configuration is "
                    "both more accurate and faster.", cost_rows(data), ["cost"]))  # fmt: skip
    if data.environments:
        out.append(("Environments", "The fields on which the counted runs' environments differ, "
                    "and how many runs ran with each value (runs.csv has every run's).",
                    (["field", "value", "runs"],
                     [[key, value, str(runs)] for key, counts in data.environments.items()
                      for value, runs in counts.items()]), []))  # fmt: skip
    if data.excluded:
        out.append(("Runs left out", "Not in any mean or test: only finished runs count (runs a "
                    "controller stopped trained for fewer epochs by design; pass --include-stopped "
                    "to count them).", excluded_rows(data), []))  # fmt: skip
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def environment_line(data: ReportData) -> str | None:
    """What every counted run ran with (precision, device, releases), for the report's head."""
    if not data.environment:
        return None
    shared = "; ".join(f"{k} {v}" for k, v in data.environment.items())
    differ = " (where they differ: Environments, below)" if data.environments else ""
    return f"Ran with {shared}{differ}."


def render_markdown(data: ReportData, plots: Sequence[Path]) -> str:
    title = f"# Ablation report: sweep {data.sweep_id}" + (
        f" ({data.sweep_name})" if data.sweep_name else ""
    )
    done = sum(r.done for r in data.records)
    parts = [title, f"{len(data.records)} runs, {done} finished; factors: {', '.join(data.factors) or 'none'}; "
             f"metric: {data.metric}."]  # fmt: skip
    if line := environment_line(data):
        parts.append(line)
    parts += ["## What this sweep shows", "\n".join(f"* {line}" for line in findings(data))]
    by_stem = {p.stem: p for p in plots}
    for heading, text, (head, rows), stems in sections(data):
        parts += [f"## {heading}", text]
        if rows:
            parts.append(markdown_table(head, rows))
        parts += [f"![{s}](plots/{by_stem.pop(s).name})" for s in stems if s in by_stem]
    if by_stem:
        parts.append("## More plots")
        parts += [f"![{p.stem}](plots/{p.name})" for p in by_stem.values()]
    return "\n\n".join(parts) + "\n"


# --- HTML -----------------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:75rem;padding:0 1rem;color:#222}
.scroll{overflow-x:auto;max-width:100%}
.pair{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.pair>.scroll{flex:1 1 100%}
figure{flex:0 1 52rem;margin:0;max-width:100%}
li{margin:.3rem 0}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #444}
img{max-width:100%;margin:1rem 0}
"""


def html_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _figure(path: Path) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode()
    name = html.escape(path.stem)
    return f"<figure><img alt='{name}' src='data:image/png;base64,{b64}'><figcaption>{name}</figcaption></figure>"


def render_html(data: ReportData, plots: Sequence[Path]) -> str:
    """One file, readable offline: plots are embedded as base64 PNG, no scripts, no links out."""
    title = f"Ablation report: sweep {data.sweep_id}" + (
        f" ({data.sweep_name})" if data.sweep_name else ""
    )
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]  # fmt: skip
    done = sum(r.done for r in data.records)
    parts.append(
        f"<p>{len(data.records)} runs, {done} finished; metric: {html.escape(data.metric)}.</p>"
    )
    if line := environment_line(data):
        parts.append(f"<p>{html.escape(line)}</p>")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in findings(data))
    parts.append(f"<section id='findings'><h2>What this sweep shows</h2><ul>{items}</ul></section>")
    by_stem = {p.stem: p for p in plots}
    for i, (heading, text, (head, rows), stems) in enumerate(sections(data)):
        table = f"<div class='scroll'>{html_table(head, rows)}</div>" if rows else ""
        figures = "".join(_figure(by_stem.pop(s)) for s in stems if s in by_stem)
        parts.append(f"<section id='s{i}'><h2>{html.escape(heading)}</h2><p>{html.escape(text)}</p>"
                     f"<div class='pair'>{table}{figures}</div></section>")  # fmt: skip
    if by_stem:
        figures = "".join(_figure(p) for p in by_stem.values())
        parts.append(f"<section id='plots'><h2>More plots</h2>{figures}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- LaTeX and CSV --------------------------------------------------------------------------------


def latex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("<", r"$<$"),
    ):
        text = text.replace(a, b)
    return text


def render_latex(data: ReportData) -> str:
    out = ["% booktabs tables written by asc-sweep report; \\usepackage{booktabs}"]
    for heading, _, (head, rows), _plots in sections(data):
        if not rows:
            continue
        out += [f"% {heading}", "\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(heading)}}}",
                f"\\begin{{tabular}}{{l{'r' * (len(head) - 1)}}}", "\\toprule",
                " & ".join(latex_escape(h) for h in head) + " \\\\", "\\midrule"]  # fmt: skip
        out += [" & ".join(latex_escape(c) for c in r) + " \\\\" for r in rows]
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)


def write_runs_csv(path: Path, records: Sequence[RunRecord]) -> None:
    knobs = list(dict.fromkeys(k for r in records for k in r.params))
    metrics = sorted(
        {
            k
            for r in records
            for k, v in r.summary.items()
            if isinstance(v, (int, float, str)) or v is None
        }
    )
    environment = list(dict.fromkeys(k for r in records for k in r.environment))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "state", *knobs, *metrics, *(f"environment/{k}" for k in environment)])
        for r in records:
            w.writerow(
                [
                    r.name,
                    r.state,
                    *(r.params.get(k, "") for k in knobs),
                    *(_csv(r.summary.get(m)) for m in metrics),
                    *(r.environment.get(k, "") for k in environment),
                ]
            )


def write_summary_csv(path: Path, data: ReportData) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        metrics = [m for m, _, _ in CELL_METRICS]
        relative = [f"{data.metric} vs fold"] if data.fold_relative else []
        w.writerow([*data.factors, *(f"{m} {s}" for m in metrics for s in ("mean", "std")),
                    *relative, "n", "missing"])  # fmt: skip
        for c in data.cells:
            w.writerow([*(c.params.get(k) for k in data.factors), *(_csv(v) for m in metrics for v in (c.mean(m), c.std(m))),
                        *(_csv(c.relative) for _ in relative), c.n(data.metric), "; ".join(c.missing)])  # fmt: skip


EFFECT_COLUMNS = ("kind", "metric", "factor", "level", "reference", "within", "other", "held",
                  "held_reference", "n", "mean", "ci_low", "ci_high", "p", "p_holm", "p_t",
                  "p_wilcoxon", "p_better", "p_equal", "p_worse", "at_held", "at_reference",
                  "rho", "seed_share", "replicates", "diffs")  # fmt: skip


def write_effects_csv(path: Path, data: ReportData) -> None:
    """Every tested difference at full precision, one row each: main effects, simple effects
    (``within``), interaction contrasts (``other``, ``held`` against ``held_reference``) and
    convergence, with ``diffs`` the per-fold differences every figure starts from (and, with
    seeds swept, ``seed_share``: how much of their spread is the seeds' noise); and
    each knob sampled from a range, with its rank correlation (``rho``, ``p``) over ``n`` runs."""
    rows: list[dict[str, Any]] = []
    for kind, effects in (
        ("main", [e for f in data.effects.values() for e in f]),
        ("simple", [e for f in data.simple_effects.values() for e in f]),
        ("convergence", data.convergence_effects),
    ):
        rows += [{"kind": kind, "metric": e.metric, "factor": e.factor, "level": e.level,
                  "reference": e.reference,
                  "within": "; ".join(f"{k}={v}" for k, v in e.within.items()), "n": e.n,
                  "mean": e.mean, "ci_low": e.ci_low, "ci_high": e.ci_high, "p": e.p,
                  "p_holm": e.p_holm, "p_t": e.p_t, "p_wilcoxon": e.p_wilcoxon,
                  "p_better": e.bayes.better, "p_equal": e.bayes.equal, "p_worse": e.bayes.worse,
                  "seed_share": e.seed_share, "replicates": _joined(e.replicates),
                  "diffs": _joined(e.diffs)}
                 for e in effects]  # fmt: skip
    rows += [{"kind": "interaction", "metric": i.metric, "factor": i.factor, "level": i.level,
              "reference": i.reference, "other": i.other, "held": i.held,
              "held_reference": i.held_reference, "n": i.n, "mean": i.mean, "ci_low": i.ci_low,
              "ci_high": i.ci_high, "p": i.p, "p_holm": i.p_holm, "at_held": i.at_held,
              "at_reference": i.at_reference, "replicates": _joined(i.replicates),
              "diffs": _joined(i.diffs)}
             for pair in data.interactions.values() for i in pair]  # fmt: skip
    rows += [{"kind": "sampled", "metric": data.metric, "factor": k.knob, "n": k.runs,
              "rho": k.rho, "p": k.p} for k in data.sampled]  # fmt: skip
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EFFECT_COLUMNS, restval="")
        w.writeheader()
        w.writerows({k: _csv(v) for k, v in row.items()} for row in rows)


def _joined(values: Sequence[Any]) -> str:
    """Values in one cell: ``repr`` keeps every digit of a float."""
    return "; ".join(map(repr, values))


def _csv(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return "" if value is None else value


def cell_key(c: Cell, factors: Sequence[str]) -> str:
    return ", ".join(f"{f}={c.params.get(f)}" for f in factors)
