"""Deep repulsive prototypes (METHODS §2.5): the output layer has D units and each
class owns a fixed prototype p_k ∈ R^D; ties break towards the lower class index."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from robbench.defenses.base import DefenseModel, register_defense
from robbench.defenses.centres import repulsive_prototypes
from robbench.errors import RobbenchError

_ORDS = {"linf": math.inf, "l2": 2.0}


def prototype_distances(f: torch.Tensor, prototypes: torch.Tensor, distance: str) -> torch.Tensor:
    """d(f_n, p_k) (N, L) under L∞ or L2 (subgradients at kinks; zero at f = p)."""
    return torch.linalg.vector_norm(f[:, None, :] - prototypes, ord=_ORDS[distance], dim=-1)


@register_defense("drp")
class PrototypeModel(DefenseModel):
    """DRP with the nearest-prototype rule. Params: distance ("linf" | "l2"),
    radius of the norm ball the prototypes are projected onto (default 1 for L∞,
    √D for L2: the unit cube's corners either way), steps and seed of their
    generation, prototype_dim D (must equal the features' output size; 10·L by
    convention, set through the architecture's feature_dim)."""

    adaptive_attacks = ("adaptive-prototype", "adaptive-margin")
    default_distance: ClassVar[str] = "linf"

    def __init__(self, features: nn.Module, num_classes: int, distance: str | None = None,
                 radius: float | None = None, steps: int = 1000, seed: int = 0,
                 prototype_dim: int | None = None) -> None:
        super().__init__(features, num_classes)
        self.distance = distance or self.default_distance
        if self.distance not in _ORDS:
            raise RobbenchError(f"DRP distance must be 'linf' or 'l2', not {self.distance!r}")
        dim = self.feature_dim
        if prototype_dim is not None and prototype_dim != dim:
            raise RobbenchError(
                f"DRP prototypes have D = {prototype_dim} dimensions but the network outputs "
                f"{dim}; build the architecture with feature_dim = {prototype_dim} (10·L by default)")
        self.prototype_dim = dim
        if radius is None:
            radius = 1.0 if self.distance == "linf" else math.sqrt(dim)
        self.radius, self.steps, self.seed = float(radius), int(steps), int(seed)
        self.register_buffer("prototypes", repulsive_prototypes(
            num_classes, dim, self.distance, steps=self.steps, radius=self.radius, seed=self.seed))

    def defense_params(self) -> dict[str, Any]:
        return {"distance": self.distance, "radius": self.radius, "steps": self.steps,
                "seed": self.seed, "prototype_dim": self.prototype_dim}

    def distances(self, f: torch.Tensor) -> torch.Tensor:
        return prototype_distances(f, self.prototypes, self.distance)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return -self.distances(f)

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.distances(f).argmin(dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d(f(x), p_y) on the given (natural) inputs."""
        return self.distances(self.features(x)).gather(1, y[:, None]).squeeze(1)


@register_defense("drp-l2")
class PrototypeL2Model(PrototypeModel):
    default_distance = "l2"


@register_defense("drp-ref")
class PrototypeRefModel(PrototypeModel):
    """The reference code's rule: argmax_k <f/‖f‖_∞, p_k> (prototypes and training as drp)."""

    @staticmethod
    def _linf_normalised(f: torch.Tensor) -> torch.Tensor:
        # clamp: f = 0 would divide by zero; any positive scale leaves the argmax unchanged
        return f / f.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(f.dtype).tiny)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self._linf_normalised(f) @ self.prototypes.T

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("nd,kd->nk", self._linf_normalised(f), self.prototypes)
        return scores.argmax(dim=1)
