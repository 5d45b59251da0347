"""What every recipe receives, and the shared epoch loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from robbench.config import THREAT_DEFAULTS
from robbench.datasets import Split
from robbench.defenses import DefenseModel
from robbench.registry import Registry


@dataclass
class TrainContext:
    model: DefenseModel
    train: Split
    test: Split
    args: dict[str, Any]
    generator: torch.Generator
    device: torch.device
    log: Callable[[str], None]
    dataset: str

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled minibatches (seeded)."""
        order = torch.randperm(len(self.train), generator=self.generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield self.train.x[idx].to(self.device), self.train.y[idx].to(self.device)

    @torch.no_grad()
    def accuracy(self, split: Split, batch_size: int = 512) -> float:
        self.model.eval()
        correct = 0
        for start in range(0, len(split), batch_size):
            x = split.x[start:start + batch_size].to(self.device)
            y = split.y[start:start + batch_size].to(self.device)
            correct += (self.model.native_predict(x) == y).sum().item()
        return correct / len(split)

    epoch: int = 0  # set by the epoch loops; drives the ε warm-up

    @property
    def target_eps(self) -> float:
        """The budget after the warm-up: recipe arg `eps`, else the dataset's protocol L∞ ε."""
        return float(self.args.get("eps", THREAT_DEFAULTS[self.dataset].linf_eps))

    @property
    def eps(self) -> float:
        """Training budget of the current epoch: `target_eps` ramped linearly over the
        first `eps_warmup_epochs` epochs (adversarial training at MNIST's ε = 0.3 from
        the first step collapses to a constant classifier). It changes with `epoch`, so
        a recipe reads it where it attacks, in every batch, never once before the loop."""
        eps = self.target_eps
        warmup = self.args.get("eps_warmup_epochs", 0)
        return eps * min(1.0, (self.epoch + 1) / warmup) if warmup else eps

    def fit(self, batch_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            parameters=None) -> None:
        """The shared epoch loop: Adam on the mean of `batch_loss(x, y)` over shuffled
        minibatches, logging loss and accuracy every epoch."""
        epochs, batch_size = self.args["epochs"], self.args["batch_size"]
        opt = torch.optim.Adam(self.model.parameters() if parameters is None else parameters,
                               lr=self.args["lr"])
        for epoch in range(epochs):
            self.epoch = epoch
            self.model.train()
            total, count = 0.0, 0
            for x, y in self.batches(batch_size):
                loss = batch_loss(x, y).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, count = total + loss.item() * len(y), count + len(y)
            self.log_epoch(epoch, epochs, total / count)

    def log_epoch(self, epoch: int, epochs: int, loss: float) -> None:
        self.log(f"epoch {epoch + 1}/{epochs}  loss {loss:.4f}  "
                 f"train acc {self.accuracy(self.train):.4f}  test acc {self.accuracy(self.test):.4f}")


Recipe = Callable[[TrainContext], None]
RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(id: str) -> Callable[[Recipe], Recipe]:
    return RECIPES.register(id)
