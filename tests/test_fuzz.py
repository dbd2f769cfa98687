"""Hostile input, generated: specs, run configurations and audio files that nobody thought to
write down.

The bad-input corpus (``test_bad_inputs.py``) holds the cases someone thought of. Here
hypothesis mutates the shipped sweep specs (a key dropped, a value swapped for a number, a
string, a list, a mapping of spec words, NaN or a huge integer, a key added) and holds every
result to the contract: a spec is either refused with a ``SpecError`` whose every line names
the file and what is wrong, or it registers, and then each run its sweep hands out is a valid
run configuration. Never another exception: the CLI would print a traceback. The runs are
drawn deterministically (``derandomize``), so CI sees the same examples every time.

Audio files get the same treatment from their bytes: a header field overwritten (a rate, a
channel count, a frame count), bits flipped, the file cut short or grown; decoding, resampling
and ``data check``'s inspection either work or raise an ``AudioError`` naming the clip.

Reports read what runs logged, and a W&B sweep's runs (or a custom run function's) may log
anything: a report over runs whose summaries and histories hold NaN, infinities, text, lists,
mappings, ragged confusion matrices, and whose knobs take mappings and lists, renders every
table and counts only the finite numbers. And what a report says of an effect is held to what
was planted: the winner, the size and an interval on its side of zero, at any number of folds,
for a score and for a loss.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import math
import re
import resource
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torchaudio.functional  # noqa: F401  (mapped before memory_limit lowers the limit)
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from asc_sweep.backends import LocalBackend
from asc_sweep.data.audio import AudioError, decode, load_clip
from asc_sweep.data.base import Clip
from asc_sweep.data.check import inspect_clip
from asc_sweep.errors import SpecError
from asc_sweep.report import RunRecord, write_report
from asc_sweep.report.findings import findings
from asc_sweep.report.records import swept_factors
from asc_sweep.report.render import render_html, render_latex, render_markdown, write_effects_csv
from asc_sweep.report.stats import analyse
from asc_sweep.sweep.config import (
    ARCH_NAMES,
    DATASET_NAMES,
    DEFAULTS,
    INIT_NAMES,
    KNOB_TYPES,
    KNOBS,
    METRIC_NAMES,
    RunConfig,
)
from asc_sweep.sweep.recipes import RECIPE_NAMES
from asc_sweep.sweep.spec import SweepSpec, parse_spec

from .conftest import ROOT

SHIPPED = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "sweeps").glob("*.yaml"))]

# The words a spec is made of, so that mutations land on near misses, not only on noise.
WORDS = sorted(
    {*KNOBS, *ARCH_NAMES, *DATASET_NAMES, *INIT_NAMES, *METRIC_NAMES, *RECIPE_NAMES}
    | {"value", "values", "min", "max", "distribution", "q", "mu", "sigma", "probabilities"}
    | {"uniform", "int_uniform", "log_uniform_values", "q_uniform", "normal", "categorical"}
    | {"method", "metric", "parameters", "run_cap", "early_terminate", "name", "goal"}
    | {"grid", "random", "bayes", "hyperband", "min_iter", "max_iter", "eta", "s", "strict"}
    | {"maximize", "minimize", "", "null", "~", "nan", "1e3", "ü"}
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 16000, 2**31, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1e-9, 1e308]),
    st.sampled_from(WORDS),
    st.text(max_size=6),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.dictionaries(st.sampled_from(WORDS), scalars, max_size=3),
    st.lists(st.dictionaries(st.sampled_from(WORDS), scalars, max_size=2), max_size=2),
)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*at, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*at, i))


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 3))):
        everywhere = list(_paths(doc))[1:]
        knobs = [p for p in everywhere if p[0] == "parameters" and len(p) > 1]
        # Mostly inside parameters: the knobs are where specs differ and checks interlock.
        path = draw(st.sampled_from(knobs if knobs and draw(st.booleans()) else everywhere))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        node = parent[path[-1]]
        how = draw(st.sampled_from(["replace", "drop", "add-beside", "add-inside"]))
        if how == "replace":
            parent[path[-1]] = draw(values)
        elif how == "drop":
            del parent[path[-1]]
        elif how == "add-beside" and isinstance(parent, dict):
            parent[draw(st.sampled_from(WORDS))] = draw(values)
        elif how == "add-inside" and isinstance(node, dict):
            node[draw(st.sampled_from(WORDS))] = draw(values)
        elif how == "add-inside" and isinstance(node, list):
            node.append(draw(values))
    return doc


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBackend]:
    backend = LocalBackend(tmp_path_factory.mktemp("fuzz") / "sweeps.db")
    yield backend
    backend.close()


def _hand_out_runs(store: LocalBackend, spec: SweepSpec) -> int:
    """Register ``spec`` and build the run configuration of its first runs, as an agent does."""
    sweep = store.create_sweep(spec, seed=0)
    ran = 0
    for _ in range(2):
        claim = store.claim(sweep.id, "fuzz")
        if claim.run is None:
            break
        config = RunConfig.from_dict(claim.run.params)
        if config.sample_rate is None:
            try:  # the rest depends on the dataset's own rate: refused then, or fine
                config.with_native_rate(44100)
            except SpecError as exc:
                assert exc.problems and all(p.message for p in exc.problems)
        store.finish(claim.run.id, claim.token, {"val/accuracy": 0.5, "val/loss": 1.0})
        ran += 1
    return ran


# Specs register into one store for the module (a fixture hypothesis does not reset).
SPEC_RUNS = settings(
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@settings(SPEC_RUNS, max_examples=1000)
@given(doc=mutated_specs())
def test_a_mutated_spec_is_refused_with_named_problems_or_runs(
    doc: dict[str, Any], fuzz_store: LocalBackend
) -> None:
    _refused_by_name_or_runs(doc, fuzz_store)


def _refused_by_name_or_runs(doc: dict[str, Any], fuzz_store: LocalBackend) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    try:
        spec = parse_spec(text, "fuzzed.yaml")
    except SpecError as exc:
        event(f"refused at {exc.problems[0].path.split('.')[0] or 'the top'}")
        assert exc.problems
        lines = str(exc).splitlines()
        assert len(lines) == len(exc.problems)
        assert all(line.startswith("fuzzed.yaml") and line.split(": ", 1)[1] for line in lines)
        return
    event("registered")
    assert _hand_out_runs(fuzz_store, spec) >= 1 or spec.method == "grid"


def _edges(name: str) -> list[Any]:
    """Values of a knob at and just past what it allows: its choices and a near miss, its
    bounds and one step beyond them, its default, null."""
    knob, default = KNOBS[name], DEFAULTS[name]
    if knob.choices is not None:
        return [*knob.choices, "nope", default]
    if isinstance(default, bool):
        return [True, False, default]
    out: list[Any] = [default, None, 1, 0]
    for bound in (knob.minimum, knob.maximum):
        if bound is not None:
            out += [bound, bound - 1, bound + 1, bound / 2, bound * 2]
    integral = "int" in KNOB_TYPES[name]
    return [int(v) if integral and isinstance(v, float) and v.is_integer() else v for v in out]


@st.composite
def knob_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs written from the knob table: several knobs, each at a value, a list of values or
    a range, drawn from its edges; so that most register and the cross-field checks (bands
    and windows, architectures, crops, folds, recipes) meet their corners."""
    method = draw(st.sampled_from(["grid", "random", "bayes"]))
    names = draw(st.lists(st.sampled_from(sorted(KNOBS)), min_size=1, max_size=5, unique=True))
    parameters: dict[str, Any] = {"dataset": {"value": "synth"}}
    for name in names:
        edges = st.sampled_from(_edges(name))
        form = draw(st.sampled_from(["value", "values", "range"]))
        if form == "value":
            parameters[name] = {"value": draw(edges)}
        elif form == "values":
            parameters[name] = {
                "values": draw(st.lists(edges, min_size=1, max_size=3, unique_by=repr))
            }
        else:
            low, high = sorted([draw(edges), draw(edges)], key=lambda v: (v is None, repr(v)))
            parameters[name] = {"min": low, "max": high}
    return {"method": method, "metric": {"name": "val/accuracy", "goal": "maximize"},
            "parameters": parameters}  # fmt: skip


@settings(SPEC_RUNS, max_examples=500)
@given(doc=knob_specs())
def test_a_spec_at_the_knobs_edges_is_refused_with_named_problems_or_runs(
    doc: dict[str, Any], fuzz_store: LocalBackend
) -> None:
    _refused_by_name_or_runs(doc, fuzz_store)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    knobs=st.dictionaries(
        st.sampled_from(sorted(KNOBS)),
        st.one_of(values, st.sampled_from([None, 1, 8000, 0.01, 40.0, "cnn10", "htk", True])),
        max_size=6,
    )
)
def test_a_run_configuration_is_valid_or_refused_with_every_bad_key(knobs: dict[str, Any]) -> None:
    """What ``--set`` and a sweep hand to a run: ``RunConfig.from_dict`` accepts it (and then
    every value is finite and of its knob's type) or names each bad key."""
    try:
        config = RunConfig.from_dict(knobs)
    except SpecError as exc:
        assert exc.problems and all(p.path and p.message for p in exc.problems)
        assert all(p.path.split(".")[0] in KNOBS for p in exc.problems)
        return
    for name, value in config.to_dict().items():
        assert not (isinstance(value, float) and not math.isfinite(value)), name
    if config.sample_rate is not None:
        assert 1000 <= config.sample_rate <= 192000


def test_the_shipped_specs_all_register(tmp_path: Path) -> None:
    """The mutations start from valid specs (else every example would be refused)."""
    store = LocalBackend(tmp_path / "sweeps.db")
    try:
        for doc in SHIPPED:
            spec = parse_spec(yaml.safe_dump(doc, sort_keys=False), "shipped.yaml")
            assert _hand_out_runs(store, spec) >= 1
    finally:
        store.close()


def _encoded(fmt: str, subtype: str, rate: int, channels: int) -> bytes:
    wave = np.random.default_rng(0).standard_normal((4000, channels)).astype(np.float32) * 0.1
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


ENCODED = [
    _encoded("WAV", "PCM_16", 16000, 1),
    _encoded("WAV", "FLOAT", 44100, 2),
    _encoded("WAV", "PCM_U8", 8000, 1),
    _encoded("FLAC", "PCM_16", 22050, 1),
    _encoded("OGG", "VORBIS", 16000, 1),
    _encoded("AIFF", "PCM_24", 48000, 3),
]
HEADER_WORDS = [0, 1, 3, 7, 2**16 - 1, 2**31, 2**32 - 1, 44101, 192000, 10**9]
# Where formats keep what a decoder sizes its work by: RIFF size, channels, rate, byte rate,
# block size and data size of a canonical WAV; a FLAC's rate and 36-bit frame count.
HEADER_FIELDS = [4, 22, 24, 28, 32, 40, 18, 21, 22]


@contextlib.contextmanager
def memory_limit(extra: int) -> Iterator[None]:
    """This process may map ``extra`` bytes more than it has now (an allocation past that is
    a MemoryError), so that a file that makes a decoder allocate gigabytes fails the test
    instead of the host."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@st.composite
def damaged_audio(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(ENCODED)))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["word", "byte", "flip", "cut", "grow"]))
        if how == "word" and len(data) >= 4:  # a 32-bit header field: rate, sizes, channels
            field = st.sampled_from(HEADER_FIELDS) | st.integers(0, 56)
            at = min(draw(field), len(data) - 4)
            data[at : at + 4] = struct.pack("<I", draw(st.sampled_from(HEADER_WORDS)))
        elif how == "byte":
            data[draw(st.integers(0, min(63, len(data) - 1)))] = draw(st.integers(0, 255))
        elif how == "flip":
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[draw(st.integers(0, len(data))) :]
        else:
            data += draw(st.binary(max_size=64))
        if not data:
            break
    return bytes(data)


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=damaged_audio())
def test_a_damaged_audio_file_decodes_or_is_refused_by_name(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    for read in (decode, lambda p: load_clip(p, 16000)):
        try:
            with memory_limit(1 << 30):
                read(path)
        except AudioError as exc:
            assert str(exc).startswith(f"{path}: ") and len(str(exc).splitlines()) == 1
            event(f"refused: {str(exc).split(': ', 1)[1].split(' (')[0][:40]}")
    report = inspect_clip(tmp_path, Clip(path="clip.wav", label="a", group="g"))
    assert all(message for message in report.errors)


JUNK = st.sampled_from(
    [None, math.nan, math.inf, -math.inf, "0.7", True, [], {}, -1.0, 2.0, 10**30]
)
SUMMARY_KEYS = ["test/accuracy", "test/macro_f1", "test/log_loss", "epochs_to_90", "epochs_run",
                "time/inference_ms_per_clip", "parameters", "data/test_clips", "data/train_clips"]  # fmt: skip


@st.composite
def logged_runs(draw: st.DrawFn) -> list[RunRecord]:
    knob_values = st.sampled_from(
        [0.1, "a", "b", None, True, 16000, 8000, [1, 2], {"k": 1}, 1, 1.0]
    )
    factors = draw(st.dictionaries(st.sampled_from(["arch", "init", "sample_rate", "mixup"]),
                                   st.lists(knob_values, min_size=1, max_size=3), max_size=2))  # fmt: skip
    folds = draw(st.lists(st.sampled_from([1, 2, 3, 4, 5, None, "3"]), min_size=1, max_size=4))
    classes = ["a", "b", "c"][: draw(st.integers(1, 3))]
    maybe = lambda good: st.one_of(st.just(good), st.just(good), st.just(good), JUNK)  # noqa: E731
    records = []
    for combo in itertools.product(*factors.values()):
        for fold in folds:
            params = {**dict(zip(factors, combo, strict=True)), "fold": fold}
            state = draw(st.sampled_from(["finished"] * 5 + ["failed", "stopped", "running"]))
            acc = draw(st.floats(0.3, 0.95))
            summary = {k: draw(maybe(acc if "accuracy" in k else 3.0)) for k in SUMMARY_KEYS}
            n = len(classes) + draw(st.sampled_from([0, 0, 0, 1]))
            summary["classes"] = draw(maybe(classes))
            summary["confusion"] = draw(maybe([[1] * n for _ in classes]))
            summary[f"test/accuracy/{classes[0]}"] = draw(maybe(acc))
            summary["environment"] = draw(
                maybe({"precision": draw(st.sampled_from(["float32", "bfloat16"]))})
            )
            history = [
                {"epoch": e + 1, "val/accuracy": draw(maybe(acc))}
                for e in range(draw(st.integers(0, 4)))
            ]
            records.append(RunRecord(f"run-{len(records)}", params, state, summary, history))
    return records


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    records=logged_runs(),
    metric=st.sampled_from(["test/accuracy", "test/log_loss", "val/accuracy"]),
)
def test_a_report_over_whatever_runs_logged_renders_every_table(
    records: list[RunRecord], metric: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = analyse(records, sweep_id="fuzz", sweep_name=None, factors=swept_factors(records),
                   metric=metric, expected_folds=[1, 2, 3])  # fmt: skip
    effects_csv = tmp_path_factory.mktemp("effects") / "effects.csv"
    write_effects_csv(effects_csv, data)
    for text in (
        render_markdown(data, []),
        render_html(data, []),
        render_latex(data),
        effects_csv.read_text(),
        *findings(data),
    ):
        assert text and "Traceback" not in text
    for cell in data.cells:
        assert all(math.isfinite(v) for v in cell.values.get(metric, []))
        # Every counted fold has a value (the mean of its runs there), or each of its runs is
        # named with what it logged instead.
        unusable = sum("finished without a finite" in m for m in cell.missing)
        assert cell.n(metric) <= len(cell.folds) <= cell.n(metric) + unusable, (
            cell.folds,
            cell.missing,
        )
    for effects in data.effects.values():
        assert all(math.isfinite(d) for e in effects for d in e.diffs)
    for found in data.interactions.values():
        assert all(math.isfinite(d) for i in found for d in i.diffs)


def test_a_report_of_hostile_runs_writes_every_file_and_plot(tmp_path: Path) -> None:
    """One sweep of every kind of junk, through ``write_report`` with its plots."""
    records = []
    for i, (arch, init, fold) in enumerate(
        itertools.product(["cnn6", "m5 | x\ny"], [{"gain": 1}, [1, 2]], [1, 2, 3])
    ):
        good = i % 3 != 0
        summary = {"test/accuracy": 0.6 + 0.01 * i if good else math.nan, "test/log_loss": "high",
                   "classes": ["a", "b"], "confusion": [[3, 1], [2]] if i == 4 else [[3, 1], [2, 4]],
                   "time/inference_ms_per_clip": math.inf if i == 5 else 1.5, "epochs_to_90": None,
                   "data/test_clips": True, "data/train_clips": 0}  # fmt: skip
        history = [
            {"epoch": 1, "val/accuracy": math.nan},
            {"epoch": 2, "val/accuracy": 0.5 + 0.01 * i},
        ]
        records.append(
            RunRecord(
                f"r{i}", {"arch": arch, "init": init, "fold": fold}, "finished", summary, history
            )
        )
    data, files = write_report(records, tmp_path / "report", sweep_id="junk")
    assert files.markdown.read_text() and files.html.read_text() and files.runs_csv.read_text()
    tables: list[list[int]] = [[]]  # unescaped pipes of each row, table by table
    for line in files.markdown.read_text().splitlines():
        if line.startswith("|"):
            tables[-1].append(len(re.findall(r"(?<!\\)\|", line)))
        elif tables[-1]:
            tables.append([])
    assert all(len(set(t)) == 1 for t in tables if t), (
        tables
    )  # a knob's "|" and newline stay in their cell
    assert files.plots and all(p.stat().st_size > 0 for p in files.plots)
    assert {e.level for e in data.effects["init"]} == {(1, 2)}  # a mapping and a list: two levels
    (cell,) = [c for c in data.cells if c.params == {"arch": "cnn6", "init": {"gain": 1}}]
    assert cell.values["test/accuracy"] == [0.61, 0.62]  # fold 1 logged NaN: two folds count


@settings(max_examples=120, derandomize=True, deadline=None)
@given(
    folds=st.integers(3, 10),
    effect=st.sampled_from([-0.2, -0.1, -0.05, 0.05, 0.1, 0.2]),
    spread=st.floats(0.01, 0.1),
    seed=st.integers(0, 2**16),
    metric=st.sampled_from(["test/accuracy", "test/log_loss"]),
)
def test_a_planted_effect_is_said_with_its_winner_its_size_and_an_interval_around_it(
    folds: int, effect: float, spread: float, seed: int, metric: str
) -> None:
    """Beside crash freedom, what the findings say: a planted difference twenty times the
    noise between folds (and folds that differ from each other by up to ``spread``) is named
    with the right winner (for a loss, the lower), its size, and an interval on its side of
    zero that holds it, whatever the number of folds and whichever level wins."""
    rng = np.random.default_rng(seed)
    noise = abs(effect) / 20
    records = []
    for fold in range(1, folds + 1):
        base = 0.6 + rng.uniform(-spread, spread)
        for init, shift in (("default", 0.0), ("he_normal", effect)):
            value = base + shift + rng.normal(0, noise / 4)
            records.append(RunRecord(f"{init}-{fold}", {"init": init, "fold": fold}, "finished",
                                     {metric: value}))  # fmt: skip
    data = analyse(records, sweep_id="planted", sweep_name=None, factors=["init"], metric=metric)
    (e,) = data.effects["init"]
    assert abs(e.mean - effect) < noise and e.ci_low < e.mean < e.ci_high
    assert e.ci_low - noise < effect < e.ci_high + noise
    better = "he_normal" if (effect > 0) == (metric == "test/accuracy") else "default"
    worse = "default" if better == "he_normal" else "he_normal"
    said = findings(data)[0]
    lead = re.match(rf"init={better} beats init={worse} on {metric} by (\d\.\d+) \(", said)
    assert lead and abs(float(lead[1]) - abs(effect)) < noise, said
    low, high = (float(x) for x in re.findall(r"95% CI ([-+]\d\.\d+) to ([-+]\d\.\d+)", said)[0])
    assert 0 < low <= abs(e.mean) <= high, said  # the winner's lead, with its own interval
