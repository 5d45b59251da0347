"""Targeted PGD toward every other class (METHODS §3): which targets each sample can
be pushed to gives the attack confusion matrix M (section 4)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from robbench.attacks.base import AttackResult, perturbation_norm, register_attack, sample_generator
from robbench.attacks.pgd import PGD, first_occurrences, random_start
from robbench.defenses import DefenseModel


@dataclass(kw_only=True)
class TargetedResult(AttackResult):
    """`reached[i, t]`: some iterate toward t was classified t (never t = y_i). For a
    clean-misclassified sample, the clean prediction counts as reached."""

    reached: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.bool))


@dataclass(frozen=True)
class TargetedPGD(PGD):
    """Maximises −CE(z, t) for every t ≠ y as one batch of (sample, target) pairs; a
    pair stops costing compute once t is reached, and the first iterate reaching any
    target is the sample's x_adv (nothing visited is lost). Counts are summed over a
    sample's pairs."""

    steps: int = 100

    def describe(self) -> str:
        return f"PGD toward every other class: {self.steps} steps x {self.restarts} restarts"

    @property
    def rng_stream(self) -> str:
        return f"pgd-targeted-{self.norm}"

    def objective(self, model: DefenseModel, x_adv: torch.Tensor, x: torch.Tensor,
                  t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x_adv)
        return -F.cross_entropy(logits, t, reduction="none"), logits

    def hit(self, logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) == t

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> TargetedResult:
        n = len(y)
        with torch.no_grad():
            logits = model(x)
        pred, y_cpu, num_classes = logits.argmax(dim=1).cpu(), y.cpu(), logits.shape[1]
        success = pred != y_cpu  # misclassified: x itself, norm 0
        reached = torch.zeros(n, num_classes, dtype=torch.bool)
        reached[success, pred[success]] = True
        n_forward = torch.ones(n, dtype=torch.int64)
        n_backward = torch.zeros(n, dtype=torch.int64)
        x_adv = x.clone()
        # (sample, target) pairs of the clean-correct samples
        others = torch.arange(num_classes)[None] != y_cpu[:, None]
        pair_sample, pair_target = (~success[:, None] & others).nonzero(as_tuple=True)
        done = torch.zeros(len(pair_sample), dtype=torch.bool)

        def on_hit(pairs: torch.Tensor, points: torch.Tensor) -> None:
            done[pairs] = True
            src, tgt = pair_sample[pairs], pair_target[pairs]
            reached[src, tgt] = True
            new = (~success[src]).nonzero().squeeze(1)  # rows of samples not yet fooled
            first = new[first_occurrences(src[new])]
            x_adv[src[first]] = points[first.to(points.device)]  # the first target reached
            success[src] = True

        for restart in range(self.restarts):
            live = (~done).nonzero().squeeze(1)  # indices into the pairs
            if len(live) == 0:
                break
            src, tgt = pair_sample[live], pair_target[live]
            gens = [sample_generator(seed, f"{self.rng_stream}/t{int(t)}", int(sample_ids[i]), restart)
                    for i, t in zip(src, tgt)]  # one stream per target
            xk = random_start(x[src], eps, self.norm, gens) if self.random_init else x[src].clone()
            self.ascend(model, xk, x[src], tgt.to(y.device), live, src, eps, n_forward, n_backward,
                        on_hit, done)
        norm = perturbation_norm((x_adv - x).detach(), self.norm).cpu()
        return TargetedResult(x_adv=x_adv.detach(), success=success, norm=norm,
                              n_forward=n_forward, n_backward=n_backward, reached=reached)


register_attack(TargetedPGD(id="pgd-targeted", norm="Linf"))
