"""Softmax baselines (METHODS §2.1): a linear head on the features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robbench.defenses.base import DefenseModel, register_defense


@register_defense("nominal")
class SoftmaxModel(DefenseModel):
    """Cross-entropy training on clean inputs; predicts argmax of the head's logits."""

    adaptive_attacks = ("adaptive-ce", "adaptive-dlr")

    def __init__(self, features: nn.Module, num_classes: int) -> None:
        super().__init__(features, num_classes)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f)

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f).argmax(dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), y, reduction="none")
