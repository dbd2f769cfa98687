"""Environmental-sound CNNs on log-mel patches: Piczak (2015) and SB-CNN (Salamon & Bello, 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from asc_sweep.models.common import (
    AscModel,
    Dropout,
    ModelSpec,
    dropout,
    masked_max,
    steps_mask,
    unpadded_steps,
    zero_past,
)


class PiczakCNN(AscModel):
    """Piczak, "Environmental sound classification with convolutional neural networks",
    MLSP 2015.

    Published: 60 log-mel bands x 41 frames, two channels (log-mel and its deltas); Conv 80
    filters 57x6 (frequency x time), ReLU, max pooling 4x3 (stride 1x3), dropout 0.5; Conv 80
    filters 1x3, ReLU, max pooling 1x3 (stride 1x3); two dense layers of 5000 ReLU units with
    dropout 0.5; softmax. Size: not stated in the paper (25,734,130 parameters here with 60
    bands and 50 classes; the two 5000-unit dense layers hold most of them). Init: not stated
    in the paper (its code used the pylearn2 defaults).
    Here: the flattening of the fixed 41-frame patch becomes a masked max over time, so the
    first dense layer sees 80 x (bands - 56 - 3) inputs at any clip length; deltas are
    computed inside the model.
    """

    # Time (kernel, stride) of conv1, its pooling, conv2 and its pooling, none padded: the
    # positions pooled over time are those whose fields lie within the clip.
    TIME_LAYERS = ((6, 1), (3, 3), (3, 1), (3, 3))

    def __init__(self, spec: ModelSpec, dense: int = 5000) -> None:
        super().__init__()
        kernel_f = min(57, spec.n_mels - 3)
        if kernel_f < 4:
            raise ValueError(f"piczak_cnn needs n_mels >= 7, got {spec.n_mels}")
        self.conv1 = nn.Conv2d(2, 80, (kernel_f, 6))
        self.conv2 = nn.Conv2d(80, 80, (1, 3))
        freq = spec.n_mels - kernel_f + 1 - 3  # after conv1 and the 4-high pooling (stride 1)
        self.head = nn.Sequential(
            nn.Linear(80 * freq, dense), nn.ReLU(), Dropout(0.5),
            nn.Linear(dense, dense), nn.ReLU(), Dropout(0.5),
            nn.Linear(dense, spec.n_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Deltas near a clip's end replicate its last frame, as at the tensor's edge when the
        # clip is alone (not the zeros that pad it in a batch); past its end they are 0.
        steps = x.shape[-1]
        last = (lengths - 1).clamp(min=0, max=steps - 1)[:, None, None]
        held = x.gather(-1, torch.minimum(torch.arange(steps, device=x.device), last).expand_as(x))
        deltas = zero_past(AF.compute_deltas(held), lengths)
        x = torch.stack([x, deltas], dim=1)  # (B, 2, M, T)
        # The fewest frames that leave one step after both convs and poolings: conv1 (6 wide)
        # and pool (3, stride 3) leave 5 of 20, conv2 (3 wide) 3, and the last pool 1.
        x = F.pad(x, (0, max(0, 20 - x.shape[-1])))
        # ReLU after each pooling: the same values and gradients on a third of the elements.
        x = dropout(F.relu(F.max_pool2d(self.conv1(x), (4, 3), stride=(1, 3))), 0.5, self.training)
        x = F.relu(F.max_pool2d(self.conv2(x), (1, 3), stride=(1, 3)))  # (B, 80, F', T/9)
        valid = unpadded_steps(lengths, self.TIME_LAYERS, x.shape[-1])
        pooled = masked_max(x, steps_mask(valid, x.shape[-1]))
        return self.head(pooled.flatten(1))


class SBCNN(AscModel):
    """Salamon & Bello, "Deep convolutional neural networks and data augmentation for
    environmental sound classification", IEEE SPL 2017.

    Published: 128 log-mel bands x 128 frames (3 s); Conv 24 filters 5x5, max pooling 4x2,
    ReLU; Conv 48 5x5, max pooling 4x2, ReLU; Conv 48 5x5, ReLU; dense 64 ReLU with dropout
    0.5 (L2 0.001); softmax. Size: not stated in the paper (241,434 parameters in that setting
    with 10 classes; 93,978 here). Init: not stated (Keras defaults). Here: the flattened 2 x 25 x 48
    map becomes a masked max over time of the 48 x (frequency) map, so dense 64 sees
    48 x 2 inputs at 128 bands and any clip length; fewer than 100 bands are zero-padded.
    """

    # Time (kernel, stride) of the three unpadded convs and the two poolings between them.
    TIME_LAYERS = ((5, 1), (2, 2), (5, 1), (2, 2), (5, 1))

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, 5)
        self.conv2 = nn.Conv2d(24, 48, 5)
        self.conv3 = nn.Conv2d(48, 48, 5)
        # Fewer than 100 bands leave nothing after three valid 5x5 convs and two 4x poolings:
        # such inputs are zero-padded in frequency up to 100 bands.
        self.freq_pad = max(0, 100 - spec.n_mels)
        freq = ((spec.n_mels + self.freq_pad - 4) // 4 - 4) // 4 - 4
        self.head = nn.Sequential(
            Dropout(0.5),
            nn.Linear(48 * freq, 64),
            nn.ReLU(),
            Dropout(0.5),
            nn.Linear(64, spec.n_classes),
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        x = F.pad(
            x, (0, max(0, 32 - x.shape[-1]), 0, self.freq_pad)
        )  # the shortest input the three convs and two time poolings accept
        x = F.relu(F.max_pool2d(self.conv1(x), (4, 2)))
        x = F.relu(F.max_pool2d(self.conv2(x), (4, 2)))
        x = F.relu(self.conv3(x))  # (B, 48, F', ~T/4)
        valid = unpadded_steps(lengths, self.TIME_LAYERS, x.shape[-1])
        pooled = masked_max(x, steps_mask(valid, x.shape[-1]))
        return self.head(pooled.flatten(1))
