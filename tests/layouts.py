"""Miniature copies of the official dataset layouts, with generated audio and real metadata formats."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(
    seconds: float, rate: int, freq: float = 440.0, channels: int = 1, seed: int = 0
) -> np.ndarray:
    """A tone plus a little noise; (samples,) or (samples, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16000, **kw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = str(kw.pop("subtype", "PCM_16"))
    container = str(kw.pop("container", "WAV"))
    sf.write(path, tone(seconds, rate, **kw), rate, subtype=subtype, format=container)  # type: ignore[arg-type]


TUT_LABELS = ["beach", "cafe/restaurant", "home"]


def make_tut(root: Path, with_identifier: bool) -> None:
    """TUT Acoustic Scenes 2016 (2 columns) or 2017 (3 columns) development layout: 4 folds.

    Each label has 4 locations, one per fold; each location has 2 segments.
    """
    meta, per_fold = [], {k: [] for k in range(1, 5)}
    for li, label in enumerate(TUT_LABELS):
        for loc in range(4):
            location = f"{'abc'[li]}{loc:03d}"
            for seg in range(2):
                rel = f"audio/{location}_{seg * 10}_{seg * 10 + 10}.wav"
                write_wav(root / rel, freq=200 + 100 * li)
                meta.append([rel, label, location] if with_identifier else [rel, label])
                per_fold[loc + 1].append([rel, label])
    (root / "meta.txt").write_text("".join("\t".join(r) + "\n" for r in meta))
    setup = root / "evaluation_setup"
    setup.mkdir()
    for k in range(1, 5):
        test = per_fold[k]
        train = [r for j in range(1, 5) if j != k for r in per_fold[j]]
        (setup / f"fold{k}_train.txt").write_text("".join("\t".join(r) + "\n" for r in train))
        (setup / f"fold{k}_evaluate.txt").write_text("".join("\t".join(r) + "\n" for r in test))
        (setup / f"fold{k}_test.txt").write_text("".join(r[0] + "\n" for r in test))


def make_tau(root: Path) -> None:
    """TAU Urban Acoustic Scenes 2019/2020 development layout: tab-separated with headers, 1 fold."""
    rows = []
    for label in ("airport", "metro_station"):
        for city in ("barcelona", "helsinki"):
            for loc in range(2):
                for seg in range(2):
                    rel = f"audio/{label}-{city}-{loc}-{seg}-a.wav"
                    write_wav(root / rel)
                    rows.append((rel, label, f"{city}-{loc}", "a"))
    with (root / "meta.csv").open("w") as f:
        f.write("filename\tscene_label\tidentifier\tsource_label\n")
        f.writelines("\t".join(r) + "\n" for r in rows)
    setup = root / "evaluation_setup"
    setup.mkdir()
    test = [r for r in rows if r[2].endswith("-1")]
    train = [r for r in rows if not r[2].endswith("-1")]
    for name, part in (("fold1_train.csv", train), ("fold1_evaluate.csv", test)):
        with (setup / name).open("w") as f:
            f.write("filename\tscene_label\n")
            f.writelines(f"{r[0]}\t{r[1]}\n" for r in part)


def make_esc50(root: Path) -> None:
    """ESC-50 layout: meta/esc50.csv and audio/, 5 folds; dog and rain are in ESC-10."""
    rows = []
    for target, (category, esc10) in enumerate(
        (("dog", True), ("rain", True), ("chirping_birds", False))
    ):
        for fold in range(1, 6):
            src = f"{fold}{target}0{target:02d}"
            for take in "AB":
                name = f"{fold}-{src}-{take}-{target}.wav"
                write_wav(root / "audio" / name, seconds=0.5, rate=44100)
                rows.append([name, fold, target, category, esc10, src, take])
    (root / "meta").mkdir()
    with (root / "meta" / "esc50.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        w.writerows(rows)


# rate, channels, subtype, seconds, container: UrbanSound8K mixes all of these, 4-bit IMA
# ADPCM and WAVE_FORMAT_EXTENSIBLE headers (format tag 65534, "WAVEX") too.
US8K_FORMATS = [
    (44100, 2, "PCM_16", 0.5, "WAV"),
    (48000, 1, "PCM_24", 0.3, "WAV"),
    (22050, 1, "PCM_U8", 0.7, "WAV"),
    (8000, 2, "FLOAT", 0.2, "WAV"),
    (11025, 1, "IMA_ADPCM", 0.4, "WAV"),
    (96000, 2, "PCM_24", 0.6, "WAVEX"),
]
# IMA ADPCM decodes whole blocks: up to a block (505 samples a channel at 11025 Hz) more.
ADPCM_BLOCK_SECONDS = 505 / 11025


def make_urbansound8k(root: Path, folds: int = 3) -> None:
    """UrbanSound8K layout: metadata/UrbanSound8K.csv, audio/foldN/, mixed rates and channels."""
    rows = []
    classes = [(0, "air_conditioner"), (3, "dog_bark")]
    n = 0
    for fold in range(1, folds + 1):
        for class_id, name in classes:
            fs_id = 100 * fold + class_id
            for slice_no in range(2):
                rate, channels, subtype, seconds, container = US8K_FORMATS[n % len(US8K_FORMATS)]
                n += 1
                fname = f"{fs_id}-{class_id}-0-{slice_no}.wav"
                write_wav(
                    root / "audio" / f"fold{fold}" / fname,
                    seconds=seconds,
                    rate=rate,
                    channels=channels,
                    subtype=subtype,
                    container=container,
                )
                rows.append([fname, fs_id, 0.0, seconds, 1, fold, class_id, name])
    (root / "metadata").mkdir()
    with (root / "metadata" / "UrbanSound8K.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
        )
        w.writerows(rows)


def make_csv(root: Path, rows: list[tuple[str, str, int, str]] | None = None) -> None:
    """The csv layout: meta.csv with filename,label,fold,group."""
    if rows is None:
        rows = [
            (f"clips/{lab}_{i}.wav", lab, 1 + i % 2, f"{lab}-g{i % 2}")
            for lab in ("a", "b")
            for i in range(4)
        ]
        for rel, *_ in rows:
            write_wav(root / rel)
    with (root / "meta.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "label", "fold", "group"])
        w.writerows(rows)


def make_folder(root: Path) -> None:
    """One sub-folder per class; files named <location>_<n>."""
    for label in ("park", "street"):
        for loc in range(8):
            for n in range(2):
                write_wav(root / label / f"loc{loc}_{n}.wav", freq=300 if label == "park" else 900)
