"""Magnet loss and ClusTR: soft nearest-cluster classifiers (METHODS §2.2).

Each class c owns K centres μ_{c,1..K}; scores s_{c,j} = −||f − μ_{c,j}||²/(2σ²).
Everything is computed in log space: with features far from every centre the
exponentials underflow, and a probability-space implementation returns constant
losses with zero gradient (the reference code's failure mode).

Ties: every rule here breaks ties towards the LOWER index (torch.argmax/argmin
return the first extremum), both between classes and when choosing the D_near
nearest clusters (a stable sort over the flattened (class, cluster) index).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robbench.defenses.base import DefenseModel, register_defense


def squared_distances(f: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """||f_n − μ_m||² for f (N, d), centres (..., d) -> (N, ...). Computed from the
    differences, not ||f||² − 2<f,μ> + ||μ||², which cancels catastrophically for
    features far from the centres."""
    diff = f.reshape(f.shape[0], *([1] * (centres.dim() - 1)), f.shape[1]) - centres
    return diff.pow(2).sum(-1)


def kmeans_centres(features: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   clusters_per_class: int, seed: int = 0) -> torch.Tensor:
    """Per-class k-means (k-means++ init, fixed seed) -> centres (L, K, d)."""
    from sklearn.cluster import KMeans  # imported here: slow, and only training needs it

    f = features.detach().cpu().double().numpy()
    y = labels.detach().cpu().numpy()
    out = np.zeros((num_classes, clusters_per_class, f.shape[1]))
    for c in range(num_classes):
        fc = f[y == c]
        if len(fc) < clusters_per_class:
            raise ValueError(f"class {c} has {len(fc)} samples, fewer than the "
                             f"{clusters_per_class} clusters per class")
        km = KMeans(clusters_per_class, init="k-means++", n_init=3, random_state=seed).fit(fc)
        out[c] = km.cluster_centers_
    return torch.as_tensor(out, dtype=features.dtype, device=features.device)


def nearest_own_cluster(f: torch.Tensor, y: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """v*: index of the nearest centre of each sample's own class (N,)."""
    return (f[:, None, :] - centres[y]).pow(2).sum(-1).argmin(-1)


def cluster_variance(f: torch.Tensor, y: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """σ² = (1/(N−1)) Σ_i ||f_i − μ_{y_i, v*}||² (one shared variance)."""
    d2 = (f[:, None, :] - centres[y]).pow(2).sum(-1)  # (N, K)
    return d2.amin(-1).sum() / max(len(f) - 1, 1)


@register_defense("magnet")
class MagnetModel(DefenseModel):
    """Magnet-only training (no warm start); also the base of ClusTR.

    Params: clusters_per_class K, alpha (magnet margin), d_near (None = all
    clusters vote; an int restricts the native rule to the D_near nearest
    clusters), kmeans_seed (for `estimate_clusters`)."""

    adaptive_attacks = ("adaptive-magnet", "adaptive-margin")

    def __init__(self, features: nn.Module, num_classes: int, clusters_per_class: int = 2,
                 alpha: float = 12.5, d_near: int | None = None, kmeans_seed: int = 0) -> None:
        super().__init__(features, num_classes)
        if clusters_per_class < 1:
            raise ValueError("clusters_per_class must be ≥ 1")
        if d_near is not None and d_near < 1:
            raise ValueError("d_near must be None or ≥ 1")
        self.clusters_per_class = int(clusters_per_class)
        self.alpha = float(alpha)
        self.d_near = None if d_near is None else int(d_near)
        self.kmeans_seed = int(kmeans_seed)
        # placeholder centres until the first `estimate_clusters`; seeded so that
        # building a model never touches the global RNG
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("centres", torch.randn(num_classes, self.clusters_per_class,
                                                    self.feature_dim, generator=gen))
        self.register_buffer("sigma2", torch.tensor(1.0))

    def defense_params(self) -> dict[str, Any]:
        return {"clusters_per_class": self.clusters_per_class, "alpha": self.alpha,
                "d_near": self.d_near, "kmeans_seed": self.kmeans_seed}

    # --- shared pieces -------------------------------------------------------
    def cluster_distances(self, f: torch.Tensor) -> torch.Tensor:
        """||f − μ_{c,j}||², shape (N, L, K)."""
        return squared_distances(f, self.centres)

    def cluster_scores(self, f: torch.Tensor) -> torch.Tensor:
        """s_{c,j} = −||f − μ_{c,j}||²/(2σ²), shape (N, L, K)."""
        return -self.cluster_distances(f) / (2 * self.sigma2)

    def nearest_mask(self, d2: torch.Tensor) -> torch.Tensor:
        """(N, L, K) bool: the D_near nearest clusters (all when d_near is None).
        Stable sort, so equidistant clusters are taken in flat (class, cluster) order."""
        if self.d_near is None:
            return torch.ones_like(d2, dtype=torch.bool)
        flat = d2.flatten(1)
        order = torch.sort(flat, dim=1, stable=True).indices[:, : self.d_near]
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True)
        return mask.view_as(d2)

    # --- the three views of the defense ---------------------------------------
    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """z_c = logsumexp_j s_{c,j}. With d_near: the sum runs over the class's
        clusters among the D_near nearest; classes with none get a finite value
        strictly below every other logit (min − 1 − |min|, detached so the margin loss's
        gradient comes from real classes). Finite everywhere, no NaN gradients."""
        d2 = self.cluster_distances(f)
        s = -d2 / (2 * self.sigma2)
        if self.d_near is None:
            return torch.logsumexp(s, dim=-1)
        mask = self.nearest_mask(d2)
        has = mask.any(-1)  # (N, L)
        # all −inf rows give −inf here (replaced below); masked_fill's backward zeroes
        # their NaN gradient, so the input gradient stays finite
        z = torch.logsumexp(s.masked_fill(~mask, float("-inf")), dim=-1)
        low = z.detach().masked_fill(~has, float("inf")).amin(dim=1, keepdim=True)
        fill = low - 1 - low.abs()
        return torch.where(has, z, fill)

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """argmax_c p_c, p_c ∝ Σ_{j selected} exp(s_{c,j}); classes with no selected
        cluster get p_c = 0. The common factor exp(−max s) keeps the nearest
        cluster at exp(0) = 1 so the winner never underflows."""
        d2 = self.cluster_distances(f)
        s = -d2 / (2 * self.sigma2)
        weights = torch.exp(s - s.flatten(1).amax(dim=1)[:, None, None])
        weights = weights * self.nearest_mask(d2)
        p = weights.sum(-1)
        p = p / p.sum(dim=1, keepdim=True)
        return p.argmax(dim=1)

    def magnet_loss(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ = relu(α + ||f − μ_{y,v*}||²/(2σ²) + log Σ_{ν≠y} Σ_j exp(s_{ν,j})), per sample."""
        s = self.cluster_scores(f)
        own_class = torch.arange(self.num_classes, device=f.device)[None, :] == y[:, None]
        pull = -s[own_class].amax(-1)  # v* = the nearest own-class centre
        push = torch.logsumexp(s.masked_fill(own_class[..., None], float("-inf")).flatten(1), 1)
        return F.relu(self.alpha + pull + push)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.magnet_loss(self.features(x), y)

    # --- cluster estimation (after every epoch, model in eval mode) -----------
    @torch.no_grad()
    def estimate_clusters(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Re-estimates the centres by per-class k-means and σ² from them; stores both."""
        centres = kmeans_centres(features, labels, self.num_classes, self.clusters_per_class,
                                 self.kmeans_seed)
        self.centres.copy_(centres)
        self.sigma2.copy_(cluster_variance(features.to(self.centres), labels.to(self.centres.device),
                                           self.centres))

    @torch.no_grad()
    def assign_clusters(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Flat cluster id y·K + v* of each sample (for neighbourhood batch sampling)."""
        return y * self.clusters_per_class + nearest_own_cluster(f, y, self.centres)


@register_defense("clustr")
class ClusTRModel(MagnetModel):
    """ClusTR: same classifier; the recipe warm-starts with CE and fine-tunes with magnet loss."""


@register_defense("clustr-qtrades")
class ClusTRQTradesModel(MagnetModel):
    """ClusTR + QTRADES: same classifier; the one-step TRADES term lives in the recipe."""
