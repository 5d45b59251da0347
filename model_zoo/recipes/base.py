"""What every recipe receives, and the shared epoch loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

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

    def log_epoch(self, epoch: int, epochs: int, loss: float) -> None:
        self.log(f"epoch {epoch + 1}/{epochs}  loss {loss:.4f}  "
                 f"train acc {self.accuracy(self.train):.4f}  test acc {self.accuracy(self.test):.4f}")


Recipe = Callable[[TrainContext], None]
RECIPES: Registry[Recipe] = Registry("recipe")


def register_recipe(id: str) -> Callable[[Recipe], Recipe]:
    return RECIPES.register(id)
