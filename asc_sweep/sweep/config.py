"""``RunConfig``: every knob of one run, typed, with its default and what is allowed.

The knob names are a public contract: users write them in sweep YAML files. Each field's
``metadata`` (built with :func:`knob`) says what values are allowed, so that the spec
validator, the CLI's ``--set`` parser and the docs all read one table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asc_sweep.errors import Problem, SpecError
from asc_sweep.sweep.recipes import NATIVE_RATE_CAP, RECIPE_NAMES, recipe_for, resolve

SELECTION_NAMES: tuple[str, ...] = ("best_accuracy", "best_loss", "average", "last")

# Registry names. The dataset, architecture and init registries are checked against these
# names by their own tests, so a spec that validates here names something that exists.
DATASET_NAMES: tuple[str, ...] = (
    "synth",
    "csv",
    "folder",
    "dcase2016",
    "dcase2017",
    "tau2019",
    "tau2020",
    "esc50",
    "esc10",
    "urbansound8k",
)
# Folds each dataset defines officially (`csv` datasets bring their own).
DATASET_FOLDS: dict[str, int] = {
    "synth": 4,
    "folder": 4,
    "dcase2016": 4,
    "dcase2017": 4,
    "tau2019": 1,
    "tau2020": 1,
    "esc50": 5,
    "esc10": 5,
    "urbansound8k": 10,
}
ARCH_NAMES: tuple[str, ...] = (
    "dcase2017_mlp",
    "dcase2018_cnn",
    "piczak_cnn",
    "sb_cnn",
    "m5",
    "m11",
    "cnn6",
    "cnn10",
    "cp_resnet",
    "crnn",
)
# The architectures that classify each frame on its own (``AscModel.frame_wise``).
FRAME_WISE_ARCHS: tuple[str, ...] = ("dcase2017_mlp",)
# The architectures that read the waveform, not log-mel (``AscModel.input_kind``): the front-end
# knobs do not reach them.
WAVEFORM_ARCHS: tuple[str, ...] = ("m5", "m11")
# The fewest mel bands each log-mel architecture's layers can take (the others take any number);
# the models' own tests hold them to it. Any number of frames, down to one, fits every model.
MIN_MELS: dict[str, int] = {
    "dcase2018_cnn": 20,
    "piczak_cnn": 7,
    "cnn6": 16,
    "cnn10": 16,
    "crnn": 32,
}
INIT_NAMES: tuple[str, ...] = (
    "default",
    "he_normal",
    "he_uniform",
    "xavier_normal",
    "xavier_uniform",
    "orthogonal",
    "lecun_normal",
)

# Metrics a run logs (history and summary); a sweep's `metric.name` must be one of them.
METRIC_NAMES: tuple[str, ...] = (
    "val/accuracy",
    "val/macro_f1",
    "val/loss",
    "train/accuracy",
    "train/loss",
    "test/accuracy",
    "test/macro_f1",
    "test/log_loss",
)


@dataclass(frozen=True)
class Knob:
    """What one ``RunConfig`` field accepts."""

    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False


def knob(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
) -> Any:
    """A dataclass field carrying its :class:`Knob` description."""
    spec = Knob(
        help=help,
        choices=tuple(choices) if choices is not None else None,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=exclusive_minimum,
    )
    return field(default=default, metadata={"knob": spec})


@dataclass(frozen=True)
class RunConfig:
    """Every knob of one run. Build with :meth:`from_dict`, which validates."""

    # data
    dataset: str = knob("synth", "dataset adapter", choices=DATASET_NAMES)
    data_root: str = knob("asc-sweep-data/synth", "folder holding the dataset")
    fold: int = knob(1, "cross-validation fold, 1-based as the dataset numbers them", minimum=1)
    seed: int = knob(0, "random seed", minimum=0, maximum=2**32 - 1)
    val_fraction: float = knob(
        0.15, "share of the training part held out for validation, by group", minimum=0, maximum=0.5
    )
    skip_list: str | None = knob(
        None, "file of clips to leave out (written by `data check --skip-bad`)"
    )
    # front end
    sample_rate: int | None = knob(
        None,
        "Hz the audio is resampled to (null: the dataset's native rate, capped at 32 kHz)",
        minimum=1000,
        maximum=192000,
    )
    n_mels: int = knob(64, "mel bands", minimum=1, maximum=512)
    # Upper bounds on the lengths keep their sample counts finite integers (an hour of
    # audio is the longest clip decoding takes).
    win_ms: float = knob(
        40.0, "analysis window in ms", minimum=0, maximum=10_000, exclusive_minimum=True
    )
    hop_ms: float = knob(20.0, "hop in ms", minimum=0, maximum=10_000, exclusive_minimum=True)
    f_min: float = knob(0.0, "lowest mel frequency in Hz", minimum=0)
    f_max: float | None = knob(
        None, "highest mel frequency in Hz (null: sample_rate / 2)", minimum=0
    )
    mel_scale: str = knob("slaney", "mel scale", choices=("slaney", "htk"))
    # recipe
    recipe: str = knob(
        "modern",
        "training recipe: sets the defaults of every other knob (knobs set here still win); "
        "'paper' is the recipe of the architecture's own paper",
        choices=RECIPE_NAMES,
    )
    # model
    arch: str = knob("dcase2018_cnn", "architecture", choices=ARCH_NAMES)
    init: str = knob("default", "weight initialisation", choices=INIT_NAMES)
    pretrained: str | None = knob(
        None, "PANNs AudioSet checkpoint for cnn6/cnn10: a file or a URL (downloaded once)"
    )
    pretrained_sha256: str | None = knob(None, "expected SHA-256 of the pretrained checkpoint")
    freeze_epochs: int = knob(
        0, "epochs to train only the output layer of a pretrained model", minimum=0
    )
    # training
    optimizer: str = knob("adamw", "optimiser", choices=("adamw", "sgd"))
    lr: float = knob(1e-3, "peak learning rate", minimum=0, exclusive_minimum=True)
    weight_decay: float = knob(0.05, "weight decay", minimum=0)
    momentum: float = knob(0.9, "SGD momentum (Nesterov)", minimum=0, maximum=0.999)
    schedule: str = knob("cosine", "learning-rate schedule", choices=("cosine", "step", "constant"))
    warmup_epochs: int = knob(2, "linear warm-up epochs", minimum=0)
    batch_size: int = knob(16, "clips per batch", minimum=1)
    epochs: int = knob(40, "maximum epochs", minimum=1)
    patience: int = knob(0, "early-stopping patience in epochs (0: off)", minimum=0)
    min_epochs: int = knob(0, "epochs before early stopping may end a run", minimum=0)
    selection: str = knob(
        "average",
        "which weights are tested: the epoch of best validation accuracy, of best validation "
        "loss (mean of 3 epochs), or the average of the last average_epochs epochs' weights",
        choices=SELECTION_NAMES,
    )
    average_epochs: int = knob(
        8, "epochs whose weights selection 'average' averages (the last ones)", minimum=1
    )
    crop_seconds: float | None = knob(
        2.0,
        "training crop length in s (null: whole clips)",
        minimum=0,
        maximum=3600,
        exclusive_minimum=True,
    )
    specaugment: bool = knob(True, "SpecAugment time and frequency masking")
    mixup: float = knob(0.0, "mixup alpha (0: off)", minimum=0)
    mixstyle: float = knob(
        0.0,
        "Freq-MixStyle: probability that a batch mixes its clips' per-band statistics",
        minimum=0,
        maximum=1,
    )
    label_smoothing: float = knob(0.1, "label smoothing of the targets", minimum=0, maximum=0.5)
    gain_db: float = knob(6.0, "random gain of each training clip, +/- dB", minimum=0, maximum=40)
    filter_db: float = knob(
        6.0,
        "FilterAugment: random smooth gain over the mel bands of each training clip, +/- dB",
        minimum=0,
        maximum=40,
    )
    freq_shift: int = knob(
        2, "random shift of each training clip's log-mel by up to +/- this many bands", minimum=0
    )
    eval_segment_seconds: float | None = knob(
        None,
        "evaluate on segments of this length and vote (null: whole clips)",
        minimum=0,
        maximum=3600,
        exclusive_minimum=True,
    )
    eval_hop_seconds: float = knob(
        0.5, "hop between evaluation segments in s", minimum=0, maximum=3600, exclusive_minimum=True
    )
    voting: str = knob(
        "mean",
        "how segment (with frame_targets, frame) predictions make a clip's: mean probability "
        "or majority vote",
        choices=("mean", "majority"),
    )
    frame_targets: bool = knob(
        False,
        "frame-wise models (dcase2017_mlp): train on every frame labelled with its clip's "
        "class, and vote the frames' decisions into the clip's at evaluation (by voting)",
    )
    # execution
    device: str = knob(
        "auto", "where to train (auto: GPU when present)", choices=("auto", "cpu", "cuda")
    )
    amp: bool = knob(
        True,
        "mixed precision: on CUDA, and on CPUs that compute bfloat16 natively (Intel AMX, "
        "AVX512-BF16); "
        "the run's environment records which (precision)",
    )
    amp_dtype: str = knob(
        "auto",
        "mixed-precision type: auto (bfloat16 where the GPU has it, else float16 with loss "
        "scaling), bfloat16, float16",
        choices=("auto", "bfloat16", "float16"),
    )
    resident: str = knob(
        "auto",
        "keep the fold's clips on the run's device and build batches there: auto (on a GPU "
        "when they take at most a quarter of its free memory), always, never (host batches)",
        choices=("auto", "always", "never"),
    )
    checkpoint_every: int = knob(
        1,
        "epochs between checkpoints of a run in a sweep (a requeued run resumes from the last "
        "one, bit for bit); raise it where epochs take a second or two on a GPU",
        minimum=1,
    )
    deterministic: bool = knob(
        True,
        "deterministic cuDNN kernels on CUDA (a resumed run ends bit for bit as an "
        "uninterrupted one); false lets cuDNN pick the fastest, non-deterministic kernels",
    )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Defaults overridden by ``values``; raises :class:`SpecError` naming every bad key."""
        problems = [
            Problem(name, msg)
            for name, value in values.items()
            for msg in knob_problems(name, value)
        ]
        if not problems:
            try:
                values = resolve(values)
            except KeyError as exc:
                problems.append(Problem("recipe", str(exc.args[0])))
        if problems:
            raise SpecError(problems, source="config")
        config = cls(**dict(values))
        cross = config.cross_field_problems()
        if cross:
            raise SpecError([Problem(path, msg) for path, msg in cross], source="config")
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def cross_field_problems(self) -> list[tuple[str, str]]:
        """Settings that are fine alone but impossible together, as (key, message) pairs."""
        return combination_problems(**{k: getattr(self, k) for k in COMBINED_KNOBS})

    @property
    def rate(self) -> int:
        """The sample rate in Hz, once resolved (``with_native_rate``)."""
        if self.sample_rate is None:
            raise ValueError("sample_rate is not resolved yet: call with_native_rate first")
        return self.sample_rate

    def with_native_rate(self, native: int) -> RunConfig:
        """``sample_rate: null`` resolved to ``native``, capped at 32 kHz; checked again."""
        if self.sample_rate is not None:
            return self
        resolved = dataclasses.replace(self, sample_rate=min(native, NATIVE_RATE_CAP))
        cross = resolved.cross_field_problems()
        if cross:
            raise SpecError(
                [Problem(path, f"{msg} (the dataset's native rate)") for path, msg in cross],
                source="config",
            )
        return resolved

    @property
    def paper_recipe(self) -> str:
        """The recipe this run's defaults came from (``paper`` resolved by arch)."""
        return recipe_for(self.recipe, self.arch).name

    @property
    def group(self) -> str:
        """The configuration without fold and seed: runs that differ only there are one cell."""
        rest = {k: v for k, v in self.to_dict().items() if k not in ("fold", "seed")}
        return config_hash(rest)[:12]


KNOBS: dict[str, Knob] = {f.name: f.metadata["knob"] for f in dataclasses.fields(RunConfig)}
KNOB_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
DEFAULTS: dict[str, Any] = RunConfig().to_dict()


def config_hash(values: Mapping[str, Any]) -> str:
    """A stable hash of a configuration: canonical JSON, keys sorted, floats as Python writes them."""
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def type_name(name: str) -> str:
    """The knob's type as a user reads it: 'integer', 'number', 'boolean', 'string', '... or null'."""
    text = KNOB_TYPES[name]
    base = text.split("|")[0].strip()
    word = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}[base]
    return f"{word} or null" if "None" in text else word


def _type_ok(name: str, value: Any) -> bool:
    text = KNOB_TYPES[name]
    if value is None:
        return "None" in text
    base = text.split("|")[0].strip()
    checks: dict[str, Callable[[Any], bool]] = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }
    return checks[base](value)


def knob_problems(name: str, value: Any) -> list[str]:
    """What is wrong with one knob value (empty when it is allowed)."""
    if name not in KNOBS:
        return [unknown_knob_message(name)]
    spec = KNOBS[name]
    if not _type_ok(name, value):
        kind = type_name(name)
        return [f"{value!r} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind}"]
    if value is None:
        return []
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{value!r} is not a finite number"]
    if spec.choices is not None and value not in spec.choices:
        return [f"{value!r} is not allowed; allowed: {', '.join(map(str, spec.choices))}"]
    return range_problems(name, value, value)


def range_problems(name: str, low: float, high: float) -> list[str]:
    """Whether values between ``low`` and ``high`` respect the knob's bounds."""
    spec = KNOBS[name]
    problems = []
    if spec.minimum is not None:
        too_low = low <= spec.minimum if spec.exclusive_minimum else low < spec.minimum
        if too_low:
            relation = ">" if spec.exclusive_minimum else ">="
            problems.append(f"{low!r} is out of range; {name} must be {relation} {spec.minimum:g}")
    if spec.maximum is not None and high > spec.maximum:
        problems.append(f"{high!r} is out of range; {name} must be <= {spec.maximum:g}")
    return problems


# Names other tools give to knobs, for the "did you mean" hint.
KNOB_ALIASES = {
    "learning_rate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "bs": "batch_size",
    "architecture": "arch",
    "model": "arch",
    "sr": "sample_rate",
    "sampling_rate": "sample_rate",
    "mels": "n_mels",
    "num_mels": "n_mels",
    "wd": "weight_decay",
    "weight_init": "init",
}


def unknown_knob_message(name: str) -> str:
    import difflib

    close = [KNOB_ALIASES[name]] if name in KNOB_ALIASES else []
    close = close or difflib.get_close_matches(name, KNOBS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown knob{hint}; allowed: {', '.join(KNOBS)}"


# --- audio feasibility ----------------------------------------------------------------------


def n_fft_for(sample_rate: int, win_ms: float) -> int:
    """FFT size for a window: the next power of two at or above the window length in samples."""
    win = max(1, round(sample_rate * win_ms / 1000))
    return 1 << (win - 1).bit_length()


def _hz_to_mel(hz: float, scale: str) -> float:
    if scale == "htk":
        return 2595.0 * math.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    if hz < min_log_hz:
        return hz / f_sp
    return min_log_hz / f_sp + math.log(hz / min_log_hz) / (math.log(6.4) / 27.0)


def _mel_to_hz(mel: float, scale: str) -> float:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    if mel < min_log_mel:
        return mel * f_sp
    return min_log_hz * math.exp((math.log(6.4) / 27.0) * (mel - min_log_mel))


def empty_mel_bands(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, scale: str
) -> int:
    """How many triangular mel filters cover no FFT bin (all-zero rows of the filterbank)."""
    m_lo, m_hi = _hz_to_mel(f_min, scale), _hz_to_mel(f_max, scale)
    edges = [_mel_to_hz(m_lo + (m_hi - m_lo) * i / (n_mels + 1), scale) for i in range(n_mels + 2)]
    bin_hz = sample_rate / n_fft
    empty = 0
    for i in range(n_mels):
        lo, hi = edges[i], edges[i + 2]
        first_bin_above_lo = math.floor(lo / bin_hz) + 1  # FFT bins sit at k * bin_hz
        if not (first_bin_above_lo * bin_hz < hi and first_bin_above_lo <= n_fft // 2):
            empty += 1
    return empty


def model_problems(
    *,
    arch: str,
    n_mels: int,
    pretrained: str | None,
    frame_targets: bool,
    eval_segment_seconds: float | None,
    freeze_epochs: int,
) -> list[tuple[str, str]]:
    """What an architecture, its pretrained weights and frame-wise training need of each
    other and of the bands, as (key, message) pairs."""
    problems = []
    if arch not in WAVEFORM_ARCHS and n_mels < MIN_MELS.get(arch, 1):
        fewest = MIN_MELS[arch]
        problems.append(
            ("n_mels", f"{n_mels} mel bands are too few for {arch}, which needs at least {fewest}")
        )
    if pretrained is not None and arch not in ("cnn6", "cnn10"):
        problems.append(("pretrained", f"PANNs weights fit cnn6 and cnn10, not arch {arch}"))
    if frame_targets and arch not in FRAME_WISE_ARCHS:
        problems.append(
            (
                "frame_targets",
                f"needs a frame-wise arch ({', '.join(FRAME_WISE_ARCHS)}), not {arch}",
            )
        )
    if frame_targets and eval_segment_seconds is not None:
        problems.append(
            ("eval_segment_seconds", "must be null with frame_targets (the frames are voted)")
        )
    if freeze_epochs and pretrained is None:
        problems.append(("freeze_epochs", "needs pretrained weights to keep"))
    if pretrained is not None and n_mels != 64:
        problems.append(("n_mels", f"{n_mels}: PANNs weights were trained on 64 mel bands"))
    return problems


# What ``audio_problems`` and ``model_problems`` read; ``COMBINED_KNOBS`` are both, which the
# spec validator tries together at every corner of a sweep.
AUDIO_ARGS = ("sample_rate", "win_ms", "hop_ms", "n_mels", "f_min", "f_max", "mel_scale", "arch",
              "crop_seconds", "eval_segment_seconds")  # fmt: skip
MODEL_ARGS = ("arch", "n_mels", "pretrained", "frame_targets", "eval_segment_seconds",
              "freeze_epochs")  # fmt: skip
COMBINED_KNOBS: tuple[str, ...] = tuple(dict.fromkeys(AUDIO_ARGS + MODEL_ARGS))


def combination_problems(**settings: Any) -> list[tuple[str, str]]:
    """Every problem of knobs that are fine alone but not together (``COMBINED_KNOBS``)."""
    model = model_problems(**{k: settings[k] for k in MODEL_ARGS})
    return model + audio_problems(**{k: settings[k] for k in AUDIO_ARGS})


def audio_problems(
    *,
    sample_rate: int | None,
    win_ms: float,
    n_mels: int,
    f_min: float,
    f_max: float | None,
    mel_scale: str,
    arch: str | None = None,
    crop_seconds: float | None = None,
    eval_segment_seconds: float | None = None,
    hop_ms: float | None = None,
) -> list[tuple[str, str]]:
    """Front-end settings that cannot work together, or crops too short for ``arch``'s
    front end, as (key, message) pairs; nothing without a ``sample_rate`` (the dataset's own,
    not known yet)."""
    if sample_rate is None:
        return []
    nyquist = sample_rate / 2
    top = nyquist if f_max is None else f_max
    if top > nyquist:
        return [
            ("f_max", f"{top:g} Hz is above sample_rate / 2 = {nyquist:g} Hz at {sample_rate} Hz")
        ]
    if f_min >= top:
        return [("f_min", f"{f_min:g} Hz must be below f_max = {top:g} Hz")]
    if hop_ms is not None and hop_ms * sample_rate < 1000:  # under one sample: frames = samples
        return [("hop_ms", f"{hop_ms:g} ms is shorter than one sample at {sample_rate} Hz; use at "
                 f"least {1000 / sample_rate:g} ms")]  # fmt: skip
    n_fft = n_fft_for(sample_rate, win_ms)
    empty = empty_mel_bands(sample_rate, n_fft, n_mels, f_min, top, mel_scale)
    if empty:
        return [
            (
                "n_mels",
                f"{n_mels} mel bands is too many for n_fft = {n_fft} ({win_ms:g} ms at "
                f"{sample_rate} Hz): {empty} bands would hold no FFT bin; use fewer bands or a "
                "longer window",
            )
        ]
    if arch is not None and arch not in WAVEFORM_ARCHS:
        pieces = {"crop_seconds": crop_seconds, "eval_segment_seconds": eval_segment_seconds}
        for key, seconds in pieces.items():
            if seconds is not None and round(seconds * sample_rate) < n_fft:
                return [
                    (
                        key,
                        f"{seconds:g} s is shorter than one FFT frame (n_fft = {n_fft} samples "
                        f"for a {win_ms:g} ms window at {sample_rate} Hz); use at least "
                        f"{math.ceil(n_fft / sample_rate * 1000) / 1000:g} s or a shorter win_ms",
                    )
                ]
    return []
