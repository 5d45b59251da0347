"""Transfer attack (METHODS §3): adversarials crafted on a substitute (the dataset's
nominal zoo model) and fed to the target. It needs no gradient of the target, so it
exposes gradient masking: a defense that resists white-box PGD but not points crafted
on an undefended network is hiding its gradients, not robust."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from robbench.attacks.base import Attack, AttackResult, perturbation_norm, register_attack, sample_generator
from robbench.attacks.losses import cross_entropy
from robbench.attacks.pgd import ascent_step, random_start
from robbench.config import PGD_STEP_FRACTION
from robbench.defenses import DefenseModel
from robbench.errors import RobbenchError
from robbench.zoo.lookup import MODELS, load_model


@lru_cache(maxsize=8)
def substitute_model(model_id: str, device: str) -> DefenseModel:
    """Loaded once per (model, device): a transfer run calls this for every batch."""
    if model_id not in MODELS:
        raise RobbenchError(f"transfer needs the substitute model {model_id!r}, "
                            "which the zoo does not have")
    return load_model(model_id, device=device).model


def craft_on_substitute(sub: DefenseModel, x: torch.Tensor, y: torch.Tensor, eps: float,
                        norm: str, steps: int, step: float, gens: list[torch.Generator]) -> torch.Tensor:
    """All `steps` PGD-CE steps from a random start, last iterate: a confident
    adversarial on the substitute. (Stopping at the first point that barely crosses
    the substitute's boundary, as evaluation PGD does, would transfer poorly.)"""
    xk = random_start(x, eps, norm, gens)
    for _ in range(steps):
        xk.requires_grad_(True)
        grad, = torch.autograd.grad(cross_entropy(sub(xk), y).sum(), xk)
        xk = ascent_step(xk.detach(), grad, x, step, eps, norm)
    return xk.detach()


@dataclass(frozen=True)
class Transfer(Attack):
    """PGD adversarials crafted on the substitute, evaluated on the target. Counts per
    sample: the target's forward passes (clean check, then the transferred point) plus
    the substitute's forward/backward passes spent crafting it."""

    substitute: str = "nominal"  # zoo id prefix: the substitute is f"{substitute}-{dataset}"
    steps: int = 100
    step_fraction: float = PGD_STEP_FRACTION

    @property
    def kind(self) -> str:
        return "transfer"

    def describe(self) -> str:
        return f"PGD ({self.steps} steps) on the {self.substitute} zoo model, transferred"

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        dataset = getattr(model, "dataset", None)
        if not dataset:
            raise RobbenchError("transfer needs to know the model's dataset to pick its "
                                "substitute (model.dataset is unset; load it from the zoo)")
        sub = substitute_model(f"{self.substitute}-{dataset}", str(x.device))
        n = len(y)
        n_forward = torch.ones(n, dtype=torch.int64)
        n_backward = torch.zeros(n, dtype=torch.int64)
        with torch.no_grad():
            success = (model(x).argmax(dim=1) != y).cpu()  # misclassified: x itself, norm 0
        x_adv = x.clone()
        live = (~success).nonzero().squeeze(1)
        if len(live):
            gens = [sample_generator(seed, f"transfer-{self.norm}", int(sample_ids[i]), 0) for i in live]
            x_adv[live] = craft_on_substitute(sub, x[live], y[live], eps, self.norm, self.steps,
                                              self.step_fraction * eps, gens)
            with torch.no_grad():
                success[live] = (model(x_adv[live]).argmax(dim=1) != y[live]).cpu()
            n_forward[live] += 1 + self.steps
            n_backward[live] += self.steps
        norm = perturbation_norm(x_adv - x, self.norm).cpu()
        return AttackResult(x_adv=x_adv, success=success, norm=norm, n_forward=n_forward,
                            n_backward=n_backward)


register_attack(Transfer(id="transfer", norm="Linf"))
