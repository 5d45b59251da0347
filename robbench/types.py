"""Types shared across layers: defined here, below the store, so the results store can
name what it records without importing the attacks that produce it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class AttackResult:
    """Per-sample outcome. `success[i]`: x_adv[i] is misclassified. `norm[i]`: the
    perturbation's size in the attack's norm. Counts are forward/backward passes
    spent on sample i."""

    x_adv: torch.Tensor
    success: torch.Tensor
    norm: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    flags: list[str] = field(default_factory=list)
