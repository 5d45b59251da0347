"""Per-sample attack objectives on logits (larger = closer to misclassification)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LogitLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def _true_and_best_other(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return true, other


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C&W margin max_{c≠y} z_c − z_y: positive exactly when misclassified."""
    true, other = _true_and_best_other(logits, y)
    return other - true


def dlr(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference-of-logits ratio: the margin scaled by z_π1 − z_π3, so it is
    invariant to the logits' scale (needs ≥ 3 classes)."""
    true, other = _true_and_best_other(logits, y)
    top = logits.sort(dim=1, descending=True).values
    return (other - true) / (top[:, 0] - top[:, 2] + 1e-12)


LOSSES: dict[str, LogitLoss] = {"ce": cross_entropy, "margin": margin, "dlr": dlr}
