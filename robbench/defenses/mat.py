"""MAT: Manifold-Aware Training (METHODS §2.4).

Variants differ only in default weights (harness choices; the paper's values are
not in METHODS): mat-ftc α=0, β=0; mat-so α=0.1; mat-bibo β=1; mat-so-bibo α=0.1,
β=1. With α=1 the SO term (∝ 1/‖f‖²) dominates early training and drives every
feature onto one centre (10% accuracy on digits after 3 epochs); α=0.1 trains.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robbench.defenses.base import DefenseModel, register_defense
from robbench.defenses.centres import mm_centres

_EPS = 1e-12


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CD(a, b) = 1 − cos(a, b), per row."""
    return 1 - F.cosine_similarity(a, b, dim=-1, eps=_EPS)


@register_defense("mat-ftc")
class MATModel(DefenseModel):
    """Fixed MM centres; predicts argmax_k cos(f, μ_k) (ties -> lower index).

    The logits are the "MAT transformation" z = W f, W rows μ_k, no bias: since
    all ‖μ_k‖ are equal, argmax_k <f, μ_k> = argmax_k cos(f, μ_k)."""

    adaptive_attacks = ("adaptive-mat", "adaptive-margin")
    default_alpha: ClassVar[float] = 0.0
    default_beta: ClassVar[float] = 0.0

    def __init__(self, features: nn.Module, num_classes: int, alpha: float | None = None,
                 beta: float | None = None, centre_scale: float = 10.0) -> None:
        super().__init__(features, num_classes)
        self.alpha = float(self.default_alpha if alpha is None else alpha)
        self.beta = float(self.default_beta if beta is None else beta)
        self.centre_scale = float(centre_scale)
        centres = mm_centres(num_classes, self.feature_dim, self.centre_scale)
        norms = centres.norm(dim=1)
        assert torch.allclose(norms, norms[0].expand_as(norms), rtol=1e-5), \
            "MAT's linear logits need centres of equal norm"
        self.register_buffer("centres", centres)

    def defense_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "centre_scale": self.centre_scale}

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return F.linear(f, self.centres)

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        cos = F.cosine_similarity(f[:, None, :], self.centres[None], dim=-1, eps=_EPS)
        return cos.argmax(dim=1)

    def ftc(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """FTC = CD(f, μ_y)."""
        return cosine_distance(f, self.centres[y])

    def second_order(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """SO = ||∇_f FTC||² in closed form: ||(1/||f||)(μ̂_y − cos(f, μ_y)·f̂)||²
        (no double backprop needed to train on it)."""
        fnorm = f.norm(dim=1, keepdim=True).clamp_min(_EPS)
        f_hat = f / fnorm
        mu_hat = F.normalize(self.centres[y], dim=1, eps=_EPS)
        cos = (f_hat * mu_hat).sum(1, keepdim=True)
        return ((mu_hat - cos * f_hat) / fnorm).pow(2).sum(1)

    @staticmethod
    def bibo_distance(f_clean: torch.Tensor, f_adv: torch.Tensor) -> torch.Tensor:
        """CD(f(x), f(x')): BIBO's objective for a given x' (its inner max is a PGD)."""
        return cosine_distance(f_clean, f_adv)

    def mat_loss(self, f: torch.Tensor, y: torch.Tensor,
                 f_ref: torch.Tensor | None = None) -> torch.Tensor:
        """FTC + α·SO + β·CD(f_ref, f). Training: f = f(x), f_ref = f(x_bibo).
        Adaptive attack: f = f(x_adv), f_ref = f(x) (METHODS §2.4)."""
        out = self.ftc(f, y)
        if self.alpha:
            out = out + self.alpha * self.second_order(f, y)
        if self.beta and f_ref is not None:
            out = out + self.beta * self.bibo_distance(f_ref, f)
        return out

    def loss(self, x: torch.Tensor, y: torch.Tensor,
             x_adv: torch.Tensor | None = None) -> torch.Tensor:
        """L_MAT per sample; the BIBO term needs its PGD point x_adv (omitted without)."""
        f_ref = None if x_adv is None else self.features(x_adv)
        return self.mat_loss(self.features(x), y, f_ref)


@register_defense("mat-so")
class MATSOModel(MATModel):
    default_alpha = 0.1


@register_defense("mat-bibo")
class MATBIBOModel(MATModel):
    default_beta = 1.0


@register_defense("mat-so-bibo")
class MATSOBIBOModel(MATModel):
    default_alpha = 0.1
    default_beta = 1.0
