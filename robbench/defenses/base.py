"""The one base class every defense wrapper shares."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from robbench.registry import Registry


class DefenseModel(nn.Module):
    """A defense as an ordinary network: forward(x) returns logits (never
    probabilities) whose argmax equals the defense's native decision rule.

    Subclasses implement `logits_from_features` (what attacks differentiate),
    `native_predict_from_features` (the defense's own rule, written separately so
    tests can check the two agree) and `loss` (the defense's training objective,
    which adaptive attacks maximise).
    """

    defense_id: ClassVar[str]
    # ids of the attacks aimed at this defense's own objective (METHODS §2)
    adaptive_attacks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, features: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.body = features
        self.num_classes = num_classes
        self.dataset: str | None = None  # set by the zoo; transfer attacks find their substitute by it

    @property
    def feature_dim(self) -> int:
        return self.body.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(x))

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def native_predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.native_predict_from_features(self.features(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample training loss of the defense (shape (N,))."""
        raise NotImplementedError

    def defense_params(self) -> dict[str, Any]:
        """Non-tensor parameters, stored as JSON beside the weights."""
        return {}


DEFENSES: Registry[type[DefenseModel]] = Registry("defense")


def register_defense(id: str):
    """Class decorator: registers a DefenseModel subclass under `id`."""

    def decorate(cls: type[DefenseModel]) -> type[DefenseModel]:
        cls.defense_id = id
        DEFENSES.add(id, cls)
        return cls

    return decorate
