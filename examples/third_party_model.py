"""A third-party model for `robbench eval --model examples/third_party_model.py:FACTORY
--dataset digits`: a prototype classifier on scikit-learn's digits that implements the
optional protocol (robbench/evaluation/external.py), next to a plain softmax net that does not.

Both factories train for a fraction of a second (fixed seed) so that the example runs
anywhere; a real model would load its weights here or take `--checkpoint`."""

from __future__ import annotations

import torch
from torch import nn


def _digits_train() -> tuple[torch.Tensor, torch.Tensor]:
    from robbench.datasets import load_split

    train = load_split("digits", "train")
    return train.x, train.y


class PrototypeNet(nn.Module):
    """z_c = −||f(x) − p_c||²: nearest prototype, with its features and its loss exposed."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, dim))
        self.register_buffer("prototypes", 3 * torch.eye(10, dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return -(f[:, None, :] - self.prototypes).pow(2).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample squared distance to the own prototype (what it was trained on)."""
        return (self.features(x) - self.prototypes[y]).pow(2).sum(-1)

    def decision_rule(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(self.features(x), self.prototypes).argmin(dim=1)


class SoftmaxNet(nn.Module):
    """Logits only: `adaptive` falls back to CE, DLR and margin PGD on it."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _fit(model: nn.Module, loss_fn, steps: int = 150) -> nn.Module:
    torch.manual_seed(0)
    for p in model.parameters():  # a deterministic init whatever the caller's RNG state
        nn.init.normal_(p, std=0.1)
    x, y = _digits_train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = loss_fn(model, x, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def prototype_net() -> PrototypeNet:
    return _fit(PrototypeNet(), lambda m, x, y: m.training_loss(x, y))


def softmax_net() -> SoftmaxNet:
    return _fit(SoftmaxNet(), lambda m, x, y: nn.functional.cross_entropy(m(x), y, reduction="none"))
