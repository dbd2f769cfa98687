"""LogMel matches librosa, is the same batched as item by item, and refuses impossible settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from asc_sweep.data import features
from asc_sweep.data.features import LogMel, fit_normalization, kernel_available
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
    # The same statistics: the clip's last frames, whose windows reach past its end, see its
    # reflection in the batch as alone (``pad_ends``)...
    torch.testing.assert_close(front.mean, mean_padded, atol=1e-4, rtol=0)
    # ...where averaging over the padding too would be tens of dB off.
    naive = front.log_mel(padded)[0].mean(dim=1, keepdim=True)
    assert float((naive - front.mean).abs().min()) > 10
    normed = front(loud[None])
    assert abs(float(normed.mean())) < 0.05 and abs(float(normed.std()) - 1) < 0.1


# The CPU paths: torch ops, and the compiled kernel at each instruction-set level (plain C,
# AVX2, AVX-512; a level the CPU lacks runs the next one down, so every level is safe to ask).
CPU_PATHS = [
    pytest.param((False, -1), id="torch-ops"),
    *[pytest.param((True, simd), id=f"kernel-simd{simd}") for simd in (0, 1, 2)],
]


@pytest.fixture(params=CPU_PATHS)
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Runs a test on each CPU path; returns ``compiled`` for ``LogMel``."""
    compiled, simd = request.param
    if compiled and not kernel_available():
        pytest.skip("the compiled kernel is not built here (test_kernel_is_built says why)")
    monkeypatch.setattr(features, "KERNEL_SIMD", simd)
    return bool(compiled)


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
        {"sample_rate": 16000, "n_mels": 48, "win_length": 400, "hop_length": 97},
    ],
)
def test_cpu_banded_path_equals_torchaudio(kwargs: dict[str, object], cpu_path: bool) -> None:
    """The CPU arrangement computes what torchaudio's transform does, on every path."""
    front = LogMel(**kwargs, compiled=cpu_path)  # type: ignore[arg-type]
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


@pytest.mark.parametrize(
    ("samples", "chunk", "clip"),
    [
        (100_000, 100_000, 20_000),  # a clip's frames (161,000 bins) in 9 equal parts
        (5_000, 40_000, 80_000),  # several clips a pass, the last pass short
        (700, 300_000, 1_200_000),  # no frame lies inside the clip: all read the padding
        (1_000, 300_000, 1_200_000),  # 2 frames, one at each end
    ],
)
def test_cpu_passes_cover_every_frame(
    samples: int, chunk: int, clip: int, cpu_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However a batch is cut into passes, every frame is computed once and right."""
    monkeypatch.setattr(features, "CPU_CHUNK_BINS", chunk // torch.get_num_threads())  # per thread
    monkeypatch.setattr(features, "CPU_CLIP_BINS", clip)
    front = LogMel(16000, n_mels=40, win_length=400, hop_length=160, compiled=cpu_path)
    waves = torch.from_numpy(
        np.random.default_rng(3).standard_normal((5, samples)).astype(np.float32)
    )
    with torch.inference_mode():
        dense = front.mel(waves)
        banded = front.banded_mel(waves)
    torch.testing.assert_close(banded, dense, rtol=1e-5, atol=1e-6 * float(dense.max()))


def test_strided_batches_equal_contiguous(cpu_path: bool) -> None:
    """Clips cut out of a wider array, or with samples not adjacent in memory, give the values
    a contiguous copy gives (the kernel reads the clips by address and row stride)."""
    front = LogMel(16000, n_mels=40, win_length=400, hop_length=160, compiled=cpu_path)
    wide = torch.from_numpy(np.random.default_rng(6).standard_normal((4, 9_000)).astype(np.float32))
    with torch.inference_mode():
        for clips in (wide[1:, 500:8_000], wide.T.contiguous().T[:, :7_000]):
            assert not clips.is_contiguous()
            assert torch.equal(front.log_mel(clips), front.log_mel(clips.contiguous()))
        # float64 clips (banded_mel called directly) are computed in float32, as log_mel does
        assert torch.equal(front.banded_mel(wide.double()), front.banded_mel(wide))


def test_empty_batch(cpu_path: bool) -> None:
    front = LogMel(16000, n_mels=40, win_length=400, hop_length=160, compiled=cpu_path)
    assert front.log_mel(torch.zeros(0, 16000)).shape == (0, 40, 101)
    assert front.banded_mel(torch.zeros(0, 16000)).shape == (0, 40, 101)


def test_kernel_is_built() -> None:
    """Where a C compiler is present (as here, and in CI) the install builds the kernel."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler: the install leaves the kernel out by design")
    assert kernel_available(), "asc_sweep/data/_melkernel.c was not built (see setup.py)"


def test_install_goes_on_without_a_compiler(tmp_path: Path) -> None:
    """``setup.py`` leaves the kernel out when it cannot compile it, and says so."""
    pytest.importorskip("setuptools")
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=Path(__file__).resolve().parents[1], env={**os.environ, "CC": "false"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "not built" in result.stderr and "the CPU front end uses torch ops" in result.stderr
    assert not list(tmp_path.rglob("*.so"))


def test_kernel_threads_and_batching_do_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads change nothing; a clip's values do not depend on its batch (to float rounding:
    the FFT of a batch and of one clip may round differently)."""
    if not kernel_available():
        pytest.skip("the compiled kernel is not built here")
    front = LogMel(32000, n_mels=64, win_length=800, hop_length=320, compiled=True)
    waves = torch.from_numpy(
        np.random.default_rng(4).standard_normal((4, 9_000)).astype(np.float32)
    )
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = front.log_mel(waves)
        torch.set_num_threads(max(2, threads))
        several = front.log_mel(waves)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, several)
    for i in range(len(waves)):
        torch.testing.assert_close(
            front.log_mel(waves[i : i + 1])[0], several[i], rtol=0, atol=1e-4
        )


@pytest.mark.parametrize("simd", [0, 1, 2])
def test_kernel_db_conversion(simd: int) -> None:
    """The kernel's ``10 log10(max(p, amin))`` against torch's, from 1e-30 to 1e30 and beyond."""
    if not kernel_available():
        pytest.skip("the compiled kernel is not built here")
    rng = np.random.default_rng(5)
    bins, frames = 40, 70
    power = 10.0 ** rng.uniform(-30, 30, size=(1, frames, bins))
    power[0, :3, :3] = [[0.0, 1e-10, 1.0], [np.inf, np.nan, 3.4e38], [1e-45, 1e-38, 2.0]]
    spectrum = torch.from_numpy(np.sqrt(power).astype(np.complex64))  # |z|^2 = power
    fb = torch.eye(bins)  # one filter per bin: the kernel's output is the power itself
    packed = features.pack_filters(fb)
    out = torch.empty(1, bins, frames)
    assert features._melkernel is not None
    features._melkernel.power_mel(
        spectrum.data_ptr(), 1, frames, bins, packed.lo, packed.hi, packed.weights.data_ptr(),
        packed.starts.data_ptr(), packed.lengths.data_ptr(), packed.offsets.data_ptr(),
        bins, out.data_ptr(), bins * frames, frames, 2, 1e-10, 10.0, simd,
    )  # fmt: skip
    exact = spectrum.abs().square().transpose(1, 2)
    expected = 10.0 * torch.log10(exact.clamp(min=1e-10))
    finite = torch.isfinite(expected)
    torch.testing.assert_close(out[finite], expected[finite], rtol=0, atol=1e-4)
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    assert torch.equal(torch.isposinf(out), torch.isposinf(expected))


def test_kernel_required_but_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "_melkernel", None)
    assert not kernel_available()
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160, compiled=True)
    with pytest.raises(RuntimeError, match="compiled log-mel kernel is not built"):
        front.log_mel(torch.zeros(1, 4000))
    front.compiled = None  # where it is not required, torch ops stand in
    assert front.log_mel(torch.zeros(1, 4000)).shape == (1, 32, 26)


def test_clip_shorter_than_a_frame_is_refused() -> None:
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160, center=False)
    with pytest.raises(ValueError, match="shorter than one 512-sample frame"):
        front.log_mel(torch.zeros(1, 300))


@pytest.mark.parametrize("banded", [True, False])
def test_a_batch_shorter_than_half_a_frame_is_padded_as_a_longer_batch_pads_it(
    banded: bool,
) -> None:
    """Centred reflect padding needs more samples than half a frame; a batch of clips all
    that short (a long window, whole short clips) gets zeros past its end, as each clip of a
    longer batch does: its valid frames are what it gives beside a long clip."""
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160, banded=banded)
    clip = torch.from_numpy(np.random.default_rng(3).standard_normal((1, 100)).astype(np.float32))
    alone = front.log_mel(clip)
    in_batch = front.log_mel(torch.nn.functional.pad(clip, (0, 4000)))
    valid = int(front.frames(torch.tensor([100]))[0])
    torch.testing.assert_close(alone[..., :valid], in_batch[..., :valid], rtol=0, atol=1e-4)


@pytest.mark.parametrize("banded", [True, False])
def test_a_clip_batched_with_longer_ones_has_the_frames_it_has_alone(banded: bool) -> None:
    """``pad_ends`` fills each clip's half frame past its end with its reflection, as centred
    padding fills it for the clip alone: every valid frame is then the clip's own, the last
    ones too, whose windows reach past its end (without it they read the batch's zeros and
    differ by dBs). Clips that fill the batch, and a clip of half a frame or less (alone it
    is zero-padded first), are left as they are."""
    front = LogMel(16000, n_mels=32, win_length=400, hop_length=160, banded=banded)
    rng = np.random.default_rng(5)
    lengths = torch.tensor([1601, 3000, 200, 8000])  # 200 <= 256, half a 512-sample frame
    batch = torch.zeros(4, 8000)
    for i, n in enumerate(lengths.tolist()):
        batch[i, :n] = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
    filled = front.pad_ends(batch, lengths)
    assert torch.equal(filled[3], batch[3]) and torch.equal(filled[2], batch[2])
    assert not torch.equal(filled[:2], batch[:2]) and torch.equal(
        filled[0, 1601 + 256 :], batch[0, 1601 + 256 :]
    )
    for i in (0, 1):
        n = int(lengths[i])
        valid = int(front.frames(lengths[i : i + 1])[0])
        alone = front.log_mel(batch[i : i + 1, :n])[..., :valid]
        torch.testing.assert_close(
            front.log_mel(filled)[i : i + 1, :, :valid], alone, rtol=0, atol=1e-3
        )
        assert float((front.log_mel(batch)[i : i + 1, :, :valid] - alone).abs().max()) > 1.0
    full = batch[3:]
    assert front.pad_ends(full, lengths[3:]) is full  # nothing to fill: no copy
    empty = torch.zeros(2, 0)
    assert front.pad_ends(empty, torch.zeros(2, dtype=torch.int64)) is empty
    constant = LogMel(16000, n_mels=32, win_length=400, hop_length=160, pad_mode="constant")
    assert constant.pad_ends(batch, lengths) is batch


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
