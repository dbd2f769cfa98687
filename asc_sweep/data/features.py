"""The log-mel front end: a torch module that runs batch-wise on the run's device.

``LogMel`` wraps torchaudio's ``MelSpectrogram`` and ``AmplitudeToDB`` with every setting
explicit, and owns per-band normalisation statistics as buffers (computed from the training
part of a fold only, with :func:`fit_normalization`). Bad settings raise ``ValueError`` here,
at construction; sweep specs catch the same impossible combinations at ``create``.

On a GPU the batch goes through torchaudio's ``MelSpectrogram`` as it is. On a CPU the same
computation is arranged for the caches (measured in ``benchmarks/features.py``): a piece of
the batch per pass through a buffer allocated once per call, frames windowed straight from
the clips (no padded copy of a whole clip), and the power and mel stages in one pass over the
spectrum by a small C kernel (``_melkernel.c``, built at install where a C compiler is
present) that touches only the ~1,000 non-zero filter weights. Without the kernel, torch ops
do the same: the power as ``re**2 + im**2`` and the mel product band by band over the FFT
bins each group of filters covers. Every path gives torchaudio's result up to float32
rounding (tests hold them to 1e-5).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
import torchaudio
from torch import nn
from torch.nn import functional

from asc_sweep.data.batching import to_device
from asc_sweep.sweep.config import RunConfig, audio_problems

_melkernel: types.ModuleType | None
try:  # the optional C kernel (setup.py); torch ops stand in for it where it was not built
    from asc_sweep.data import _melkernel
except ImportError:  # pragma: no cover - depends on the install
    _melkernel = None

# Spectrogram bins per pass of several short clips, per thread: each core's share of the
# pass (its windowed frames and their spectrum, 1.2 MB each) stays in its L2 cache.
CPU_CHUNK_BINS = 150_000
CPU_CLIP_BINS = 1_200_000  # a longer clip's frames go in equal parts of at most this many
PAD_MODES = ("reflect", "constant", "replicate", "circular")  # what torch.stft accepts
MELS_PER_GROUP = 16  # mel filters per banded product on a CPU (torch ops)
# The kernel's instruction sets at most: -1 what the CPU has, 2 AVX-512, 1 AVX2, 0 plain C
# (every level gives the same values; tests run each).
KERNEL_SIMD = -1


def kernel_available() -> bool:
    """Whether the compiled power + mel kernel was built with this install."""
    return _melkernel is not None


def kernel_description() -> str:
    """What the CPU front end runs here, in words (benchmarks print it)."""
    if _melkernel is None:
        return "torch ops (the compiled kernel is not built)"
    level = min(_melkernel.simd(), KERNEL_SIMD) if KERNEL_SIMD >= 0 else _melkernel.simd()
    return f"compiled kernel, {('plain C', 'AVX2', 'AVX-512')[level]} power tiles"


class MelFilters(NamedTuple):
    """A filterbank packed for the kernel: each filter's non-zero run of weights, end to end."""

    weights: torch.Tensor  # float32, every filter's run
    starts: torch.Tensor  # int32 per filter: its first FFT bin
    lengths: torch.Tensor  # int32 per filter: bins in its run (0 for an empty filter)
    offsets: torch.Tensor  # int32 per filter: where its run starts in ``weights``
    lo: int  # the bins any filter covers: [lo, hi)
    hi: int
    mels: int


def pack_filters(fb: torch.Tensor) -> MelFilters:
    """``fb`` ``(n_freqs, n_mels)`` as torchaudio builds it, packed for the kernel."""
    fb = fb.detach().float().cpu()
    runs, starts, lengths, offsets = [], [], [], []
    offset = 0
    for m in range(fb.shape[1]):
        bins = torch.nonzero(fb[:, m]).flatten()
        first, end = (int(bins[0]), int(bins[-1]) + 1) if len(bins) else (0, 0)
        runs.append(fb[first:end, m])
        starts.append(first)
        lengths.append(end - first)
        offsets.append(offset)
        offset += end - first
    covered = [(s, s + n) for s, n in zip(starts, lengths, strict=True) if n]
    lo = min((s for s, _ in covered), default=0)
    hi = max((e for _, e in covered), default=0)
    starts = [s if n else lo for s, n in zip(starts, lengths, strict=True)]
    return MelFilters(
        weights=torch.cat([*runs, fb.new_zeros(1)]).contiguous(),
        starts=torch.tensor(starts, dtype=torch.int32),
        lengths=torch.tensor(lengths, dtype=torch.int32),
        offsets=torch.tensor(offsets, dtype=torch.int32),
        lo=lo,
        hi=hi,
        mels=fb.shape[1],
    )


def mel_groups(fb: torch.Tensor, size: int = MELS_PER_GROUP) -> list[tuple[int, int, int, int]]:
    """``(first_mel, end_mel, first_bin, end_bin)`` per group of ``size`` filters of ``fb``.

    ``fb`` is ``(n_freqs, n_mels)`` as torchaudio builds it; the bin range is where any filter
    of the group is non-zero (empty when none is).
    """
    groups = []
    for start in range(0, fb.shape[1], size):
        end = min(fb.shape[1], start + size)
        bins = torch.nonzero(fb[:, start:end].abs().sum(dim=1)).flatten()
        low, high = (int(bins[0]), int(bins[-1]) + 1) if len(bins) else (0, 0)
        groups.append((start, end, low, high))
    return groups


class LogMel(nn.Module):
    """Waveforms ``(batch, samples)`` -> log-mel ``(batch, n_mels, frames)`` in dB.

    Args:
        sample_rate: Hz of the input waveforms.
        n_mels: mel bands.
        win_length: analysis window in samples; ``n_fft`` is the next power of two.
        hop_length: hop in samples.
        f_min, f_max: band edges in Hz (``f_max=None``: sample_rate / 2).
        mel_scale: ``"slaney"`` (librosa's default) or ``"htk"``.
        norm: ``"slaney"`` (area-normalised filters) or ``None``.
        center: pad so that frame ``t`` is centred on sample ``t * hop_length``.
        pad_mode: padding used with ``center``.
        top_db: clamp the dynamic range per spectrogram (``None``: no clamp).
        banded: compute with :meth:`banded_mel` (``None``: on CPUs, where it is faster; on
            GPUs torchaudio's dense transform is).
        compiled: in :meth:`banded_mel`, the compiled power + mel kernel (``None``: where it
            is built; ``True``: required; ``False``: torch ops).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        sample_rate: int,
        n_mels: int = 64,
        win_length: int = 800,
        hop_length: int = 320,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        norm: str | None = "slaney",
        center: bool = True,
        pad_mode: str = "reflect",
        top_db: float | None = None,
        banded: bool | None = None,
        compiled: bool | None = None,
    ) -> None:
        super().__init__()
        if hop_length < 1 or win_length < 1:
            raise ValueError("win_length and hop_length must be >= 1 sample")
        if mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale {mel_scale!r}: allowed: slaney, htk")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode {pad_mode!r}: allowed: {', '.join(PAD_MODES)}")
        self.n_fft = 1 << (win_length - 1).bit_length()
        win_ms = win_length / sample_rate * 1000
        problems = audio_problems(
            sample_rate=sample_rate,
            win_ms=win_ms,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            mel_scale=mel_scale,
        )
        if problems:
            raise ValueError("; ".join(f"{key}: {msg}" for key, msg in problems))
        self.sample_rate, self.hop_length, self.center = sample_rate, hop_length, center
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            window_fn=torch.hann_window,
            power=2.0,
            center=center,
            pad_mode=pad_mode,
            norm=norm,
            mel_scale=mel_scale,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=top_db)
        self.pad_mode, self.banded, self.compiled = pad_mode, banded, compiled
        self.groups = mel_groups(self.mel.mel_scale.fb)
        self.packed = pack_filters(self.mel.mel_scale.fb)
        self.register_buffer("mean", torch.zeros(n_mels, 1))
        self.register_buffer("std", torch.ones(n_mels, 1))

    @classmethod
    def from_config(cls, config: RunConfig) -> LogMel:
        """The front end a run's config describes (window and hop given in ms)."""
        sr = config.rate
        win = max(1, round(sr * config.win_ms / 1000))
        return cls(
            sample_rate=sr,
            n_mels=config.n_mels,
            win_length=win,
            hop_length=max(1, round(sr * config.hop_ms / 1000)),
            f_min=config.f_min,
            f_max=config.f_max,
            mel_scale=config.mel_scale,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) float -> (batch, n_mels, frames), normalised with the fitted stats."""
        if waveforms.dim() != 2:
            raise ValueError(f"expected (batch, samples), got shape {tuple(waveforms.shape)}")
        return self.log_mel(waveforms).sub_(self.mean).div_(self.std)  # in place: a fresh tensor

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB without normalisation."""
        # The STFT runs in float32 even under autocast: half precision loses the quiet bands.
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            waveforms = self._long_enough(waveforms.float())
            banded = self.banded
            if banded if banded is not None else waveforms.device.type == "cpu":
                return self.banded_mel(waveforms, db=True)
            return self.power_to_db_(self.mel(waveforms))

    def _long_enough(self, waveforms: torch.Tensor) -> torch.Tensor:
        """A batch of clips all shorter than half an FFT frame, zero-padded past it: centred
        reflect padding needs more samples than it reflects. A short clip in a longer batch is
        zero-padded the same way, and its ``lengths`` mask the frames past its end alike."""
        half = self.n_fft // 2
        short = half + 1 - waveforms.shape[-1]
        if self.center and self.pad_mode in ("reflect", "circular") and short > 0:
            return functional.pad(waveforms, (0, short))
        return waveforms

    def pad_ends(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``waveforms`` (batch, samples) with each clip's half frame past its end (``lengths``,
        in samples) as centred padding fills it for the clip alone: its reflection (with
        ``pad_mode`` reflect; other modes are returned as they are). A clip's last frames,
        whose windows reach past its end, are then those it has alone, not frames of the
        zeros that pad it to the batch's longest clip. A clip of half a frame or less keeps
        its zeros (alone, it is zero-padded before it is reflected: ``_long_enough``).

        One gather and one scatter of ``n_fft / 2`` samples a clip, on the clips' device;
        returns a new tensor (a batch may be a view of clips held for the whole run).
        """
        half, samples = self.n_fft // 2, waveforms.shape[-1]
        # A clip to fill is longer than half a frame and ends before the batch does.
        if not (self.center and self.pad_mode == "reflect") or samples <= half + 1:
            return waveforms
        if lengths.device.type == "cpu" and bool((lengths >= samples).all()):
            return waveforms  # no clip is padded (known without waiting for a GPU)
        n = lengths.to(waveforms.device, torch.int64)[:, None]
        step = torch.arange(half, device=waveforms.device)[None, :]
        fill = (n + step < samples) & (n > half)
        # Positions not filled copy the first samples onto themselves: below half a frame,
        # apart from the filled ones (past n > half), so no position is written twice.
        to = torch.where(fill, n + step, step)
        source = torch.where(fill, n - 2 - step, step)
        return waveforms.scatter(1, to, waveforms.gather(1, source))

    def power_to_db_(self, power: torch.Tensor) -> torch.Tensor:
        """``AmplitudeToDB`` in place, with ``top_db`` applied to each clip on its own.

        (torchaudio's transform takes a 3-d input as channels of one spectrogram, so its
        ``top_db`` floor would follow the loudest clip of the batch.)
        """
        to_db = self.to_db
        return self._db_tail_(power.clamp_(min=to_db.amin).log10_().mul_(to_db.multiplier))

    def _db_tail_(self, db: torch.Tensor) -> torch.Tensor:
        """What ``power_to_db_`` does after ``multiplier * log10(max(power, amin))``."""
        to_db = self.to_db
        if to_db.db_multiplier:
            db.sub_(to_db.multiplier * to_db.db_multiplier)
        if to_db.top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - to_db.top_db
            torch.maximum(db, floor, out=db)
        return db

    def banded_mel(self, waveforms: torch.Tensor, db: bool = False) -> torch.Tensor:
        """Power mel spectrogram ``(batch, n_mels, frames)``, what ``self.mel`` computes.

        With ``db``, what :meth:`power_to_db_` makes of it (the kernel converts each value
        as it writes it; a test holds it to torch's ``log10`` within 1e-4 dB).

        The STFT is torch.stft's (centred padding, window zero-padded to ``n_fft`` in the
        middle, one-sided), spelled out so that a piece of the batch at a time (a few short
        clips, or a few hundred frames of a long one) goes through a buffer allocated once per
        call and stays in the caches: fresh multi-megabyte tensors cost more in page faults
        than the FFT itself, and a spectrum that has left the L2 cache costs its read-back
        (both measured). Each pass windows its frames into that buffer: frames inside a
        clip straight from it, the few at its two ends from a padded copy of them. The
        windowing, and power and mel, come from the compiled kernel where it is built
        (:func:`kernel_available`; one call each a pass), else from torch ops (a product per
        part of the clips, and products that skip the bins outside each group of filters).
        """
        n_fft, hop = self.n_fft, self.hop_length
        waveforms = waveforms.float()  # float32 throughout, as in log_mel (the kernel reads it)
        batch, samples = waveforms.shape
        half = n_fft // 2 if self.center else 0
        padded_len = samples + 2 * half
        if padded_len < n_fft:
            raise ValueError(
                f"clips of {samples} samples are shorter than one {n_fft}-sample frame"
            )
        if self.center and self.pad_mode in ("reflect", "circular") and samples <= half:
            raise ValueError(
                f"clips of {samples} samples are too short for {self.pad_mode} padding "
                f"(need more than {half})"
            )
        frames = (padded_len - n_fft) // hop + 1
        window = self.mel.spectrogram.window
        left = (n_fft - window.shape[0]) // 2
        window = functional.pad(window, (left, n_fft - window.shape[0] - left))
        kernel = self._use_kernel(waveforms)
        if kernel and waveforms.stride(-1) != 1:
            waveforms = waveforms.contiguous()
        out = waveforms.new_empty(batch, self.packed.mels, frames)
        if not batch:  # (an FFT of no frames is an error in some FFT libraries)
            return out
        bins = n_fft // 2 + 1
        chunk = CPU_CHUNK_BINS * max(1, torch.get_num_threads())
        if frames * bins <= chunk:  # several whole clips a pass
            rows, span = max(1, min(batch, chunk // (frames * bins))), frames
        else:  # one clip a pass, its frames in equal parts
            pieces = -(-frames * bins // CPU_CLIP_BINS)
            rows, span = 1, -(-frames // pieces)
        windowed = waveforms.new_empty(rows, span, n_fft)
        # Where each frame reads its samples: the clip itself, or a short padded copy of
        # one of its ends (the head and tail parts).
        source = _FrameSource(self, samples, frames)
        if kernel:
            window_into = _kernel_windowing(source, waveforms, window.contiguous(), windowed)
            run = self._kernel_run(out, db)
        else:
            window_into = _ops_windowing(source, waveforms, window)
            power = waveforms.new_empty(rows, span, bins)
        for first in range(0, batch, rows):
            n = min(rows, batch - first)
            for a in range(0, frames, span):
                b = min(a + span, frames)
                buffer = windowed[:n, : b - a]
                window_into(buffer, first, a)
                # rfft's own output: with ``out=`` torch computes into a temporary and
                # copies it (measured 0.83 against 0.48 ms for a 10 s clip's 1,001 frames).
                spectrum = torch.fft.rfft(buffer)
                if kernel:
                    run(spectrum, first * out.stride(0) + a)
                else:
                    self._groups_into(out[first : first + n, :, a:b], spectrum, power[:n, : b - a])
        if not db:
            return out
        return self._db_tail_(out) if kernel else self.power_to_db_(out)

    def _use_kernel(self, waveforms: torch.Tensor) -> bool:
        if self.compiled is False or waveforms.device.type != "cpu":
            return False
        if self.compiled and _melkernel is None:
            raise RuntimeError(
                "the compiled log-mel kernel is not built (reinstall asc-sweep with a C compiler)"
            )
        return _melkernel is not None

    def _kernel_run(self, out: torch.Tensor, db: bool) -> Callable[[torch.Tensor, int], None]:
        """The kernel bound to this front end's filters and to ``out`` (clips, mels,
        frames), contiguous: ``run(spectrum, offset)`` writes the power mel (or with ``db``,
        ``multiplier * log10(max(power, amin))``) of ``spectrum`` (clips, frames, bins) into
        ``out`` from element ``offset`` on (its first clip and frame).

        Everything but the spectrum is fixed once per batch, so that a pass pays one call.
        """
        assert _melkernel is not None
        assert out.dtype == torch.float32 and out.is_contiguous()
        p, power_mel, threads = self.packed, _melkernel.power_mel, torch.get_num_threads()
        filters = (p.lo, p.hi, p.weights.data_ptr(), p.starts.data_ptr(),
                   p.lengths.data_ptr(), p.offsets.data_ptr(), p.mels)  # fmt: skip
        scale = (self.to_db.amin, self.to_db.multiplier) if db else (0.0, 0.0)
        base, size, strides = out.data_ptr(), out.element_size(), out.stride()[:2]
        simd = KERNEL_SIMD

        def run(spectrum: torch.Tensor, offset: int) -> None:
            assert spectrum.dtype == torch.complex64 and spectrum.is_contiguous()
            clips, frames, bins = spectrum.shape
            power_mel(
                spectrum.data_ptr(), clips, frames, bins, *filters, base + offset * size,
                *strides, threads, *scale, simd,
            )  # fmt: skip

        return run

    def _groups_into(self, dest: torch.Tensor, spectrum: torch.Tensor, power: torch.Tensor) -> None:
        """The same with torch ops: ``re**2 + im**2``, then a product per group of filters."""
        parts = torch.view_as_real(spectrum).square_()
        torch.add(parts[..., 0], parts[..., 1], out=power)
        fb = self.mel.mel_scale.fb  # (bins, n_mels)
        for start, end, low, high in self.groups:
            torch.matmul(
                fb[low:high, start:end].T,
                power[:, :, low:high].transpose(1, 2),
                out=dest[:, start:end],
            )

    def frames(self, samples: torch.Tensor) -> torch.Tensor:
        """Frame count for each clip length in samples (what masked pooling needs)."""
        if self.center:
            return samples // self.hop_length + 1
        return torch.clamp((samples - self.n_fft) // self.hop_length + 1, min=0)


Windowing = Callable[[torch.Tensor, int, int], None]


def _ops_windowing(source: _FrameSource, clips: torch.Tensor, window: torch.Tensor) -> Windowing:
    """``window_into(buffer, first, a)``: frames ``a`` .. of clips ``first`` .. (as many as
    ``buffer`` (clips, frames, n_fft) holds) times ``window``, with torch ops."""
    parts = source.parts(clips)

    def window_into(buffer: torch.Tensor, first: int, a: int) -> None:
        n, b = buffer.shape[0], a + buffer.shape[1]
        for lo, part in parts:  # window each part's frames that fall in [a, b)
            start, stop = max(a, lo), min(b, lo + part.shape[1])
            if start < stop:
                torch.mul(
                    part[first : first + n, start - lo : stop - lo],
                    window,
                    out=buffer[:, start - a : stop - a],
                )

    return window_into


def _kernel_windowing(
    source: _FrameSource, clips: torch.Tensor, window: torch.Tensor, windowed: torch.Tensor
) -> Windowing:
    """The same in one call of the compiled kernel a pass (no Python loop over the parts,
    one parallel region); ``buffer`` must be a leading slice of ``windowed``."""
    assert _melkernel is not None and clips.stride(-1) == 1 and windowed.is_contiguous()
    sources = source.sources(clips)
    parts: list[int] = []
    for k, (lo, _, samples, offset) in enumerate(sources):
        parts += [lo] if k else []
        parts += [samples.data_ptr() + offset * samples.element_size(), samples.stride(0)]
    window_frames, threads = _melkernel.window_frames, torch.get_num_threads()
    fixed = (window.data_ptr(), source.n_fft, source.hop, *parts, threads)
    dst, stride = windowed.data_ptr(), windowed.stride(0)
    alive = (sources, window)  # what the kernel reads by address, held by the closure

    def window_into(buffer: torch.Tensor, first: int, a: int) -> None:
        assert alive and buffer.data_ptr() == dst
        window_frames(dst, stride, first, buffer.shape[0], a, buffer.shape[1], *fixed)

    return window_into


class _FrameSource:
    """Where the STFT frames of clips of one length read their samples.

    Frames that lie inside the clip read it directly (a strided view); the few at its two
    ends, which reach into the centring padding, read short padded copies of the ends. So
    no pass copies a whole clip into a padded buffer (which cost as much as a sixth of the
    FFT, measured).
    """

    def __init__(self, front: LogMel, samples: int, frames: int) -> None:
        n_fft, hop = front.n_fft, front.hop_length
        self.half = n_fft // 2 if front.center else 0
        self.n_fft, self.hop, self.frames, self.pad_mode = n_fft, hop, frames, front.pad_mode
        first = -(-self.half // hop)  # the first frame starting inside the clip
        end = (samples + self.half - n_fft) // hop + 1  # one past the last ending inside it
        if end <= first:  # none lies inside: every frame reads the padded clip
            first = end = frames
        self.first, self.end = min(first, frames), min(max(end, first), frames)

    def sources(self, clips: torch.Tensor) -> list[tuple[int, int, torch.Tensor, int]]:
        """``(lo, hi, samples, offset)`` for the head, inside and tail of ``clips``: frame
        ``t`` in ``[lo, hi)`` of clip ``c`` reads ``samples[c, offset + (t - lo) * hop :]``
        (its first ``n_fft`` samples); ``samples`` is ``clips`` or a short padded copy of
        their ends, contiguous along samples."""
        n_fft, hop, half = self.n_fft, self.hop, self.half
        empty = clips.new_zeros(clips.shape[0], 0)
        head = tail = empty
        if self.first:
            head = self._padded(clips, 0, (self.first - 1) * hop + n_fft)
        if self.end < self.frames:
            tail = self._padded(clips, self.end * hop, (self.frames - 1) * hop + n_fft)
        inside = (clips, self.first * hop - half) if self.end > self.first else (empty, 0)
        return [
            (0, self.first, head, 0),
            (self.first, self.end, *inside),
            (self.end, self.frames, tail, 0),
        ]

    def parts(self, clips: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """``(first_frame, frames)`` for the head, inside and tail of ``clips``.

        ``frames`` is ``(clips, count, n_fft)``, ``count`` possibly 0.
        """
        parts = []
        for lo, hi, samples, offset in self.sources(clips):
            if hi > lo:
                view = samples[:, offset:].unfold(-1, self.n_fft, self.hop)[:, : hi - lo]
            else:
                view = clips.new_zeros(clips.shape[0], 0, self.n_fft)
            parts.append((lo, view))
        return parts

    def _padded(self, clips: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Samples ``start:stop`` of ``functional.pad(clips, (half, half), mode=pad_mode)``."""
        half, length = self.half, clips.shape[-1]
        pieces = []
        spans = (
            (0, half, "before"),
            (half, half + length, None),
            (half + length, 2 * half + length, "after"),
        )
        for lo, hi, source in spans:
            a, b = max(start, lo), min(stop, hi)
            if a < b:
                part = clips if source is None else self._pad(clips, source)
                pieces.append(part[:, a - lo : b - lo])
        return torch.cat(pieces, dim=-1)

    def _pad(self, clips: torch.Tensor, side: str) -> torch.Tensor:
        """The ``half`` samples padded ``before`` or ``after`` ``clips`` under ``pad_mode``."""
        half, length, before = self.half, clips.shape[-1], side == "before"
        if self.pad_mode == "reflect":
            return (clips[:, 1 : half + 1] if before else clips[:, length - half - 1 : -1]).flip(-1)
        if self.pad_mode == "replicate":
            return (clips[:, :1] if before else clips[:, -1:]).expand(-1, half)
        if self.pad_mode == "circular":
            return clips[:, length - half :] if before else clips[:, :half]
        return clips.new_zeros(clips.shape[0], half)


@torch.no_grad()
def fit_normalization(
    front_end: LogMel, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Set per-band mean and std from ``(waveforms, lengths)`` batches: the fold's training part.

    Padding frames are left out, so the statistics describe the audio, not the zeros.
    """
    device = front_end.mean.device
    # Sums kept on the device and read once at the end (a read a batch would make the host
    # wait for a GPU at every batch).
    total = torch.zeros(front_end.mean.shape[0], dtype=torch.float64, device=device)
    squares = torch.zeros_like(total)
    counted = torch.zeros((), dtype=torch.int64, device=device)
    for waves, lengths in batches:
        waves, lengths = to_device(waves, device), to_device(lengths, device)
        spec = front_end.log_mel(front_end.pad_ends(waves, lengths)).double()  # (B, M, T)
        frames = front_end.frames(lengths).clamp(max=spec.shape[-1])
        mask = torch.arange(spec.shape[-1], device=spec.device)[None, :] < frames[:, None]  # (B, T)
        m = mask[:, None, :].to(spec.dtype)
        total += (spec * m).sum(dim=(0, 2))
        squares += (spec.square() * m).sum(dim=(0, 2))
        counted += mask.sum()
    total, squares, count = total.cpu(), squares.cpu(), int(counted)
    if count == 0:
        raise ValueError("no training frames to compute normalisation statistics from")
    mean = total / count
    std = (squares / count - mean.square()).clamp(min=1e-8).sqrt()
    front_end.mean.copy_(mean.float()[:, None])
    front_end.std.copy_(std.float()[:, None])
