"""Decoupled Direction and Norm (DDN) on a chosen logit loss, by default the C&W margin.

foolbox's DDN ascends the cross-entropy. On the clustering defenses the cross-entropy
saturates: its gradient is exactly zero in float32 and foolbox then steps in a random
direction, so what it finds depends on the random stream (and on the batch beside the
sample). The margin max_{c≠y} z_c − z_y keeps a gradient wherever the logits have one:
on the 13 samples of the mnist-t10k zoo that l2-suite without it left robust and C&W
9x1000 + DDN broke, 100 steps of DDN on the margin broke 4 (drp-l2 247, mat-bibo 343,
mat 497, mmc 354), where foolbox's DDN found adversarials at 1.14-2.9 ε.

The schedule is foolbox 3's (and the DDN paper's): step size cosine-annealed from 1 to
0.01, the norm ε_k multiplied by 1 − γ after an adversarial iterate and by 1 + γ after
a non-adversarial one, the step taken along the normalised gradient, then the
perturbation rescaled to ε_k and clipped to [0, 1]. With `loss=cross_entropy` and no
zero gradient it reproduces foolbox's DDNAttack (tests/test_attacks_margin_ddn.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robbench.attacks.losses import LogitLoss, margin


def ddn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int, init_epsilon: float | None,
        gamma: float = 0.05, loss: LogitLoss = margin, start: torch.Tensor | None = None,
        generators: Sequence[torch.Generator] | None = None, walked: torch.Tensor | None = None) -> torch.Tensor:
    """The smallest adversarial iterate per sample (x itself where none was found), from
    x or from `start` (a point per sample; `init_epsilon` None: each start's own distance
    to x). Where a row's gradient is exactly zero it takes no step, or, given one
    generator per row, steps along a normal direction drawn from that row's generator:
    foolbox's DDN does the same from the global random stream, so what it finds there
    depends on the batch around the sample. `walked` (a bool per row), if given, is set
    where a row met a zero gradient: its result then hangs on its draws. Every sample runs
    `steps` forward+backward passes: pass counts split exactly."""
    x = x.detach()
    n = len(x)
    view = (n,) + (1,) * (x.dim() - 1)
    delta = torch.zeros_like(x) if start is None else (start - x).detach()
    if init_epsilon is None:
        if start is None:
            raise ValueError("ddn: init_epsilon None takes its radius from a start point; none given")
        radius = delta.flatten(1).norm(dim=1)
    else:
        radius = torch.full((n,), float(init_epsilon), device=x.device, dtype=x.dtype)
    worst = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)  # the farthest point of the box
    best_norm = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
    best_delta = torch.zeros_like(x)
    for i in range(steps):
        alpha = 0.01 + (1 - 0.01) * (1 + math.cos(math.pi * i / steps)) / 2
        point = (x + delta).requires_grad_(True)
        logits = model(point)
        grad, = torch.autograd.grad(loss(logits, y).sum(), point)
        with torch.no_grad():
            adversarial = logits.argmax(dim=1) != y
            size = delta.flatten(1).norm(dim=1)
            better = adversarial & (size <= best_norm)
            best_norm = torch.where(better, size, best_norm)
            best_delta = torch.where(better.view(view), delta, best_delta)
            flat = grad.flatten(1).norm(dim=1) == 0
            if walked is not None:
                walked |= flat.to(walked.device)
            if generators is not None:
                for row in flat.nonzero().squeeze(1).tolist():
                    grad[row] = torch.randn(grad.shape[1:], generator=generators[row]).to(grad)
            step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            delta = delta + alpha * step
            radius = torch.minimum(radius * torch.where(adversarial, 1 - gamma, 1 + gamma), worst)
            delta = delta * (radius / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).view(view)
            delta = (x + delta).clamp(0, 1) - x
    return x + best_delta
