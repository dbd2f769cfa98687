"""Spec validation: every bad spec exits 2 with one line per problem naming the key."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from asc_sweep.errors import SpecError
from asc_sweep.sweep.config import ARCH_NAMES, RunConfig
from asc_sweep.sweep.spec import load_spec, parse_spec

GRID_HEAD = "method: grid\nparameters:\n"

# (case id, spec text, what the message must name)
BAD_SPECS: list[tuple[str, str, str]] = [
    ("yaml-syntax", "method: grid\nparameters: {fold: {values: [1, 2}\n", "YAML syntax error"),
    (
        "unknown-method",
        "method: gird\nparameters:\n  fold: {value: 1}\n",
        "method: 'gird' is not allowed",
    ),
    (
        "unknown-knob",
        GRID_HEAD + "  lrr: {value: 0.1}\n",
        "parameters.lrr: unknown knob (did you mean 'lr'?)",
    ),
    (
        "wrong-type",
        GRID_HEAD + "  batch_size: {value: big}\n",
        "parameters.batch_size.value: 'big' is not an integer",
    ),
    ("bool-for-int", GRID_HEAD + "  epochs: {value: true}\n", "parameters.epochs.value"),
    ("empty-values", GRID_HEAD + "  init: {values: []}\n", "parameters.init.values: is empty"),
    (
        "min-above-max",
        "method: random\nparameters:\n  lr: {min: 0.1, max: 0.001}\n",
        "parameters.lr: min 0.1 must be less than max 0.001",
    ),
    (
        "unknown-arch",
        GRID_HEAD + "  arch: {values: [cnn6, cnn99]}\n",
        "parameters.arch.values[1]: 'cnn99' is not allowed",
    ),
    (
        "unknown-init",
        GRID_HEAD + "  init: {value: kaiming}\n",
        "parameters.init.value: 'kaiming' is not allowed",
    ),
    (
        "unknown-dataset",
        GRID_HEAD + "  dataset: {value: audioset}\n",
        "parameters.dataset.value: 'audioset' is not allowed",
    ),
    (
        "duplicate-key",
        GRID_HEAD + "  fold: {values: [1, 2]}\n  fold: {values: [3]}\n",
        "parameters.fold: duplicate key (first written on line 3)",
    ),
    (
        "f-max-above-nyquist",
        GRID_HEAD + "  sample_rate: {values: [8000, 16000]}\n  f_max: {value: 8000}\n",
        "parameters.f_max: 8000 Hz is above sample_rate / 2 = 4000 Hz",
    ),
    (
        "too-many-mels",
        GRID_HEAD + "  sample_rate: {value: 8000}\n  n_mels: {value: 256}\n  win_ms: {value: 25}\n",
        "parameters.n_mels: 256 mel bands is too many for n_fft = 256",
    ),
    (
        "too-few-mels-for-arch",
        GRID_HEAD + "  arch: {values: [sb_cnn, cnn10]}\n  n_mels: {values: [8, 64]}\n",
        "parameters.n_mels: 8 mel bands are too few for cnn10, which needs at least 16 (with arch=cnn10)",
    ),
    (
        "recipe-mels-too-few-for-arch",  # dcase2018's recipe sets 40 bands; crnn needs 32+
        GRID_HEAD + "  recipe: {value: dcase2018}\n  n_mels: {value: 24}\n  arch: {value: crnn}\n",
        "parameters.n_mels: 24 mel bands are too few for crnn",
    ),
    (
        "frame-targets-without-a-frame-wise-arch",
        GRID_HEAD + "  frame_targets: {value: true}\n  arch: {values: [dcase2017_mlp, cnn6]}\n",
        "parameters.frame_targets: needs a frame-wise arch (dcase2017_mlp), not cnn6 (with arch=cnn6)",
    ),
    (
        "recipe-frame-targets-with-another-arch",  # the dcase2017 recipe trains on frames
        GRID_HEAD + "  recipe: {value: dcase2017}\n  arch: {value: crnn}\n",
        "frame_targets: needs a frame-wise arch (dcase2017_mlp), not crnn (with arch=crnn)",
    ),
    (
        "freeze-without-pretrained",
        GRID_HEAD + "  freeze_epochs: {values: [0, 2]}\n",
        "parameters.freeze_epochs: needs pretrained weights to keep",
    ),
    (
        "bayes-over-seeds",  # it would keep the seed that scored best
        "method: bayes\nmetric: {name: val/accuracy, goal: maximize}\nparameters:\n"
        "  lr: {min: 0.001, max: 0.1}\n  seed: {min: 1, max: 5}\n",
        "parameters.seed: a bayes search would tune the seed like a hyperparameter, and drift "
        "to the seed that scores best",
    ),
    (
        "bayes-with-nothing-to-search",
        "method: bayes\nmetric: {name: val/accuracy, goal: maximize}\nparameters:\n  lr: {value: 0.01}\n",
        "parameters: bayes search needs a parameter to search (values:, or min: and max:)",
    ),
    (
        "random-with-nothing-to-search",  # one configuration, one seed, again and again
        "method: random\nrun_cap: 5\nparameters:\n  lr: {value: 0.01}\n  fold: {value: 1}\n",
        "parameters: random search needs a parameter to search (values:, or min: and max:); every "
        "one here is fixed with value: or a single value in values: (use method: grid for one run)",
    ),
    (
        "bayes-over-one-listed-fold",  # fold [1] is fixed: not tuned, but nothing to search
        "method: bayes\nmetric: {name: val/accuracy, goal: maximize}\nparameters:\n"
        "  fold: {values: [1]}\n  lr: {value: 0.01}\n",
        "parameters: bayes search needs a parameter to search",
    ),
    (
        "random-over-one-listed-value",  # values: [x] (or [x, x]) draws x every time
        "method: random\nrun_cap: 5\nparameters:\n  lr: {values: [0.01, 0.01]}\n"
        "  arch: {values: [cnn6]}\n",
        "parameters: random search needs a parameter to search",
    ),
    (
        "window-of-a-lifetime",  # its sample count would overflow: lengths have upper bounds
        GRID_HEAD + "  sample_rate: {value: 16000}\n  win_ms: {value: 4.0e+303}\n",
        "parameters.win_ms.value: 4e+303 is out of range; win_ms must be <= 10000",
    ),
    (
        "hop-shorter-than-a-sample",  # every sample its own frame: the features outgrow memory
        GRID_HEAD + "  sample_rate: {values: [8000, 16000]}\n  hop_ms: {value: 0.1}\n",
        "parameters.hop_ms: 0.1 ms is shorter than one sample at 8000 Hz; use at least 0.125 ms "
        "(with sample_rate=8000)",
    ),
    (
        "crop-shorter-than-a-frame",
        GRID_HEAD + "  sample_rate: {value: 16000}\n  crop_seconds: {values: [0.01, 2.0]}\n",
        "parameters.crop_seconds: 0.01 s is shorter than one FFT frame (n_fft = 1024 samples for a "
        "40 ms window at 16000 Hz); use at least 0.064 s",
    ),
    (
        "segment-shorter-than-a-frame",
        GRID_HEAD
        + "  sample_rate: {values: [8000, 32000]}\n  eval_segment_seconds: {value: 0.05}\n",
        "parameters.eval_segment_seconds: 0.05 s is shorter than one FFT frame (n_fft = 512 "
        "samples for a 40 ms window at 8000 Hz)",
    ),
    ("no-parameters", "method: grid\n", "'parameters' is required"),
    (
        "bayes-without-metric",
        "method: bayes\nparameters:\n  lr: {min: 0.001, max: 0.1}\n",
        "metric: bayes search needs a metric",
    ),
    (
        "unknown-metric",
        "method: grid\nmetric: {name: val/acc}\nparameters:\n  fold: {value: 1}\n",
        "metric.name: unknown metric 'val/acc'",
    ),
    (
        "continuous-in-grid",
        GRID_HEAD + "  lr: {min: 0.001, max: 0.1}\n",
        "parameters.lr: distribution 'uniform' cannot be used with grid search",
    ),
    (
        "unknown-top-level-key",
        "method: grid\nlease: 30\nparameters:\n  fold: {value: 1}\n",
        "lease: unknown key",
    ),
    (
        "out-of-range",
        GRID_HEAD + "  lr: {value: -0.1}\n",
        "parameters.lr.value: -0.1 is out of range; lr must be > 0",
    ),
    (
        "float-distribution-for-int",
        "method: random\nparameters:\n  batch_size: {min: 8.0, max: 64.0}\n",
        "parameters.batch_size: distribution 'uniform' samples floats",
    ),
    ("not-a-mapping", "- method\n- grid\n", "a sweep spec is a YAML mapping"),
    ("empty-file", "", "not empty"),
    (
        "unknown-distribution",
        "method: random\nparameters:\n  lr: {min: 0.001, max: 0.1, distribution: log_normal_values}\n",
        "parameters.lr: unknown distribution 'log_normal_values'",
    ),
    (
        "hyperband-without-iter",
        "method: grid\nmetric: {name: val/loss}\nearly_terminate: {type: hyperband}\nparameters:\n  fold: {value: 1}\n",
        "early_terminate: hyperband needs min_iter",
    ),
    (
        "grid-too-large",
        GRID_HEAD + "  seed: {min: 0, max: 200000}\n",
        "parameters: the grid has 200001 configurations",
    ),
    (
        "unknown-early-terminate",
        "method: grid\nmetric: {name: val/loss}\nearly_terminate: {type: median}\nparameters:\n  fold: {value: 1}\n",
        "early_terminate: type: hyperband is the only early termination",
    ),
    (
        "probabilities",
        "method: random\nparameters:\n  init: {values: [default, he_normal], probabilities: [0.5, 0.6]}\n",
        "parameters.init.probabilities: sum to 1.1, not 1",
    ),
    (
        "fold-not-in-dataset",
        GRID_HEAD + "  dataset: {value: dcase2017}\n  fold: {values: [1, 2, 3, 4, 5]}\n",
        "parameters.fold: fold 5 does not exist in dcase2017, which has folds 1-4",
    ),
    ("parameter-not-mapping", GRID_HEAD + "  fold: 3\n", "parameters.fold: must be a mapping"),
    (
        "bayes-on-test",
        "method: bayes\nmetric: {name: test/accuracy, goal: maximize}\nparameters:\n  lr: {min: 0.001, max: 0.1}\n",
        "metric.name: 'test/accuracy' would select models on the test split (bayes search decide",
    ),
    (
        "hyperband-on-test",
        "method: grid\nmetric: {name: test/log_loss, goal: minimize}\n"
        "early_terminate: {type: hyperband, min_iter: 2}\nparameters:\n  fold: {values: [1, 2]}\n",
        "use a validation metric: val/accuracy, val/macro_f1 or val/loss",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_exits_2_with_one_line_naming_the_key(
    text: str, expected: str, write_spec: Callable[..., Path], cli: Callable[..., Any], store: Path
) -> None:
    path = write_spec(text)
    result = cli("create", path, "--store", store)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {path}")
    assert expected in lines[0]
    assert "Traceback" not in result.output
    assert not store.exists()  # nothing registered, nothing half-written


def test_missing_file_names_the_file(cli: Callable[..., Any], tmp_path: Path, store: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = cli("create", missing, "--store", store)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {missing}: no such file"


def test_every_problem_is_reported_at_once_with_lines() -> None:
    text = textwrap.dedent(
        """\
        method: grid
        metric: {name: val/acc}
        parameters:
          lrr: {value: 0.1}
          init: {values: []}
          arch: {value: cnn99}
        """
    )
    with pytest.raises(SpecError) as info:
        parse_spec(text, "s.yaml")
    rendered = str(info.value).splitlines()
    assert rendered == [
        "s.yaml:4: parameters.lrr: " + rendered[0].split("parameters.lrr: ")[1],
        "s.yaml:5: parameters.init.values: is empty; give at least one value",
        "s.yaml:6: parameters.arch.value: 'cnn99' is not allowed; allowed: "
        + ", ".join(ARCH_NAMES),
        "s.yaml:2: metric.name: " + rendered[3].split("metric.name: ")[1],
    ]
    assert len(info.value.problems) == 4


GOOD_SPECS = {
    "grid": """
        method: grid
        name: sr x init
        metric: {name: test/accuracy, goal: maximize}
        parameters:
          sample_rate: {values: [8000, 16000, 32000]}
          f_max: {value: null}
          init: {values: [default, he_normal]}
          fold: {values: [1, 2, 3, 4]}
          epochs: {value: 5}
        """,
    "random": """
        method: random
        run_cap: 20
        parameters:
          lr: {min: 0.0001, max: 0.1, distribution: log_uniform_values}
          batch_size: {values: [16, 32, 64]}
          mixup: {min: 0.0, max: 0.4}
          specaugment: {values: [true, false]}
        """,
    "grid-may-name-a-test-metric": """
        method: grid
        metric: {name: test/accuracy, goal: maximize}
        parameters:
          fold: {values: [1, 2]}
        """,
    "bayes-hyperband": """
        method: bayes
        metric: {name: val/loss, goal: minimize}
        early_terminate: {type: hyperband, min_iter: 2, eta: 2}
        parameters:
          lr: {min: 0.0001, max: 0.1}
          n_mels: {min: 32, max: 128}
        """,
}


@pytest.mark.parametrize("name", list(GOOD_SPECS))
def test_good_spec_registers_and_prints_the_id(
    name: str, write_spec: Callable[..., Path], cli: Callable[..., Any], store: Path
) -> None:
    result = cli("create", write_spec(GOOD_SPECS[name]), "--store", store)
    assert result.exit_code == 0, result.output
    sweep_id = result.stdout.strip()
    assert len(sweep_id) == 6 and sweep_id.isalnum()
    assert f"created sweep {sweep_id}" in result.stderr


def test_grid_size_counts_every_configuration(write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(GOOD_SPECS["grid"]))
    assert spec.grid_size() == 3 * 2 * 4


def test_f_max_checked_against_every_sampled_rate() -> None:
    """A random search that samples sample_rate and f_max must be safe at every corner."""
    text = "method: random\nparameters:\n  sample_rate: {values: [16000, 44100]}\n  f_max: {min: 4000.0, max: 11000.0}\n"
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    (problem,) = info.value.problems
    assert problem.path == "parameters.f_max"
    assert "at 16000 Hz" in problem.message


def test_run_config_rejects_what_the_spec_rejects() -> None:
    assert RunConfig.from_dict({"sample_rate": 16000, "arch": "cnn10"}).arch == "cnn10"
    with pytest.raises(SpecError, match="f_max"):
        RunConfig.from_dict({"sample_rate": 8000, "f_max": 6000.0})
    with pytest.raises(SpecError, match="unknown knob"):
        RunConfig.from_dict({"nmels": 64})


def test_what_the_model_cannot_take_is_refused_before_a_run_starts() -> None:
    """Too few bands for an architecture, or a crop shorter than one FFT frame, fail at
    ``create`` (or at the run's start, with a native rate), not with a traceback mid-run; a
    waveform model takes any crop and ignores the bands."""
    with pytest.raises(SpecError, match="n_mels: 6 mel bands are too few for piczak_cnn"):
        RunConfig.from_dict({"arch": "piczak_cnn", "n_mels": 6})
    native = RunConfig.from_dict({"arch": "cnn6", "crop_seconds": 0.05})  # checked at the rate
    with pytest.raises(
        SpecError, match=r"crop_seconds: 0.05 s is shorter than one FFT frame .*native"
    ):
        native.with_native_rate(16000)  # 800 samples, n_fft 1024
    assert native.with_native_rate(22050).rate == 22050  # 1102 samples, n_fft 1024
    raw = RunConfig.from_dict(
        {"arch": "m5", "n_mels": 6, "crop_seconds": 0.001, "sample_rate": 8000}
    )
    assert raw.crop_seconds == 0.001
    spec = "method: grid\nparameters:\n  recipe: {value: paper}\n  arch: {values: [%s]}\n"
    assert parse_spec(spec % ", ".join(ARCH_NAMES[:6])).grid_size() == 6  # every paper recipe fits


def test_group_ignores_fold_and_seed() -> None:
    a = RunConfig.from_dict({"fold": 1, "seed": 0})
    b = RunConfig.from_dict({"fold": 3, "seed": 7})
    c = RunConfig.from_dict({"fold": 1, "init": "he_normal"})
    assert a.group == b.group != c.group


def test_a_value_listed_twice_is_refused_in_a_grid_only() -> None:
    """A repeated value runs its configurations twice in a grid, and the report's pairs would
    count them as one; in a random or bayes search it weighs the draws (W&B's meaning)."""
    spec = textwrap.dedent("""
        method: {method}
        metric: {{name: val/accuracy, goal: maximize}}
        parameters:
          dataset: {{value: synth}}
          mixup: {{values: [0.0, 0.2, 0.0]}}
          specaugment: {{values: [true, false]}}
    """)
    with pytest.raises(SpecError) as refused:
        parse_spec(spec.format(method="grid"))
    assert any(
        p.path == "parameters.mixup.values" and "0.0 is listed twice: a grid would" in p.message
        for p in refused.value.problems
    )
    assert parse_spec(spec.format(method="random")).method == "random"
    assert parse_spec(spec.format(method="grid").replace("0.2, 0.0", "0.2, 0.4")).grid_size() == 6
