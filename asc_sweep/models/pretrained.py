"""PANNs' published AudioSet checkpoints for ``cnn6`` and ``cnn10``.

The checkpoints of Kong et al. (PANNs, 2020) are ``torch.save({"model": state_dict, ...})``
files whose keys follow the PANNs code: ``bn0``, ``conv_block{1..4}.conv1`` / ``bn1`` (and
``conv2`` / ``bn2`` for CNN10), ``fc1``, ``fc_audioset`` (the 527-class AudioSet head), plus the
front end's ``spectrogram_extractor`` and ``logmel_extractor`` buffers. Their front end is
32 kHz, a 1024-point window, hop 320, 64 mel bands from 50 to 14,000 Hz.

Loading maps those names onto this package's modules, keeps every feature layer (``bn0``, the
four blocks, ``fc1``) and leaves the output layer as initialised: the dataset's classes are not
AudioSet's. The front end's buffers are not used (asc-sweep computes its own log-mels). A URL
is downloaded once into a cache folder; ``sha256`` is checked when given.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asc_sweep.errors import AscSweepError

PANNS_ARCHS = ("cnn6", "cnn10")
PANNS_FRONT_END = {"sample_rate": 32000, "n_mels": 64, "f_min": 50.0, "f_max": 14000.0}
_BLOCK = re.compile(r"^conv_block(\d)\.(conv|bn)(\d)\.(.+)$")


class PretrainedError(AscSweepError):
    """A pretrained checkpoint that cannot be fetched, checked or loaded (exit 2)."""


def panns_key(key: str, layers: int) -> str | None:
    """This package's name for a PANNs state-dict key; None for keys it does not use."""
    if key.startswith(("bn0.", "fc1.")):
        return key
    m = _BLOCK.match(key)
    if m is None:
        return None  # fc_audioset (AudioSet's head), the front end's buffers
    block, kind, index, rest = int(m[1]) - 1, m[2], int(m[3]) - 1, m[4]
    if index >= layers:
        return None
    position = 3 * index + (0 if kind == "conv" else 1)  # convs: conv, bn, relu per layer
    return f"blocks.{block}.convs.{position}.{rest}"


def fetch(source: str, cache_dir: Path, sha256: str | None = None) -> Path:
    """A local checkpoint path, or a URL downloaded once into ``cache_dir`` (atomically)."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", source):
        name = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "checkpoint.pth"
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        path = cache_dir / f"{digest}-{name}"
        if not path.exists():
            cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + f".{os.getpid()}.part")
            try:
                with urllib.request.urlopen(source, timeout=60) as response, tmp.open("wb") as f:
                    while chunk := response.read(1 << 20):
                        f.write(chunk)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise PretrainedError(f"pretrained: cannot download {source}: {exc}") from None
            os.replace(tmp, path)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise PretrainedError(f"pretrained: {path}: no such file")
    if sha256 is not None:
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != sha256.lower():
            raise PretrainedError(
                f"pretrained: {path}: SHA-256 is {actual}, expected {sha256.lower()}"
            )
    return path


def load_panns(model: nn.Module, path: Path, layers: int) -> list[str]:
    """Copy a PANNs checkpoint's feature layers into ``model``; returns the names loaded."""
    try:
        checkpoint: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PretrainedError(f"pretrained: {path}: not a PyTorch checkpoint ({exc})") from None
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise PretrainedError(f"pretrained: {path}: no state dict in it")
    own = model.state_dict()
    what = f"not a PANNs {'CNN10' if layers == 2 else 'CNN6'} checkpoint"
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = panns_key(key, layers)
        if name is None or name not in own:
            continue
        if own[name].shape != value.shape:
            raise PretrainedError(
                f"pretrained: {path}: {what} of 64 mel bands ({key} has shape "
                f"{tuple(value.shape)}, the model's {name} {tuple(own[name].shape)})"
            )
        mapped[name] = value
    features = [n for n in own if not n.startswith("fc_out.")]
    missing = [n for n in features if n not in mapped]
    if missing:
        raise PretrainedError(
            f"pretrained: {path}: {what} (missing {len(missing)} tensors, e.g. {missing[0]})"
        )
    model.load_state_dict(mapped, strict=False)
    return sorted(mapped)


def set_features_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or thaw) every layer but the output layer."""
    for name, param in model.named_parameters():
        if not name.startswith("fc_out."):
            param.requires_grad_(not frozen)
