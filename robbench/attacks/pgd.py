"""Projected gradient descent (Linf and L2) and FGSM, our own implementation.

Two properties matter for an honest evaluation: every iterate of every restart is
checked, and the first misclassified point found is kept (an attack never "loses"
an adversarial example it visited); and a sample stops costing compute as soon as
it is fooled. A sample is fooled iff some iterate of some restart is, so restarts may
run side by side: once few samples are left, later restarts share one batch (never
larger than the one the attack was given), which fools the same samples with far
fewer, fuller steps.
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
    if norm == "Linf":  # filled in place, row by row: the same draws as torch.rand per row
        noise = torch.empty(len(generators), *shape)
        for row, g in zip(noise, generators):
            row.uniform_(generator=g)
        noise.mul_(2).sub_(1).mul_(eps)
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


def first_occurrences(ids: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of each distinct value of ids (a 1-D CPU tensor)."""
    distinct, inverse = torch.unique(ids, return_inverse=True)
    first = torch.full((len(distinct),), len(ids), dtype=torch.int64)
    return first.scatter_reduce_(0, inverse, torch.arange(len(ids)), reduce="amin")


def ascent_step(xk: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, step: float, eps: float,
                norm: str) -> torch.Tensor:
    """project(xk + step * ascent_direction(grad), x0, eps, norm), overwriting xk and grad.
    For Linf the arithmetic is the same, operation for operation, done in place: on small
    batches an attack step costs about as much in per-operation overhead as in arithmetic."""
    if norm != "Linf":
        return project(xk + step * ascent_direction(grad, norm), x0, eps, norm)
    return xk.add_(grad.sign_(), alpha=step).sub_(x0).clamp_(-eps, eps).add_(x0).clamp_(0, 1)


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

    def describe(self) -> str:
        if self.steps == 1 and not self.random_init:
            return f"FGSM: one step of {self.step_fraction:g}·eps on {self.loss}, no random start"
        return (f"PGD on {self.loss}: {self.steps} steps x {self.restarts} restarts, "
                f"step {self.step_fraction:g}·eps")

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
               n_backward: torch.Tensor, on_hit: Callable[[torch.Tensor, torch.Tensor], None],
               done: torch.Tensor) -> None:
        """`steps` signed-gradient steps from xk for rows (x0, labels). Every iterate is
        checked; rows that hit call on_hit(their ids, their points), which marks ids in
        `done`; a row leaves the batch once its id is done (a row that hit, and, where
        several rows share an id, its siblings). Passes are charged to each row's owner
        (the sample it belongs to) once, when the row leaves, so a step on which nothing
        hits does only the attack's own work."""
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
                leave = done[ids]
            if last or (any_hit and bool(leave.all())):  # every row leaves after this forward
                self.charge(owners, k + 1, k, n_forward, n_backward)
                return
            # the batch's backward runs through rows that leave now as well: charged
            grad, = torch.autograd.grad(loss.sum(), xk)
            xk = xk.detach()
            if any_hit:
                self.charge(owners[leave], k + 1, k + 1, n_forward, n_backward)
                keep = ~leave
                keep_dev = keep.to(xk.device)
                ids, owners, x0, labels = ids[keep], owners[keep], x0[keep_dev], labels[keep_dev]
                xk, grad = xk[keep_dev], grad[keep_dev]
            xk = ascent_step(xk, grad, x0, step, eps, self.norm)

    @staticmethod
    def charge(owners: torch.Tensor, forward: int, backward: int, n_forward: torch.Tensor,
               n_backward: torch.Tensor) -> None:
        n_forward.index_add_(0, owners, torch.full_like(owners, forward))
        n_backward.index_add_(0, owners, torch.full_like(owners, backward))

    def starts(self, x0: torch.Tensor, eps: float, sample_ids: torch.Tensor, restart: int,
               seed: int) -> torch.Tensor:
        """Restart `restart`'s first iterate for samples x0 (ids sample_ids): a random start
        from each sample's own generator, so it does not depend on the batch."""
        if not self.random_init:
            return x0.clone()
        gens = [sample_generator(seed, self.rng_stream, int(i), restart) for i in sample_ids]
        return random_start(x0, eps, self.norm, gens)

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
            first = first_occurrences(ids)  # rows are restart-major: the earliest restart
            x_adv[ids[first]] = points[first.to(points.device)]
            success[ids] = True

        restart = 0
        while restart < self.restarts:
            live = (~success).nonzero().squeeze(1)  # indices into the batch
            if len(live) == 0:
                break
            # Restarts fill the batch the attack was given: once few samples are left,
            # several restarts run side by side instead of one after another. A sample
            # is fooled iff some iterate of some restart is, either way; side by side,
            # the per-step cost is paid once for many rows, and memory stays bounded.
            together = min(self.restarts - restart, max(1, n // len(live)))
            rows = live.repeat(together)
            xk = torch.cat([self.starts(x[live], eps, sample_ids[live], r, seed)
                            for r in range(restart, restart + together)])
            rows_dev = rows.to(x.device)
            self.ascend(model, xk, x[rows_dev], y[rows_dev], rows, rows, eps, n_forward, n_backward,
                        on_hit, success)
            restart += together
        norm = perturbation_norm((x_adv - x).detach(), self.norm).cpu()
        return AttackResult(x_adv=x_adv.detach(), success=success, norm=norm,
                            n_forward=n_forward, n_backward=n_backward)


register_attack(PGD(id="fgsm", norm="Linf", steps=1, restarts=1, step_fraction=1.0,
                    random_init=False))
register_attack(PGD(id="pgd20", norm="Linf", steps=20))
register_attack(PGD(id="pgd100", norm="Linf", steps=100))
register_attack(PGD(id="pgd20-l2", norm="L2", steps=20))
register_attack(PGD(id="pgd100-l2", norm="L2", steps=100))
