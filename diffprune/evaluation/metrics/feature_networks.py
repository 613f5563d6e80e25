"""Small CNN classifiers whose penultimate layer is the FID feature space for the bundled models.

Why: the standard FID network (InceptionV3) needs weights we cannot download offline and is
meaningless on 16x16 digits or 32x32 spectrograms. A classifier trained on the same domain gives
features that separate what matters there (which digit, which melody), so FID and
prompt-faithfulness can be measured offline and fast. `forward` is shaped for
`torchmetrics.image.fid.FrechetInceptionDistance(feature=module)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class FeatureClassifier(ModelMixin, ConfigMixin):
    """Conv classifier; `forward` gives penultimate features, `classify` gives logits.

    Inputs may be uint8 in 0..255 or float in [0, 1], with any channel count (converted to
    `in_channels`) and any size (resized to `image_size`), because FID callers pass whatever their
    pipeline produced.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 16,
        num_classes: int = 10,
        feature_dim: int = 64,
        width: int = 32,
        dropout: float = 0.2,
    ):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * w * 4, feature_dim),
            nn.SiLU(),
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    @property
    def num_features(self) -> int:
        """Feature dimensionality; torchmetrics' FID reads this instead of probing with a dummy batch."""
        return int(self.config.feature_dim)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Bring any image batch to float [N, in_channels, image_size, image_size] in [-1, 1]."""
        x = images
        if x.dim() == 3:  # [N, H, W] -> [N, 1, H, W]
            x = x.unsqueeze(1)
        x = x.float() / 255.0 if not torch.is_floating_point(x) else x.float()
        x = x.to(next(self.parameters()).device)
        c, want = x.shape[1], self.config.in_channels
        if c != want:
            if want == 1:
                x = x.mean(dim=1, keepdim=True)
            elif c == 1:
                x = x.repeat(1, want, 1, 1)
            else:
                raise ValueError(f"cannot convert {c}-channel images to {want} channels")
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            shrinking = x.shape[-1] > size or x.shape[-2] > size
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
        return x * 2.0 - 1.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features [N, feature_dim] (the FID space)."""
        return self.body(self.prepare(images))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits [N, num_classes]."""
        return self.head(self.drop(self.forward(images)))
