"""The ablation report: planted effects are found, stats agree with scipy, gaps are flagged,
both backends give the same report, and report.html renders in a real browser."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats

from asc_sweep.backends import LocalBackend
from asc_sweep.backends.local import LocalController
from asc_sweep.backends.wandb import records_from_runs
from asc_sweep.report import RunRecord, write_report
from asc_sweep.report.render import sections
from asc_sweep.report.stats import holm
from asc_sweep.sweep.spec import parse_spec, sampled_knobs

INITS = ["default", "he_normal", "xavier_uniform"]
ARCHS = ["cnn6", "dcase2018_cnn"]
FOLDS = [1, 2, 3, 4, 5]


def planted(effect: float, seed: int = 0) -> list[RunRecord]:
    """init x arch x fold records: he_normal gets +effect, everything gets fold noise."""
    rng = np.random.default_rng(seed)
    fold_level = {f: rng.normal(0, 0.03) for f in FOLDS}  # folds differ a lot: pairing removes it
    out = []
    for arch in ARCHS:
        for init in INITS:
            for fold in FOLDS:
                acc = 0.7 + (0.05 if arch == "cnn6" else 0) + fold_level[fold] + rng.normal(0, 0.01)
                acc += effect if init == "he_normal" else 0.0
                params = {"arch": arch, "init": init, "fold": fold}
                history = [
                    {"epoch": e + 1, "val/accuracy": acc * (1 - 0.5 ** (e + 1))} for e in range(5)
                ]
                summary = {"test/accuracy": acc, "epochs_to_90": 3 + (init == "default"), "time/inference_ms_per_clip": 1.0 + (arch == "cnn6"),
                           "parameters": 100}  # fmt: skip
                out.append(RunRecord(f"r{len(out)}", params, "finished", summary, history))
    return out


def test_a_planted_effect_is_found_and_agrees_with_scipy(tmp_path: Path) -> None:
    records = planted(0.03)
    data, _ = write_report(records, tmp_path, sweep_id="abc123", metric="test/accuracy")
    he, xavier = data.effects["init"]
    assert (he.level, he.reference, he.n, he.pairs) == ("he_normal", "default", 5, 10)
    assert he.p < 0.05 and he.p_t < 0.05 and he.ci_low > 0
    assert xavier.ci_low < 0 < xavier.ci_high  # no planted effect: the CI covers zero

    def acc(init: str) -> np.ndarray:
        """Per fold, the mean over architectures (the runs of a fold share its split)."""
        values = np.array([r.summary["test/accuracy"] for r in records if r.params["init"] == init])
        return values.reshape(len(ARCHS), len(FOLDS)).mean(axis=0)  # arch-major order

    diffs = acc("he_normal") - acc("default")  # one per fold
    assert he.diffs == pytest.approx(list(diffs)) and he.replicates == FOLDS
    assert he.mean == pytest.approx(diffs.mean())
    assert he.p_t == pytest.approx(stats.ttest_rel(acc("he_normal"), acc("default")).pvalue)
    assert he.p_wilcoxon == pytest.approx(stats.wilcoxon(acc("he_normal"), acc("default")).pvalue)
    # The primary interval: the corrected resampled t (5 folds: n_test / n_train = 1/4).
    se = np.sqrt((1 / len(diffs) + 1 / 4) * diffs.var(ddof=1))
    half = stats.t.ppf(0.975, len(diffs) - 1) * se
    assert (he.ci_low, he.ci_high) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert [he.p_holm, xavier.p_holm] == pytest.approx(holm([he.p, xavier.p]))
    assert [he.p_t_holm, xavier.p_t_holm] == pytest.approx(holm([he.p_t, xavier.p_t]))
    cell = next(c for c in data.cells if c.params == {"arch": "cnn6", "init": "he_normal"})
    values = [
        r.summary["test/accuracy"]
        for r in records
        if r.params["arch"] == "cnn6" and r.params["init"] == "he_normal"
    ]
    assert cell.mean("test/accuracy") == pytest.approx(np.mean(values))
    assert cell.std("test/accuracy") == pytest.approx(np.std(values, ddof=1))


def test_no_planted_effect_ci_covers_zero(tmp_path: Path) -> None:
    data, _ = write_report(planted(0.0, seed=1), tmp_path, sweep_id="abc123")
    for effect in data.effects["init"]:
        assert effect.ci_low < 0 < effect.ci_high


def test_holm_matches_the_definition() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, float("nan")])[0] == 0.5


def test_references_convergence_interactions_and_cost(tmp_path: Path) -> None:
    data, files = write_report(
        planted(0.03), tmp_path, sweep_id="abc123", references={"init": "he_normal"}
    )
    assert {e.reference for e in data.effects["init"]} == {"he_normal"}
    # epochs to 90%: default needs one more epoch than the others
    conv = {e.level: e for e in data.convergence_effects}
    assert conv["default"].mean == pytest.approx(1.0) and conv["default"].n == 5
    assert data.curves and len(data.curves[0].mean) == 5
    (p,) = data.pivots
    assert (p.row_factor, p.col_factor) == ("arch", "init")
    assert p.best == [1, 1]  # he_normal is best for both architectures
    assert [pt.pareto for pt in data.costs] == [True, True]  # faster but worse vs slower but better
    text = files.markdown.read_text()
    assert "## Main effects" in text and "## arch x init" in text and "0.0" in text
    assert "## Ranking of init" in text and "## Per fold" in text
    assert r"\toprule" in files.latex.read_text()
    assert {p.name for p in files.plots} == {
        "forest.png",
        "cd-init.png",
        "interactions.png",
        "pivot-arch-init.png",
        "convergence-init.png",
        "convergence-arch.png",
        "cost.png",
    }
    # Every plot sits in the section it illustrates.
    assert (
        text.index("## Main effects") < text.index("![forest]") < text.index("## Ranking of init")
    )
    assert (
        text.index("## Interactions") < text.index("![interactions]") < text.index("## arch x init")
    )


def test_an_incomplete_sweep_is_reported_as_such(tmp_path: Path) -> None:
    records = planted(0.03)
    failed = records[0]  # cnn6, default, fold 1
    records[0] = RunRecord(failed.name, failed.params, "failed", {}, [])
    records = [
        r
        for r in records
        if not (
            r.params["arch"] == "dcase2018_cnn"
            and r.params["init"] == "xavier_uniform"
            and r.params["fold"] == 5
        )
    ]
    data, files = write_report(records, tmp_path, sweep_id="abc123", expected_folds=FOLDS)
    cell = next(c for c in data.cells if c.params == {"arch": "cnn6", "init": "default"})
    assert cell.n("test/accuracy") == 4 and cell.missing == ["fold 1 failed"]
    other = next(
        c for c in data.cells if c.params == {"arch": "dcase2018_cnn", "init": "xavier_uniform"}
    )
    assert other.missing == ["fold 5 not run"] and other.n("test/accuracy") == 4
    assert "fold 1 failed" in files.markdown.read_text()
    rows = list(csv.DictReader(files.summary_csv.open()))
    assert any(r["missing"] == "fold 5 not run" for r in rows)
    he = next(e for e in data.effects["init"] if e.level == "he_normal")
    assert he.pairs == 9  # the pair with the failed fold is left out, not imputed
    assert he.n == 5  # fold 1 still counts, through the architecture that has both runs


def test_a_run_that_finished_without_a_finite_metric_is_named_not_dropped(tmp_path: Path) -> None:
    """A run that diverged finishes with a NaN log loss: its fold is not averaged, and the
    report says which fold and what it logged, rather than quietly showing fewer folds."""
    import math

    records = planted(0.03)
    for i, value in ((0, math.nan), (1, None)):  # cnn6, default, folds 1 and 2
        summary = {k: v for k, v in records[i].summary.items() if k != "test/accuracy"}
        summary.update({} if value is None else {"test/accuracy": value})
        records[i] = RunRecord(records[i].name, records[i].params, "finished", summary, [])
    data, files = write_report(records, tmp_path, sweep_id="abc123", expected_folds=FOLDS)
    cell = next(c for c in data.cells if c.params == {"arch": "cnn6", "init": "default"})
    assert cell.n("test/accuracy") == 3
    assert cell.missing == ["fold 1 finished without a finite test/accuracy (nan)",
                            "fold 2 finished without a finite test/accuracy (none logged)"]  # fmt: skip
    assert "fold 1 finished without a finite test/accuracy (nan)" in files.markdown.read_text()


class SubDict:
    """How W&B's API hands over a nested summary dict: ``items()`` and ``keys()``, but no
    mapping."""

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def keys(self) -> list[str]:
        return list(self._d)

    def items(self) -> list[tuple[str, Any]]:
        return [(k, SubDict(v) if isinstance(v, dict) else v) for k, v in self._d.items()]


class StandInRun:
    """The attributes of the W&B SDK's public ``Run`` that the report reads."""

    def __init__(
        self,
        name: str,
        state: str,
        config: dict[str, Any],
        summary: dict[str, Any],
        history: list[dict[str, Any]],
    ):
        self.name, self.state, self.config, self.summary, self._history = (
            name,
            state,
            config,
            summary,
            history,
        )

    def history(self, *args: Any, pandas: bool = True, **kwargs: Any) -> list[dict[str, Any]]:
        assert pandas is False
        return self._history


def _ran_on(record: RunRecord, precision: str, torch: str = "2.14.1") -> RunRecord:
    """The record as if its run had recorded this environment (the trainer's form)."""
    environment = {
        "python": "3.11.7",
        "packages": {"asc-sweep": "0.1.0", "torch": torch, "torchaudio": "2.11.0"},
        "device": "NVIDIA H200" if precision == "bfloat16" else "x86_64",
        "device_type": "cuda" if precision == "bfloat16" else "cpu",
        "torch_threads": 1,
        "precision": precision,
        "git_revision": "0123456789abcdef",
    }
    summary = {**record.summary, "environment": environment}
    return RunRecord(record.name, record.params, record.state, summary, record.history)


def test_runs_of_different_environments_are_named_and_a_confounded_effect_is_flagged(
    tmp_path: Path,
) -> None:
    """A sweep whose he_normal runs all ran on a GPU in bf16 and the rest on CPUs in float32
    cannot tell the init's effect from the host's; one whose hosts mix within every level
    can, and the report says how many pairs crossed environments. A sweep on one kind of
    host says nothing of it."""
    from asc_sweep.report.findings import findings

    records = planted(0.03)
    alike, _ = write_report(
        [_ran_on(r, "float32") for r in records], tmp_path / "alike", sweep_id="a"
    )
    assert alike.environments == {}
    head = (tmp_path / "alike" / "report.md").read_text().split("## What this sweep shows")[0]
    assert "Ran with precision float32; device cpu (x86_64); torch 2.14.1;" in head
    assert not any("environment" in line for line in findings(alike))
    assert all(e.mixed_pairs == 0 for e in alike.effects["init"])

    confounded = [
        _ran_on(r, "bfloat16" if r.params["init"] == "he_normal" else "float32") for r in records
    ]
    data, files = write_report(confounded, tmp_path / "confounded", sweep_id="c")
    assert data.environments == {
        "precision": {"float32": 20, "bfloat16": 10},
        "device": {"cpu (x86_64)": 20, "cuda (NVIDIA H200)": 10},
    }
    he, xavier = data.effects["init"]
    assert (he.mixed_pairs, he.pairs) == (10, 10)
    assert (xavier.mixed_pairs, xavier.pairs) == (0, 10)
    said = findings(data)
    assert any(
        "more than one environment: precision float32 (20 runs), bfloat16 (10 runs)" in line
        for line in said
    )
    assert any(
        "Every pair behind init=he_normal vs default compared runs of different environments"
        in line
        for line in said
    )
    assert not any("init=xavier_uniform vs default compared" in line for line in said)
    markdown = files.markdown.read_text()
    assert "git revision 0123456789 (where they differ: Environments, below)." in markdown
    assert "## Environments" in markdown and "| precision | bfloat16 | 10 |" in markdown
    with files.runs_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert {row["environment/precision"] for row in rows} == {"float32", "bfloat16"}
    assert {row["environment/git revision"] for row in rows} == {"0123456789"}

    # Hosts mixed within every level: torch differs on fold 5 only.
    mixed = [
        _ran_on(r, "float32", "2.11.0" if r.params["fold"] == 5 else "2.14.1") for r in records
    ]
    data, _ = write_report(mixed, tmp_path / "mixed", sweep_id="m")
    assert data.environments == {"torch": {"2.14.1": 24, "2.11.0": 6}}
    assert all(e.mixed_pairs == 0 for e in data.effects["init"])  # pairs share their fold
    assert any("torch 2.14.1 (24 runs), 2.11.0 (6 runs)" in line for line in findings(data))

    # One run of one pair on another host: that pair alone crossed environments.
    one = [
        _ran_on(r, "bfloat16" if r.name == "r5" else "float32")  # cnn6, he_normal, fold 1
        for r in records
    ]
    data, _ = write_report(one, tmp_path / "one", sweep_id="o")
    he, xavier = data.effects["init"]
    assert (he.mixed_pairs, xavier.mixed_pairs) == (1, 0)
    said = findings(data)
    assert any(
        "Pairs that compared runs of different environments: arch=dcase2018_cnn vs cnn6 1 of 15, "
        "init=he_normal vs default 1 of 10." in line
        for line in said
    )
    assert not any("Every pair behind" in line for line in said)


def test_local_and_wandb_backends_give_the_same_report(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Any]
) -> None:
    spec = "method: grid\nparameters:\n  init: {values: [default, he_normal]}\n  arch: {values: [cnn6, dcase2018_cnn]}\n  fold: {values: [1, 2, 3]}\n"
    rng = np.random.default_rng(0)
    stand_ins = []
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(spec))
        while (claim := backend.claim(sweep.id, "a")).status == "claimed":
            assert claim.run and claim.token
            rows = [
                {"epoch": e + 1, "val/accuracy": float(rng.uniform(0.5, 0.9))} for e in range(4)
            ]
            for e, row in enumerate(rows):
                backend.log(claim.run.id, claim.token, e, row)
            summary = {
                "test/accuracy": float(rng.uniform(0.6, 0.9)),
                "epochs_to_90": 2,
                "time/inference_ms_per_clip": 1.5,
                "parameters": 10,
                "environment": {  # the cnn6 runs on another host: the report names it
                    "precision": "bfloat16" if claim.run.params["arch"] == "cnn6" else "float32",
                    "packages": {"torch": "2.14.1"},
                },
            }
            if claim.run.number == 5:
                backend.fail(claim.run.id, claim.token, "boom")
                state = "crashed"
            else:
                backend.finish(claim.run.id, claim.token, summary)
                state = "finished"
            config = {
                **claim.run.params,
                "sample_rate": 32000,
                "n_mels": 64,
            }  # W&B holds the whole RunConfig
            w_summary = (
                {
                    **summary,
                    "environment": SubDict(summary["environment"]),
                    "_runtime": 12.0,
                    "_step": 3,
                }
                if state == "finished"
                else {"_runtime": 1.0}
            )
            w_history = [{**r, "_step": i, "_runtime": float(i)} for i, r in enumerate(rows)]
            stand_ins.append(StandInRun(claim.run.name, state, config, w_summary, w_history))
        local = LocalController(backend, sweep).records()
    wandb_side = records_from_runs(stand_ins, knobs=["init", "arch", "fold"])
    _, a = write_report(local, tmp_path / "local", sweep_id=sweep.id)
    _, b = write_report(wandb_side, tmp_path / "wandb", sweep_id=sweep.id)
    assert a.markdown.read_text() == b.markdown.read_text()
    for name in ("summary.csv", "runs.csv", "tables.tex"):
        assert (tmp_path / "local" / name).read_text() == (tmp_path / "wandb" / name).read_text(), (
            name
        )
    assert "failed" in a.markdown.read_text()
    assert "| precision | float32 | 6 |" in b.markdown.read_text()
    assert "arch=dcase2018_cnn vs cnn6 compared runs of different" in b.markdown.read_text()
    # The CLI, given the W&B sweep's path, reads it through W&B's API (stood in for here).
    from asc_sweep.backends import wandb as wandb_backend

    api_sweep = SimpleNamespace(id=sweep.id, runs=stand_ins, config=yaml.safe_load(spec))
    monkeypatch.setattr(wandb_backend, "api_sweep", lambda path: api_sweep)
    result = cli("report", f"lab/asc/{sweep.id}", "--out", tmp_path / "cli")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "summary.csv").read_text() == (
        tmp_path / "local" / "summary.csv"
    ).read_text()


PROBE = """<script>window.addEventListener("load", () => {
  const loaded = [...document.images].filter((i) => i.complete && i.naturalWidth > 0).length;
  const overflow = Math.max(0, document.documentElement.scrollWidth - window.innerWidth);
  document.body.setAttribute("data-images", String(loaded));
  document.body.setAttribute("data-overflow", String(overflow));
});</script>"""


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is installed by .ci/run"
)
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    data, files = write_report(planted(0.03), tmp_path / "r", sweep_id="abc123")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]  # fmt: skip
    url = files.html.resolve().as_uri()
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0
    assert "CONSOLE" not in dom.stderr  # no console errors (nothing failed to load or run)
    assert dom.stdout.count("<table") == sum(1 for s in sections(data) if s[2][1])
    assert dom.stdout.count("data:image/png;base64,") == len(files.plots)  # embedded, not fetched
    for heading in ("What this sweep shows", "Cross-fold results", "Main effects",
                    "Accuracy against inference latency"):  # fmt: skip
        assert heading in dom.stdout
    # At 1280 px: every image decoded, nothing wider than the window (a probe script in a copy
    # of the page writes what it measured into the DOM).
    probe = tmp_path / "r" / "probe.html"
    probe.write_text(files.html.read_text().replace("</body>", PROBE + "</body>"))
    measured = subprocess.run(
        ["chromium", *flags, "--window-size=1280,900", "--virtual-time-budget=10000", "--dump-dom",
         probe.resolve().as_uri()], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert f'data-images="{len(files.plots)}"' in measured.stdout, measured.stdout[-500:]
    assert 'data-overflow="0"' in measured.stdout
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, "--window-size=1280,3000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000


def test_cli_report_defaults_to_the_latest_sweep(
    cli: Callable[..., Any], store: Path, tmp_path: Path
) -> None:
    spec = "method: grid\nparameters:\n  init: {values: [default, he_normal]}\n  fold: {values: [1, 2]}\n"
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(spec))
        while (claim := backend.claim(sweep.id, "a")).status == "claimed":
            assert claim.run and claim.token
            backend.finish(
                claim.run.id, claim.token, {"test/accuracy": 0.5 + 0.1 * claim.run.number}
            )
    result = cli(
        "report", "--store", store, "--out", tmp_path / "rep", "--reference", "init=he_normal"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "report.html").exists() and "he_normal" in result.stdout
    shown = result.stdout.split("what this sweep shows:")[1]
    assert (
        "init=default against init=he_normal on test/accuracy: -0.100 in each of 2 folds" in shown
    )
    bad = cli("report", "--store", store, "--out", tmp_path / "rep2", "--reference", "arch=cnn6")
    assert bad.exit_code == 2 and "--reference arch: not a swept factor; swept: init" in bad.stderr
    bad_metric = cli("report", "--store", store, "--metric", "test/acc")
    assert bad_metric.exit_code == 2 and "runs have no such metric" in bad_metric.stderr


def test_a_small_search_s_ranges_are_read_from_its_spec(
    cli: Callable[..., Any], store: Path, tmp_path: Path
) -> None:
    """12 runs of a random search give lr 12 values, too few to tell it from a grid's levels:
    the spec says lr is drawn from a range, so it is not compared level by level."""
    spec = ("method: random\nrun_cap: 12\nparameters:\n  lr: {min: 0.0001, max: 0.1, "
            "distribution: log_uniform_values}\n  init: {values: [default, he_normal]}\n"
            "  fold: {values: [1, 2]}\n  epochs: {value: 3}\n")  # fmt: skip
    assert sampled_knobs(parse_spec(spec).config) == ["lr"]
    assert sampled_knobs(parse_spec(spec.replace("method: random", "method: grid")
                                    .replace("lr: {min: 0.0001, max: 0.1, distribution: "
                                             "log_uniform_values}", "lr: {values: [0.1]}"))
                         .config) == []  # fmt: skip
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(parse_spec(spec), seed=1)
        while (claim := backend.claim(sweep.id, "a")).status == "claimed":
            assert claim.run and claim.token
            accuracy = 0.9 + 0.05 * math.log10(claim.run.params["lr"])
            backend.finish(claim.run.id, claim.token, {"test/accuracy": accuracy})
    result = cli("report", "--store", store, "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    shown = result.stdout.split("what this sweep shows:")[1]
    assert "lr took 12 values, too many to compare level by level" not in shown
    assert "lr was drawn from a range by the spec" in shown
    # Each run against its fold's mean (2 folds of 6 runs): the fold means, which hold part
    # of lr's own effect, blur a perfect order a little.
    assert "higher lr goes with higher test/accuracy (Spearman's rho +0.92 over 12 runs" in shown
    assert "lr=" not in shown  # no level-by-level sentences
    level = sorted(r.params["lr"] for r in LocalBackend(store).runs(sweep.id))[0]
    bad = cli("report", "--store", store, "--out", tmp_path / "rep2", "--reference", f"lr={level}")
    assert bad.exit_code == 2 and bad.stderr.strip().endswith(
        "--reference lr: lr is sampled from a range (12 values), so no level of it is compared "
        "with another and it takes no reference"
    )
    assert not (tmp_path / "rep2").exists()


def test_report_into_a_file_path_is_a_one_line_error(
    cli: Callable[..., Any], store: Path, tmp_path: Path
) -> None:
    with LocalBackend(store) as backend:
        sweep = backend.create_sweep(
            parse_spec("method: grid\nparameters:\n  fold: {values: [1, 2]}\n")
        )
        claim = backend.claim(sweep.id, "a")
        assert claim.run and claim.token
        backend.finish(claim.run.id, claim.token, {"test/accuracy": 0.5})
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    result = cli("report", "--store", store, "--out", blocker)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {blocker}: File exists"
