"""The architecture registry: legacy ASC baselines beside modern CNNs, built by name."""

from __future__ import annotations

from collections.abc import Callable

from asc_sweep.models.common import AscModel, ModelSpec, count_parameters
from asc_sweep.models.cpresnet import CPResNet
from asc_sweep.models.crnn import CRNN
from asc_sweep.models.dcase import DCASE2017MLP, DCASE2018CNN
from asc_sweep.models.panns import CNN6, CNN10
from asc_sweep.models.small_cnns import SBCNN, PiczakCNN
from asc_sweep.models.wavecnn import M5, M11

ARCHITECTURES: dict[str, Callable[[ModelSpec], AscModel]] = {
    "dcase2017_mlp": DCASE2017MLP,
    "dcase2018_cnn": DCASE2018CNN,
    "piczak_cnn": PiczakCNN,
    "sb_cnn": SBCNN,
    "m5": M5,
    "m11": M11,
    "cnn6": CNN6,
    "cnn10": CNN10,
    "cp_resnet": CPResNet,
    "crnn": CRNN,
}


def build_model(arch: str, spec: ModelSpec) -> AscModel:
    """The registered architecture ``arch`` for ``spec``; ``KeyError`` names what exists."""
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; allowed: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](spec)


__all__ = ["ARCHITECTURES", "AscModel", "ModelSpec", "build_model", "count_parameters"]
