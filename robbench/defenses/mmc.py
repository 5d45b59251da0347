"""MMC: Max-Mahalanobis centre loss (METHODS §2.3)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robbench.defenses.base import DefenseModel, register_defense
from robbench.defenses.centres import mm_centres


@register_defense("mmc")
class MMCModel(DefenseModel):
    """Fixed MM centres of norm C_MM; predicts the nearest centre (ties -> lower index).

    Logit gaps are in the hundreds, so softmax-CE on z saturates: evaluate with the
    margin loss and the adaptive attacks, not PGD-CE alone."""

    adaptive_attacks = ("adaptive-mmc", "adaptive-margin", "adaptive-mmc-targeted")

    def __init__(self, features: nn.Module, num_classes: int, centre_scale: float = 10.0) -> None:
        super().__init__(features, num_classes)
        self.centre_scale = float(centre_scale)
        self.register_buffer("centres", mm_centres(num_classes, self.feature_dim, self.centre_scale))

    def defense_params(self) -> dict[str, Any]:
        return {"centre_scale": self.centre_scale}

    def squared_distances(self, f: torch.Tensor) -> torch.Tensor:
        """||f − μ_c||² (N, L), from differences (no cancellation far from the centres)."""
        return (f[:, None, :] - self.centres).pow(2).sum(-1)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return -self.squared_distances(f)

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.squared_distances(f).argmin(dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """||f(x) − μ_y||² (the reference code's form; the paper has ½)."""
        return self.squared_distances(self.features(x)).gather(1, y[:, None]).squeeze(1)
