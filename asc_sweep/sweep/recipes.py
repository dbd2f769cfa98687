"""Training recipes: one knob, ``recipe``, that sets the defaults of every other knob.

A recipe is a complete training set-up: front end, crop, optimiser, schedule, epochs, batch
size, augmentation, model selection and evaluation. Knobs that a sweep spec (or ``--set``)
names still win over the recipe; the run's stored config holds the resolved values.

- ``modern`` (the default) is what we would use today for small-data audio classification;
  each of its choices, and the evidence for it, is in :data:`MODERN`'s notes below.
- One recipe per legacy architecture reproduces its paper's training set-up, with the paper's
  published figure and dataset; ``recipe: paper`` picks the recipe of the run's ``arch``, so a
  sweep over ``recipe: [paper, modern]`` x ``arch`` compares each architecture under its own
  paper's recipe and under ``modern``. Where a paper's set-up cannot be followed exactly, the
  recipe says what differs.

This module holds plain values only: ``sweep.config`` validates them (a test builds every
recipe for every architecture it names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The sample-rate ceiling of ``sample_rate: null`` (the dataset's native rate): above 32 kHz
# a log-mel front end gains nothing for scene and event classes (PANNs, Kong et al. 2020,
# train at 32 kHz and report 16 kHz within 1 mAP point of it), while compute grows with it.
NATIVE_RATE_CAP = 32000


@dataclass(frozen=True)
class Recipe:
    """A named training set-up: knob values, and where they come from."""

    name: str
    knobs: Mapping[str, Any]
    source: str  # the paper, or "asc-sweep"
    published: str = ""  # the paper's figure and dataset
    notes: tuple[str, ...] = field(default=())


# Every knob a legacy recipe turns off unless its paper used it.
_LEGACY_OFF: dict[str, Any] = {
    "specaugment": False,
    "mixup": 0.0,
    "mixstyle": 0.0,
    "label_smoothing": 0.0,
    "gain_db": 0.0,
    "filter_db": 0.0,
    "freq_shift": 0,
    "warmup_epochs": 0,
    "schedule": "constant",
    "weight_decay": 0.0,
    "momentum": 0.9,
    "min_epochs": 0,
    "patience": 0,
    "selection": "best_accuracy",
    "eval_segment_seconds": None,
    "frame_targets": False,
    "f_min": 0.0,
    "f_max": None,
    "mel_scale": "slaney",
}

MODERN = Recipe(
    name="modern",
    source="asc-sweep",
    knobs={
        "sample_rate": None,
        "n_mels": 64,
        "win_ms": 40.0,
        "hop_ms": 20.0,
        "f_min": 0.0,
        "f_max": None,
        "mel_scale": "slaney",
        "arch": "dcase2018_cnn",
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "momentum": 0.9,
        "schedule": "cosine",
        "warmup_epochs": 2,
        "batch_size": 16,
        "epochs": 40,
        "patience": 0,
        "min_epochs": 0,
        "selection": "average",
        "average_epochs": 8,
        "crop_seconds": 2.0,
        "specaugment": True,
        "mixup": 0.0,
        "mixstyle": 0.0,
        "label_smoothing": 0.1,
        "gain_db": 6.0,
        "filter_db": 6.0,
        "freq_shift": 2,
        "eval_segment_seconds": None,
        "frame_targets": False,
    },
    notes=(
        "Front end: the dataset's native rate, capped at 32 kHz (no upsampling: it adds no "
        "information and triples the cache of 22.05 kHz data); 64 mel bands (PANNs, Kong et al. "
        "2020), 40 ms windows and a 20 ms hop as the DCASE baselines use: a 10 ms hop "
        "doubled the training time on the realistic synthetic scenes and did not change fold "
        "1's test accuracy (0.632 and 0.609 with and without it, within noise); 4 folds of "
        "3,000 4-s clips must train on 2 CPU cores within 45 minutes.",
        "Random 2 s crops of each training clip (a random time shift every epoch; whole clips "
        "at evaluation, pooled with a mask), random gain of +/- 6 dB (recording level is a "
        "location cue, not a class cue), a random shift of the log-mel by up to 2 bands (a "
        "cheap stand-in for pitch shifting, the augmentation Salamon & Bello 2017 found most "
        "useful on UrbanSound8K), FilterAugment of +/- 6 dB (Nam et al. 2022: a smooth random "
        "gain over the mel bands, standing in for an unseen location's microphone and room; "
        "part of several top DCASE 2022-2023 systems), SpecAugment's masks (Park et al. 2019; "
        "used by PANNs and CP-ResNet) sized as PANNs size them, an eighth of the bands and a "
        "sixteenth of the example's frames (fixed 20-frame masks blanked up to 40 % of a 2 s "
        "crop at a 20 ms hop), label smoothing 0.1 (Szegedy et al. 2016). On the "
        "realistic synthetic scenes neither FilterAugment nor SpecAugment showed an effect "
        "(sweeps/augment-field.yaml, dcase2018_cnn, 4 folds: -0.019, p = 0.62, and +0.004, "
        "p = 0.91); they stay for the evidence on real recordings.",
        "Batch size 16, as the DCASE 2018 baseline and CP-ResNet train: on a few hundred "
        "clips a batch of 32 leaves 8 optimiser steps an epoch. On the realistic synthetic "
        "scenes (4 location-disjoint folds, dcase2018_cnn) batch 16 scored 0.742 against "
        "0.719 for 32 (at least as high on every fold) at the same CPU time.",
        "No mixup by default: with small models (0.1 M parameters) mixup on top of the masks "
        "left the network underfitting on UrbanSound8K (0.597 against 0.640 on fold 1 with "
        "dcase2018_cnn); the `mixup` knob stays for the ablation.",
        "AdamW (Loshchilov & Hutter 2019), lr 1e-3, decoupled weight decay 0.05, 2 warm-up "
        "epochs then a cosine decay over 40 epochs.",
        "Model selection: no early stopping; the test split sees the average of the weights "
        "of the last 8 epochs (stochastic weight averaging, Izmailov et al. 2018). With a "
        "group-held-out validation part of a few hundred clips, the best single epoch's "
        "validation accuracy is the maximum of noisy draws: it picks noise, and overstates "
        "the model (see `selection`). Against `best_loss` (the epoch of lowest validation "
        "loss averaged over 3 epochs) on the 3,000-clip realistic synthetic scenes (4 "
        "folds): dcase2018_cnn 0.738 averaged, 0.726 best_loss (at least as high on every "
        "fold); the frame-wise dcase2017_mlp, which starts fitting the training locations "
        "within a few epochs, the other way round, 0.542 averaged, 0.566 best_loss (every "
        "fold), but on the 336-clip set averaged again, 0.570 against 0.558. The default "
        "follows the default architecture; `selection: best_loss` is one knob away.",
        "Architecture: dcase2018_cnn (batch-normalised, 0.1 M parameters): sb_cnn, without "
        "batch normalisation, underfit under these augmentations on the realistic synthetic "
        "scenes (training accuracy 0.58, test 0.43 on fold 1); Freq-MixStyle (`mixstyle`, "
        "Schmid et al. 2022) made dcase2018_cnn underfit too (0.54 training accuracy) and "
        "is off by default.",
    ),
)

LEGACY: tuple[Recipe, ...] = (
    Recipe(
        name="dcase2017",
        source="Heittola, Mesaros et al., DCASE 2017 task 1 baseline system",
        published="74.8 % on TUT Acoustic Scenes 2017, development set, 4-fold CV",
        knobs={
            **_LEGACY_OFF,
            "arch": "dcase2017_mlp",
            "sample_rate": 44100,
            "n_mels": 40,
            "win_ms": 40.0,
            "hop_ms": 20.0,
            "optimizer": "adamw",  # Adam: weight decay 0
            "lr": 1e-3,
            "batch_size": 1,
            "epochs": 200,
            "patience": 10,
            "min_epochs": 100,
            "crop_seconds": None,
            "frame_targets": True,
            "voting": "majority",
        },
        notes=(
            "40 log-mel bands (40 ms windows, 20 ms hop) at 44.1 kHz, 5-frame context; Adam "
            "1e-3, 200 epochs, early stopping with patience 10 after epoch 100 on validation "
            "accuracy.",
            "Frame-level training, as the baseline trained: every frame (with its context) is "
            "an example labelled with its clip's scene (`frame_targets`), and at test the "
            "frames' decisions are majority-voted into the clip's. The baseline shuffled all "
            "frames into batches of 256; here a batch is one clip's frames (500 of a 10 s TUT "
            "clip), which keeps its number of optimiser steps an epoch within a factor of 2. "
            "(Batches of 256 whole clips with the frames' logits averaged made one optimiser "
            "step an epoch on a few hundred clips and left the MLP underfitting.)",
        ),
    ),
    Recipe(
        name="dcase2018",
        source="Heittola, Mesaros et al., DCASE 2018 task 1 baseline system",
        published="59.7 % on TUT Urban Acoustic Scenes 2018, development set (train/test split)",
        knobs={
            **_LEGACY_OFF,
            "arch": "dcase2018_cnn",
            "sample_rate": 48000,
            "n_mels": 40,
            "win_ms": 40.0,
            "hop_ms": 20.0,
            "optimizer": "adamw",
            "lr": 1e-3,
            "batch_size": 16,
            "epochs": 200,
            "crop_seconds": None,
        },
        notes=(
            "40 log-mel bands (40 ms windows, 20 ms hop) of 48 kHz audio, whole 10 s clips; "
            "Adam 1e-3, batch 16, 200 epochs; the epoch of best validation accuracy is kept; "
            "dropout 0.3 (part of the architecture).",
        ),
    ),
    Recipe(
        name="piczak2015",
        source="Piczak, Environmental sound classification with convolutional neural "
        "networks, MLSP 2015",
        published="0.73 on UrbanSound8K (10-fold CV); 0.645 on ESC-50 (5-fold CV)",
        knobs={
            **_LEGACY_OFF,
            "arch": "piczak_cnn",
            "sample_rate": 22050,
            "n_mels": 60,
            "win_ms": 1024 / 22.05,
            "hop_ms": 512 / 22.05,
            "optimizer": "sgd",
            "momentum": 0.9,
            "lr": 0.002,
            "weight_decay": 0.001,
            "batch_size": 1000,
            "epochs": 300,
            "selection": "last",
            "crop_seconds": 41 * 512 / 22050,
            "eval_segment_seconds": 41 * 512 / 22050,
            "eval_hop_seconds": 41 * 512 / 22050 / 2,
            "voting": "mean",
        },
        notes=(
            "60 log-mel bands (1024-sample windows, 512 hop at 22.05 kHz) with deltas; "
            "training on 41-frame segments (0.95 s); SGD with Nesterov momentum 0.9, lr 0.002, "
            "L2 0.001, batch 1000, 300 epochs; clips classified by probability voting over "
            "segments with 50 % overlap. Not reproduced: silent segments are not discarded.",
        ),
    ),
    Recipe(
        name="salamon2017",
        source="Salamon & Bello, Deep convolutional neural networks and data augmentation "
        "for environmental sound classification, IEEE SPL 2017",
        published="0.73 on UrbanSound8K without augmentation, 0.79 with it (10-fold CV)",
        knobs={
            **_LEGACY_OFF,
            "arch": "sb_cnn",
            "sample_rate": 44100,
            "n_mels": 128,
            "win_ms": 1024 / 44.1,
            "hop_ms": 1024 / 44.1,
            "optimizer": "sgd",
            "momentum": 0.0,
            "lr": 0.01,
            "batch_size": 100,
            "epochs": 50,
            "selection": "last",
            "crop_seconds": 128 * 1024 / 44100,
            "eval_segment_seconds": 128 * 1024 / 44100,
            "eval_hop_seconds": 1024 / 44100,
            "voting": "mean",
        },
        notes=(
            "128 log-mel bands (23 ms windows and hop at 44.1 kHz); 3 s patches (128 frames); "
            "plain SGD, lr 0.01, batch 100, 50 epochs; dropout 0.5 (part of the architecture); "
            "a clip's prediction is the mean over its 3 s patches with a hop of one frame. "
            "Reproduces the 0.73 figure: the paper's augmentations (time stretching, pitch "
            "shifting, dynamic range compression, background noise) are not part of it; its "
            "L2 of 0.001 on the dense layers is left out.",
        ),
    ),
    Recipe(
        name="dai2017",
        source="Dai, Dai, Qu, Li & Das, Very deep convolutional neural networks for raw "
        "waveforms, ICASSP 2017",
        published="M5 0.634, M11 0.691 on UrbanSound8K (folds 1-9 train, fold 10 test)",
        knobs={
            **_LEGACY_OFF,
            "arch": "m5",
            "sample_rate": 8000,
            "optimizer": "adamw",
            "lr": 0.01,
            "weight_decay": 1e-4,
            "schedule": "step",
            "batch_size": 128,
            "epochs": 100,
            "crop_seconds": None,
        },
        notes=(
            "8 kHz waveforms, whole clips of up to 4 s (32,000 samples); Adam with weight "
            "decay 1e-4, lr 0.01 reduced tenfold late in training (here at 50 % and 75 % of "
            "the epochs), batch 128; the epoch of best validation accuracy is kept.",
        ),
    ),
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (MODERN, *LEGACY)}

# ``recipe: paper``: the recipe of the architecture's own paper.
PAPER_RECIPES: dict[str, str] = {
    "dcase2017_mlp": "dcase2017",
    "dcase2018_cnn": "dcase2018",
    "piczak_cnn": "piczak2015",
    "sb_cnn": "salamon2017",
    "m5": "dai2017",
    "m11": "dai2017",
}

RECIPE_NAMES: tuple[str, ...] = (*RECIPES, "paper")


def recipe_for(name: str, arch: str | None) -> Recipe:
    """The recipe ``name`` stands for (``paper``: the one of ``arch``'s paper).

    Raises:
        KeyError: with a message naming what is allowed.
    """
    if name == "paper":
        if arch is None or arch not in PAPER_RECIPES:
            raise KeyError(
                f"recipe 'paper' needs an arch with a paper recipe; "
                f"allowed: {', '.join(PAPER_RECIPES)}"
            )
        name = PAPER_RECIPES[arch]
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; allowed: {', '.join(RECIPE_NAMES)}")
    return RECIPES[name]


def resolve(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` over the defaults of the recipe they name (``modern`` when none)."""
    name = values.get("recipe", "modern")
    recipe = recipe_for(str(name), values.get("arch") or MODERN.knobs["arch"])
    return {**recipe.knobs, **values, "recipe": name}
