"""Restarts spent where the loss says a sample is close (Adaptive Auto Attack's
discarding, CVPR 2022): a short probe from one random start measures how near each
sample came to the boundary; only the samples that came near get further restarts.

Why: past the first strong attacks, what is left is mostly samples no attack breaks
and a few borderline ones that only some random start breaks. The standard set finds
the borderline ones by brute force (tens of restarts on every sample); restarts on
the samples whose best loss stayed far from the boundary are spent for nothing. The
loss is the DLR (difference of logits ratio), which does not depend on the logits'
scale, so one threshold serves every defense: a sample whose best DLR loss in the
probe lies above `closeness` (0 is the boundary) is close."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from robbench.attacks.base import ATTACKS, Attack, AttackResult, perturbation_norm, sample_generator
from robbench.attacks.cascade import run_cascade
from robbench.attacks.losses import LOSSES
from robbench.attacks.pgd import ascent_step, random_start
from robbench.config import PGD_STEP_FRACTION
from robbench.defenses import DefenseModel


@dataclass(frozen=True)
class CloseRestarts(Attack):
    """A `probe_steps` PGD probe on every sample, then the registered `attacks` in turn
    (robbench.attacks.cascade) on the samples it found close (best loss above
    `closeness`) but left robust."""

    attacks: tuple[str, ...] = ()
    probe_steps: int = 20
    closeness: float = -0.25
    loss: str = "dlr"
    step_fraction: float = PGD_STEP_FRACTION

    def describe(self) -> str:
        return (f"{len(self.attacks)} attacks where a {self.probe_steps}-step {self.loss} probe "
                f"came above {self.closeness:g}")

    def params(self) -> dict[str, Any]:
        return {**asdict(self), "stages": {a: ATTACKS.get(a).params() for a in self.attacks}}

    def probe(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, eps: float,
              sample_ids: torch.Tensor, seed: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fooled, the first fooling point or x, best loss) of one PGD run per sample,
        from a random start of its own: every iterate checked, none stopped early (the
        best loss is what is measured)."""
        gens = [sample_generator(seed, f"{self.id}-probe", int(i), 0) for i in sample_ids]
        xk = random_start(x, eps, self.norm, gens).to(x.device)
        fooled = torch.zeros(len(y), dtype=torch.bool, device=x.device)
        x_adv, best = x.clone(), torch.full((len(y),), float("-inf"), device=x.device)
        for k in range(self.probe_steps + 1):
            last = k == self.probe_steps
            xk.requires_grad_(not last)
            with torch.set_grad_enabled(not last):
                logits = model(xk)
                loss = LOSSES[self.loss](logits, y)
            hit = (logits.argmax(dim=1) != y) & ~fooled
            x_adv[hit] = xk.detach()[hit]
            fooled |= hit
            best = torch.maximum(best, loss.detach())
            if last:
                break
            grad, = torch.autograd.grad(loss.sum(), xk)
            xk = ascent_step(xk.detach(), grad, x, self.step_fraction * eps, eps, self.norm)
        return fooled.cpu(), x_adv.detach(), best.cpu()

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        n = len(y)
        success, x_adv, best = self.probe(model, x, y, eps, sample_ids, seed)
        n_forward = torch.full((n,), self.probe_steps + 1, dtype=torch.int64)
        n_backward = torch.full((n,), self.probe_steps, dtype=torch.int64)
        close = (~success & (best > self.closeness)).nonzero().squeeze(1)
        flags = [f"{self.id}:close:{len(close)}"]
        if len(close):
            rows = close.to(x.device)
            r = run_cascade([ATTACKS.get(a) for a in self.attacks], model, x[rows], y[rows],
                            eps=eps, sample_ids=sample_ids[close], seed=seed, label=self.id)
            flags += r.flags
            x_adv[rows] = torch.where(r.success.to(x.device).view(-1, *[1] * (x.dim() - 1)),
                                      r.x_adv.to(x_adv.dtype), x_adv[rows])
            success[close] = r.success.cpu()
            n_forward[close] += r.n_forward.cpu()
            n_backward[close] += r.n_backward.cpu()
        return AttackResult(x_adv=x_adv, success=success,
                            norm=perturbation_norm((x_adv - x).detach(), self.norm).cpu(),
                            n_forward=n_forward, n_backward=n_backward,
                            flags=sorted(set(flags)))
