"""Projected gradient descent (Linf and L2) and FGSM, our own implementation.

Two properties matter for an honest evaluation: every iterate of every restart is
checked, and the first misclassified point found is kept (an attack never "loses"
an adversarial example it visited); and a sample stops costing compute as soon as
it is fooled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from robbench.attacks.base import (Attack, AttackResult, perturbation_norm, register_attack,
                                   sample_generator)
from robbench.attacks.losses import LOSSES
from robbench.config import PGD_RESTARTS, PGD_STEP_FRACTION
from robbench.defenses import DefenseModel


def random_start(x: torch.Tensor, eps: float, norm: str, generators: list[torch.Generator]) -> torch.Tensor:
    """A point drawn uniformly from the ε-ball around each sample, clipped to [0, 1]."""
    shape = x.shape[1:]
    if norm == "Linf":
        noise = torch.stack([torch.rand(shape, generator=g) * 2 - 1 for g in generators]) * eps
    else:  # uniform direction, radius eps * U^(1/d): uniform in the L2 ball
        dims = x[0].numel()
        noise = torch.stack([torch.randn(shape, generator=g) for g in generators])
        radii = torch.stack([torch.rand((), generator=g) for g in generators]) ** (1 / dims)
        scale = eps * radii / noise.flatten(1).norm(dim=1).clamp_min(1e-12)
        noise = noise * scale.view(-1, *[1] * len(shape))
    return (x + noise.to(x.device, x.dtype)).clamp(0, 1)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *[1] * (x.dim() - 1))
    return (x + delta).clamp(0, 1)


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / norms.view(-1, *[1] * (grad.dim() - 1))


@dataclass(frozen=True)
class PGD(Attack):
    steps: int = 20
    restarts: int = PGD_RESTARTS
    step_fraction: float = PGD_STEP_FRACTION  # step size = step_fraction * eps
    random_init: bool = True
    loss: str = "ce"

    @property
    def rng_stream(self) -> str:
        """Random starts depend on the norm, not the step count: pgd100 begins each
        restart where pgd20 does, so it finds every example pgd20 finds."""
        return f"pgd-{self.norm}"

    def objective(self, model: DefenseModel, x_adv: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sample loss to maximise, logits that decide success). Adaptive attacks
        override this with the defense's own loss."""
        logits = model(x_adv)
        return LOSSES[self.loss](logits, y), logits

    def hit(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Which rows the attack has achieved its goal on: here, misclassification."""
        return logits.argmax(dim=1) != labels

    def ascend(self, model: DefenseModel, xk: torch.Tensor, x0: torch.Tensor, labels: torch.Tensor,
               ids: torch.Tensor, owners: torch.Tensor, eps: float, n_forward: torch.Tensor,
               n_backward: torch.Tensor, on_hit: Callable[[torch.Tensor, torch.Tensor], None]) -> None:
        """`steps` signed-gradient steps from xk for rows (x0, labels). Every iterate is
        checked; a row that hits calls on_hit(its ids, its point) and leaves the batch.
        Passes are charged to each row's owner (the sample it belongs to) once, when the
        row leaves, so a step on which nothing hits does only the attack's own work."""
        step = self.step_fraction * eps
        for k in range(self.steps + 1):
            last = k == self.steps
            xk.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                loss, logits = self.objective(model, xk, x0, labels)
            hit = self.hit(logits, labels).cpu()
            any_hit = bool(hit.any())
            if any_hit:
                on_hit(ids[hit], xk.detach()[hit.to(xk.device)])
            if last or (any_hit and bool(hit.all())):  # every row leaves after this forward
                self.charge(owners, k + 1, k, n_forward, n_backward)
                return
            # the batch's backward runs through rows that hit just now as well: charged
            grad, = torch.autograd.grad(loss.sum(), xk)
            xk = xk.detach()
            if any_hit:
                self.charge(owners[hit], k + 1, k + 1, n_forward, n_backward)
                keep = ~hit
                keep_dev = keep.to(xk.device)
                ids, owners, x0, labels = ids[keep], owners[keep], x0[keep_dev], labels[keep_dev]
                xk, grad = xk[keep_dev], grad[keep_dev]
            xk = project(xk + step * ascent_direction(grad, self.norm), x0, eps, self.norm)

    @staticmethod
    def charge(owners: torch.Tensor, forward: int, backward: int, n_forward: torch.Tensor,
               n_backward: torch.Tensor) -> None:
        n_forward.index_add_(0, owners, torch.full_like(owners, forward))
        n_backward.index_add_(0, owners, torch.full_like(owners, backward))

    def starts(self, x0: torch.Tensor, eps: float, gens: Callable[[], list[torch.Generator]]) -> torch.Tensor:
        return random_start(x0, eps, self.norm, gens()) if self.random_init else x0.clone()

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        n = len(y)
        n_forward = torch.zeros(n, dtype=torch.int64)
        n_backward = torch.zeros(n, dtype=torch.int64)
        x_adv = x.clone()
        if self.random_init:
            with torch.no_grad():
                success = (model(x).argmax(dim=1) != y).cpu()  # misclassified: norm 0
            n_forward += 1
        else:  # the first iterate is x itself and is checked there
            success = torch.zeros(n, dtype=torch.bool)

        def on_hit(ids: torch.Tensor, points: torch.Tensor) -> None:
            x_adv[ids] = points
            success[ids] = True

        for restart in range(self.restarts):
            live = (~success).nonzero().squeeze(1)  # indices into the batch
            if len(live) == 0:
                break
            xk = self.starts(x[live], eps, lambda: [
                sample_generator(seed, self.rng_stream, int(sample_ids[i]), restart) for i in live])
            self.ascend(model, xk, x[live], y[live], live, live, eps, n_forward, n_backward, on_hit)
        norm = perturbation_norm((x_adv - x).detach(), self.norm).cpu()
        return AttackResult(x_adv=x_adv.detach(), success=success, norm=norm,
                            n_forward=n_forward, n_backward=n_backward)


register_attack(PGD(id="fgsm", norm="Linf", steps=1, restarts=1, step_fraction=1.0,
                    random_init=False))
register_attack(PGD(id="pgd20", norm="Linf", steps=20))
register_attack(PGD(id="pgd100", norm="Linf", steps=100))
register_attack(PGD(id="pgd20-l2", norm="L2", steps=20))
register_attack(PGD(id="pgd100-l2", norm="L2", steps=100))
