"""LogMel matches librosa, is the same batched as item by item, and refuses impossible settings."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from asc_sweep.data.features import LogMel, fit_normalization
from asc_sweep.sweep.config import RunConfig

SETTINGS = [  # sample rate, window, hop, mels, f_min, f_max, scale
    (16000, 400, 160, 64, 0.0, None, "slaney"),
    (32000, 1024, 320, 128, 50.0, 14000.0, "htk"),
    (8000, 200, 80, 40, 0.0, 4000.0, "slaney"),
    (44100, 2048, 441, 96, 20.0, None, "htk"),
]


@pytest.mark.parametrize(("sr", "win", "hop", "n_mels", "f_min", "f_max", "scale"), SETTINGS)
def test_matches_librosa(
    sr: int, win: int, hop: int, n_mels: int, f_min: float, f_max: float | None, scale: str
) -> None:
    x = (np.random.default_rng(sr).standard_normal(sr) * 0.1).astype(np.float32)
    front = LogMel(
        sr, n_mels=n_mels, win_length=win, hop_length=hop, f_min=f_min, f_max=f_max, mel_scale=scale
    )
    ours = front.mel(torch.from_numpy(x)[None])[0].double().numpy()
    ref = librosa.feature.melspectrogram(
        y=x.astype(np.float64), sr=sr, n_fft=front.n_fft, hop_length=hop, win_length=win, window="hann",
        center=True, pad_mode="reflect", power=2.0, n_mels=n_mels, fmin=f_min, fmax=f_max,
        htk=scale == "htk", norm="slaney",
    )  # fmt: skip
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref) / np.abs(ref)) <= 1e-4
    banded = front.banded_mel(torch.from_numpy(x)[None])[0].double().numpy()  # the CPU path
    assert np.max(np.abs(banded - ref) / np.abs(ref)) <= 1e-4
    db = front.log_mel(torch.from_numpy(x)[None])[0].numpy()
    assert np.max(np.abs(db - librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=None))) <= 1e-3


def test_batched_equals_item_by_item() -> None:
    front = LogMel(16000, n_mels=64, win_length=400, hop_length=160)
    rng = np.random.default_rng(0)
    clips = [
        torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for n in (16000, 9000, 12345)
    ]
    batch = torch.zeros(3, 16000)
    for i, c in enumerate(clips):
        batch[i, : len(c)] = c
    lengths = torch.tensor([len(c) for c in clips])
    together = front.log_mel(batch)
    frames = front.frames(lengths)
    for i, c in enumerate(clips):
        alone = front.log_mel(c[None])[0]
        assert alone.shape[-1] == frames[i]
        # Frames whose window lies inside the clip are identical; the last few see padding.
        inside = (len(c) - front.n_fft // 2) // front.hop_length
        torch.testing.assert_close(together[i, :, :inside], alone[:, :inside], rtol=1e-5, atol=1e-4)


def test_from_config_uses_ms_settings() -> None:
    front = LogMel.from_config(
        RunConfig.from_dict({"sample_rate": 22050, "win_ms": 40.0, "hop_ms": 10.0, "n_mels": 80})
    )
    assert (front.n_fft, front.hop_length, front.mel.n_mels) == (1024, 220, 80)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 8000, "f_max": 6000.0}, "f_max: 6000 Hz is above sample_rate / 2"),
        (
            {"sample_rate": 8000, "n_mels": 200, "win_length": 200},
            "n_mels: 200 mel bands is too many",
        ),
        ({"sample_rate": 16000, "hop_length": 0}, "must be >= 1 sample"),
        ({"sample_rate": 16000, "mel_scale": "bark"}, "allowed: slaney, htk"),
        ({"sample_rate": 16000, "pad_mode": "mirror"}, "allowed: reflect, constant"),
    ],
)
def test_impossible_settings_raise_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogMel(**kwargs)  # type: ignore[arg-type]


def test_normalisation_statistics_ignore_padding() -> None:
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160)
    loud = torch.randn(16000) * 0.5
    padded = torch.zeros(1, 32000)
    padded[0, :16000] = loud
    fit_normalization(front, [(padded, torch.tensor([16000]))])
    mean_padded = front.mean.clone()
    fit_normalization(front, [(loud[None], torch.tensor([16000]))])
    # Within a fraction of a dB (the clip's last frame straddles the padding)...
    torch.testing.assert_close(front.mean, mean_padded, atol=0.2, rtol=0)
    # ...where averaging over the padding too would be tens of dB off.
    naive = front.log_mel(padded)[0].mean(dim=1, keepdim=True)
    assert float((naive - front.mean).abs().min()) > 10
    normed = front(loud[None])
    assert abs(float(normed.mean())) < 0.05 and abs(float(normed.std()) - 1) < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 32000, "n_mels": 128, "win_length": 800, "hop_length": 320},
        {"sample_rate": 8000, "n_mels": 40, "win_length": 200, "hop_length": 80, "norm": None},
        {"sample_rate": 22050, "n_mels": 20, "mel_scale": "htk", "f_min": 300.0, "f_max": 6000.0},
        {"sample_rate": 16000, "n_mels": 64, "center": False},
        {"sample_rate": 44100, "n_mels": 96, "win_length": 1764, "pad_mode": "constant"},
        {"sample_rate": 16000, "n_mels": 48, "pad_mode": "replicate"},
        {"sample_rate": 16000, "n_mels": 48, "win_length": 512, "pad_mode": "circular"},
    ],
)
def test_cpu_banded_path_equals_torchaudio(kwargs: dict[str, object]) -> None:
    """The CPU arrangement (banded mel product) computes what torchaudio's transform does."""
    front = LogMel(**kwargs)  # type: ignore[arg-type]
    waves = torch.from_numpy(
        np.random.default_rng(1).standard_normal((3, 12345)).astype(np.float32)
    )
    with torch.inference_mode():
        dense = front.mel(waves)
        banded = front.banded_mel(waves)
        assert banded.shape == dense.shape
        torch.testing.assert_close(banded, dense, rtol=1e-5, atol=1e-6 * float(dense.max()))
        torch.testing.assert_close(front.log_mel(waves), front.to_db(dense), rtol=1e-5, atol=1e-4)
        front.banded = False  # the GPU path (torchaudio's dense transform), here on the CPU
        torch.testing.assert_close(front.log_mel(waves), front.to_db(dense), rtol=1e-5, atol=1e-4)
    # The groups cover every filter once and skip most of the filterbank.
    fb = front.mel.mel_scale.fb
    assert [m for s, e, _, _ in front.groups for m in range(s, e)] == list(range(fb.shape[1]))
    work = sum((e - s) * (high - low) for s, e, low, high in front.groups)
    assert work < fb.numel() / 2


def test_clip_shorter_than_a_frame_is_refused() -> None:
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160, center=False)
    with pytest.raises(ValueError, match="shorter than one 512-sample frame"):
        front.log_mel(torch.zeros(1, 300))


def test_top_db_floor_is_per_clip() -> None:
    """A quiet clip batched with a loud one keeps its own dynamic range."""
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160, top_db=60.0)
    rng = np.random.default_rng(2)
    loud = torch.from_numpy(rng.standard_normal(8000).astype(np.float32))
    quiet = loud * 1e-4 + torch.from_numpy(rng.standard_normal(8000).astype(np.float32)) * 1e-6
    for banded in (True, False):  # the CPU and the GPU paths
        front.banded = banded
        together = front.log_mel(torch.stack([loud, quiet]))
        for i, clip in enumerate((loud, quiet)):
            alone = front.log_mel(clip[None])[0]
            torch.testing.assert_close(together[i], alone, rtol=1e-5, atol=1e-4)
            assert float(alone.max() - alone.min()) <= 60.0 + 1e-3
