"""Fixed class centres generated once before training (METHODS §2.5, §2.6)."""

from __future__ import annotations

import math

import torch


def _mm_recursion(num_classes: int, dim: int) -> torch.Tensor:
    """Closed form (dim ≥ L): unit vectors with pairwise inner product −1/(L−1)."""
    mu = torch.zeros(num_classes, dim, dtype=torch.float64)
    mu[0, 0] = 1.0
    for k in range(1, num_classes):
        for j in range(k):
            mu[k, j] = -(1.0 / (num_classes - 1) + mu[k] @ mu[j]) / mu[j, j]
        mu[k, k] = math.sqrt(abs(1.0 - float(mu[k] @ mu[k])))
    return mu


def _mm_descent(num_classes: int, dim: int, steps: int = 1000, seed: int = 0) -> torch.Tensor:
    """dim < L: no closed form, so minimise the largest pairwise inner product of unit
    vectors by gradient descent on a smooth max (logsumexp whose temperature rises
    geometrically 10 → 1000 so it tends to the max). Deterministic given `seed`."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_classes, dim, generator=gen, dtype=torch.float64).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    off_diag = ~torch.eye(num_classes, dtype=torch.bool)
    for step in range(steps):
        u = x / x.norm(dim=1, keepdim=True)
        inner = (u @ u.T)[off_diag]
        temp = 10.0 * 100.0 ** (step / max(steps - 1, 1))
        loss = torch.logsumexp(temp * inner, dim=0) / temp
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return x / x.norm(dim=1, keepdim=True)


def mm_centres(num_classes: int, dim: int, scale: float = 10.0) -> torch.Tensor:
    """Max-Mahalanobis centres (L, dim), each of norm `scale` (MMC's C_MM, MAT)."""
    if num_classes < 2:
        raise ValueError("mm_centres needs at least 2 classes")
    unit = _mm_recursion(num_classes, dim) if dim >= num_classes else _mm_descent(num_classes, dim)
    # renormalise so every row has the same norm up to float rounding (MAT relies on it)
    unit = unit / unit.norm(dim=1, keepdim=True)
    return (scale * unit).float()


def _pairwise(p: torch.Tensor, distance: str) -> torch.Tensor:
    """Sum over i<j of d(p_i, p_j)."""
    diff = p[:, None, :] - p[None, :, :]
    ord = math.inf if distance == "linf" else 2.0
    dist = torch.linalg.vector_norm(diff, ord=ord, dim=-1)
    return dist.triu(diagonal=1).sum()


def project_to_radius(p: torch.Tensor, distance: str, radius: float) -> torch.Tensor:
    """Euclidean projection of each row onto the `distance`-norm ball of `radius`."""
    if distance == "linf":
        return p.clamp(-radius, radius)
    norm = p.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return p * (radius / norm).clamp(max=1.0)


def repulsive_prototypes(num_classes: int, dim: int, distance: str = "linf", steps: int = 1000,
                         lr: float = 0.01, momentum: float = 0.9, radius: float = 1.0,
                         seed: int = 0) -> torch.Tensor:
    """DRP prototypes (L, dim): U[−1,1] start, SGD ascent on Σ_{i<j} d(p_i, p_j),
    projected onto the radius-ball after every step (the reference code has no
    constraint, so its scale grows with the number of steps)."""
    if distance not in ("linf", "l2"):
        raise ValueError(f"distance must be 'linf' or 'l2', not {distance!r}")
    gen = torch.Generator().manual_seed(seed)
    init = torch.rand(num_classes, dim, generator=gen) * 2 - 1
    p = project_to_radius(init, distance, radius).requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    for _ in range(steps):
        loss = -_pairwise(p, distance)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            p.copy_(project_to_radius(p, distance, radius))
    return p.detach().clone()
