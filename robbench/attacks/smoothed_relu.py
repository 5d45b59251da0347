"""PGD through a smoothed first ReLU: a backward-pass approximation (BPDA, Athalye et
al. 2018) for models whose first layer thresholds its input.

Adversarial training on MNIST teaches the first convolution to threshold pixels: a
small change to a pixel leaves its ReLUs dead, so their gradient is zero, and every
gradient attack (C&W, DDN, APGD, FAB) stalls far outside an L2 ball that Square
crosses. The forward pass here is the model's own, so every success is checked on the
real logits; only the backward pass of the first ReLU is replaced: its derivative
1[u > 0] becomes sigmoid(β u), which lets gradient through units just below their
threshold. How sharp that should be depends on the scale of the model's
pre-activations, so the attack runs its restarts at several β, each on the samples the
earlier ones left.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn

from robbench.attacks.base import AttackResult, register_attack
from robbench.attacks.cascade import run_cascade
from robbench.attacks.losses import LOSSES
from robbench.attacks.pgd import PGD
from robbench.defenses import DefenseModel


class _SigmoidBackwardReLU(torch.autograd.Function):
    """max(u, 0) forward; sigmoid(β u) as its derivative backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, beta: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        ctx.beta = beta
        return u.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad * torch.sigmoid(ctx.beta * u), None


@contextmanager
def smoothed_first_relu(model: nn.Module, beta: float) -> Iterator[None]:
    """Inside the block, the model's first `nn.ReLU` module (in registration order, which
    is forward order for the zoo's architectures; every call of it, where a model reuses
    one module) passes gradient as sigmoid(β u); its output is unchanged. A model without
    one is left as it is."""
    relu = next((m for m in model.modules() if isinstance(m, nn.ReLU)), None)
    if relu is None:
        yield
        return
    relu.forward = lambda u: _SigmoidBackwardReLU.apply(u, beta)  # shadows the method
    try:
        yield
    finally:
        del relu.forward


@dataclass(frozen=True)
class SmoothedReLUPGD(PGD):
    """PGD on the margin loss with the first ReLU's gradient smoothed (BPDA), `restarts`
    random starts at each β in `betas`: it reaches samples whose gradient a thresholding
    first layer hides from every exact-gradient attack."""

    steps: int = 100
    restarts: int = 4  # per β
    loss: str = "margin"
    betas: tuple[float, ...] = (1.0, 2.0, 4.0)

    def describe(self) -> str:
        return (f"PGD on {self.loss} through a smoothed first ReLU (BPDA): {self.steps} steps x "
                f"{self.restarts} restarts at each β in {', '.join(f'{b:g}' for b in self.betas)}")

    @property
    def rng_stream(self) -> str:
        return f"smoothed-relu-{self.norm}-beta{self.betas[0]:g}"

    def objective(self, model: DefenseModel, x_adv: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (beta,) = self.betas  # run() gives each β its own copy of the attack
        with smoothed_first_relu(model, beta):
            logits = model(x_adv)
        return LOSSES[self.loss](logits, y), logits

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        if len(self.betas) == 1:
            return super().run(model, x, y, eps=eps, sample_ids=sample_ids, seed=seed)
        result = run_cascade([replace(self, betas=(beta,)) for beta in self.betas], model, x, y,
                             eps=eps, sample_ids=sample_ids, seed=seed, label=self.id)
        result.flags = []  # the cascade's per-β counts are not part of this attack's record
        return result


@dataclass(frozen=True)
class SmoothedReLUPGDFrom(SmoothedReLUPGD):
    """SmoothedReLUPGD's restarts `first_restart`, `first_restart` + 1, ...: the same
    random starts as the restarts of those numbers in smoothed-relu-l2, so a cascade can
    spend the first restart early and the rest only on the samples later stages leave."""

    first_restart: int = 1

    def describe(self) -> str:
        return super().describe() + f", from restart {self.first_restart}"

    def starts(self, x0: torch.Tensor, eps: float, sample_ids: torch.Tensor, restart: int,
               seed: int) -> torch.Tensor:
        return super().starts(x0, eps, sample_ids, self.first_restart + restart, seed)


register_attack(SmoothedReLUPGD(id="smoothed-relu-l2", norm="L2"))
