"""Softmax baselines (METHODS §2.1): a linear head on the features."""

from __future__ import annotations

from typing import Any

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


@register_defense("at")
class AdversarialTrainingModel(SoftmaxModel):
    """PGD adversarial training (Madry): the recipe passes PGD inputs to `loss`."""


@register_defense("trades")
class TradesModel(SoftmaxModel):
    """TRADES: CE(z(x), y) + β·KL(softmax z(x) || softmax z(x')), x' from L∞ PGD-10
    (step ε/4) on the KL, started at x + 0.001·N(0, 1). eps=None means "must be given"."""

    adaptive_attacks = ("adaptive-trades", "adaptive-ce", "adaptive-dlr")

    def __init__(self, features: nn.Module, num_classes: int, beta: float = 6.0,
                 eps: float | None = None) -> None:
        super().__init__(features, num_classes)
        self.beta = float(beta)
        self.eps = None if eps is None else float(eps)

    def defense_params(self) -> dict[str, Any]:
        return {"beta": self.beta, "eps": self.eps}

    @staticmethod
    def trades_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
        """KL(softmax z(x) || softmax z(x')) per sample, from log-softmaxes."""
        log_p = F.log_softmax(logits_clean, dim=1)
        return (log_p.exp() * (log_p - F.log_softmax(logits_adv, dim=1))).sum(1)

    def trades_adversary(self, x: torch.Tensor, steps: int = 10,
                         generator: torch.Generator | None = None) -> torch.Tensor:
        """x' maximising the KL term (model in eval mode meanwhile, as the reference)."""
        if self.eps is None:
            raise ValueError("trades needs defense param eps to build its adversarial inputs")
        was_training = self.training
        self.eval()
        with torch.no_grad():
            target = self(x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + 0.001 * noise).detach()
        for _ in range(steps):
            x_adv.requires_grad_(True)
            grad, = torch.autograd.grad(self.trades_kl(target, self(x_adv)).sum(), x_adv)
            x_adv = x_adv.detach() + self.eps / 4 * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - self.eps), x + self.eps).clamp(0, 1)
        self.train(was_training)
        return x_adv.detach()

    def loss(self, x: torch.Tensor, y: torch.Tensor,
             x_adv: torch.Tensor | None = None) -> torch.Tensor:
        if x_adv is None:
            x_adv = self.trades_adversary(x)
        logits = self(x)
        return F.cross_entropy(logits, y, reduction="none") + self.beta * self.trades_kl(logits, self(x_adv))


@register_defense("atc")
class ATCModel(SoftmaxModel):
    """AT+C (METHODS §2.7): CE + β·reg on the given (PGD) inputs, where reg pulls the
    logits of each class group towards the group mean (means not detached)."""

    def __init__(self, features: nn.Module, num_classes: int,
                 groups: list[list[int]] | None = None, beta: float = 0.1) -> None:
        super().__init__(features, num_classes)
        if groups is not None:
            flat = [c for g in groups for c in g]
            if len(set(flat)) != len(flat) or not all(0 <= c < num_classes for c in flat):
                raise ValueError(f"atc groups must be disjoint class ids < {num_classes}: {groups}")
            groups = [[int(c) for c in g] for g in groups]
        self.groups = groups
        self.beta = float(beta)

    def defense_params(self) -> dict[str, Any]:
        groups = None if self.groups is None else [[int(c) for c in g] for g in self.groups]
        return {"groups": groups, "beta": self.beta}

    def cluster_regulariser(self, z: torch.Tensor) -> torch.Tensor:
        """Σ_g Σ_{c∈g} (z_c − mean_{c'∈g} z_{c'})², per sample."""
        if self.groups is None:
            raise ValueError("atc needs defense param groups (the class hierarchy, METHODS §2.7)")
        reg = z.new_zeros(z.shape[0])
        for g in self.groups:
            zg = z[:, g]
            reg = reg + (zg - zg.mean(dim=1, keepdim=True)).pow(2).sum(1)
        return reg

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = self(x)
        return F.cross_entropy(z, y, reduction="none") + self.beta * self.cluster_regulariser(z)
