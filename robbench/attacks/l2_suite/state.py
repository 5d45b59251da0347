"""l2-suite's state and its one move: run a library attack on some samples (an attempt),
verify each candidate ourselves, account the passes. The stages (apgd_stages,
ddn_stages, search_stages) are made of attempts; the schedule (schedule.L2Suite) runs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import foolbox as fb
import torch

from robbench.attacks.autoattack import captured_messages
from robbench.attacks.base import sample_generator
from robbench.attacks.minimum_norm import PassCounter, cw_failure_marker, rng_devices, split_evenly
from robbench.attacks.pgd import project
from robbench.defenses import DefenseModel

CLEAN = "clean"  # the stage name of samples misclassified without any perturbation; an APGD start
WARM = "warm"  # an APGD start: the best adversarial found so far, projected onto the ε-ball
PULL = 1 - 1e-6  # radius factor for points just beyond ε pulled back into the ball

Candidate = Callable[[PassCounter, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SuiteDetail:
    """Per sample, beside the AttackResult: `stage` is the index in `stages` of the
    stage that broke it (-1: robust), `stages` the names (CLEAN first, at index 0),
    `min_norm[name]` the norm of the verified adversarial each minimum-norm stage
    (MINIMUM_NORM_STAGES) found for the samples it ran on (inf: none, nan: did not run)."""

    stages: tuple[str, ...]
    stage: torch.Tensor
    min_norm: dict[str, torch.Tensor] = field(default_factory=dict)

    def broke(self) -> dict[str, int]:
        """How many samples each stage broke."""
        return {name: int((self.stage == i).sum()) for i, name in enumerate(self.stages)}


@dataclass
class State:
    """The batch as the stages see it (all per-sample tensors on the CPU but x/y)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    x_adv: torch.Tensor
    norm: torch.Tensor
    broken: torch.Tensor
    stage: torch.Tensor
    n_forward: torch.Tensor
    n_backward: torch.Tensor
    min_norm: dict[str, torch.Tensor]
    messages: list[str]
    classes: int
    walked: torch.Tensor  # the ddn stage met a zero gradient on this sample (random steps)

    def live(self, among: torch.Tensor | None = None) -> torch.Tensor:
        """Rows not yet broken (and, given a mask, in it)."""
        alive = ~self.broken if among is None else ~self.broken & among
        return alive.nonzero().squeeze(1)

    def near(self, limit: float) -> torch.Tensor:
        """Mask of the samples with a verified adversarial of norm <= limit (none: inf)."""
        return torch.isfinite(self.norm) & (self.norm <= limit)

    def generators(self, seed: int, stream: str, rows: torch.Tensor, run: int = 0) -> list[torch.Generator]:
        """One generator per row, keyed by the sample's id: draws that do not depend on the batch."""
        return [sample_generator(seed, stream, int(self.ids[r]), run) for r in rows]

    def classes_after_label(self, targets: int) -> range:
        """Ranks by clean logit (2: the runner-up) of `targets` classes, capped at classes - 1."""
        return range(2, min(targets, self.classes - 1) + 2)

    def far(self, limit: float) -> torch.Tensor:
        """Mask of the samples whose verified adversarials all lie beyond limit; a sample
        with none yet (inf) is not far: the targeted stages still try it."""
        return torch.isfinite(self.norm) & (self.norm > limit)


def attempt(model: DefenseModel, state: State, rows: torch.Tensor, eps: float,
            index: int, attack: Callable[[PassCounter, torch.Tensor, torch.Tensor, torch.Tensor],
                                         torch.Tensor], record: str | None = None) -> torch.Tensor:
    """Runs `attack(counter, x0, y0, rows)` on the batch rows `rows` (returns one
    candidate point each), verifies the candidates and charges every row its share.
    Returns, per row, whether its candidate is a verified adversarial (at any norm)."""
    if len(rows) == 0:
        return torch.zeros(0, dtype=torch.bool)
    counter = PassCounter(model)
    dev_rows = rows.to(state.x.device)
    x0, y0 = state.x[dev_rows], state.y[dev_rows]
    with captured_messages() as messages, torch.random.fork_rng(devices=rng_devices(x0)):
        candidate = attack(counter, x0, y0, rows).detach().to(x0.device, x0.dtype)
    state.messages += messages
    # every row ran for the same number of model calls: the split is exact
    state.n_forward[rows] += split_evenly(counter.forward_passes, len(rows))
    state.n_backward[rows] += split_evenly(counter.backward_passes, len(rows))
    return verify(model, state, rows, x0, y0, candidate, eps, index, record)


def verify(model: DefenseModel, state: State, rows: torch.Tensor, x0: torch.Tensor,
           y0: torch.Tensor, candidate: torch.Tensor, eps: float, index: int,
           record: str | None) -> torch.Tensor:
    """Our own verdict on the candidates: clipped, measured, re-classified. Beyond-ε
    adversarials are also tried pulled back into the ball. Updates the state, charges
    each row the forward passes of its own checks and returns the fooled mask."""
    point = candidate.clamp(0, 1)
    with torch.no_grad():
        fooled = (model(point).argmax(dim=1) != y0).cpu()
    state.n_forward[rows] += 1
    size = (point - x0).flatten(1).norm(dim=1).cpu()
    if record in ("cw", "cw-search"):
        fooled &= ~cw_failure_marker(point, x0)
    outside = (fooled & (size > eps)).nonzero().squeeze(1)
    pulled_ok = torch.zeros(len(rows), dtype=torch.bool)
    pulled = point
    if len(outside):
        dev = outside.to(point.device)
        pulled = point.clone()
        pulled[dev] = project(point[dev], x0[dev], eps * PULL, "L2")
        with torch.no_grad():
            pulled_ok[outside] = (model(pulled[dev]).argmax(dim=1) != y0[dev]).cpu()
        state.n_forward[rows[outside]] += 1
    pulled_size = (pulled - x0).flatten(1).norm(dim=1).cpu()
    inside = fooled & (size <= eps)
    rescued = pulled_ok & (pulled_size <= eps) & ~inside
    if record is not None:  # the minimum-norm stage's own result, for norm statistics
        found = torch.where(fooled, size, torch.full_like(size, float("inf")))
        # a stage may run more than once (ddn_inits): keep its smallest (fmin skips nan)
        state.min_norm[record][rows] = torch.fmin(state.min_norm[record][rows], found)
    # a robust sample keeps the smallest verified adversarial beyond ε (minimum-norm output)
    beyond = fooled & ~inside & ~rescued & (size < state.norm[rows])
    for mask, pts, sizes, brk in ((beyond, point, size, False), (inside, point, size, True),
                                  (rescued, pulled, pulled_size, True)):
        if mask.any():
            sel = rows[mask]
            state.x_adv[sel.to(state.x.device)] = pts[mask.to(pts.device)]
            state.norm[sel] = sizes[mask]
            if brk:
                state.broken[sel] = True
                state.stage[sel] = index
    return fooled


def foolbox_run(attack: fb.attacks.MinimizationAttack, seed: int) -> Callable[..., torch.Tensor]:
    def run(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        fmodel = fb.PyTorchModel(counter, bounds=(0, 1), device=x0.device)
        torch.manual_seed(seed)  # DDN: random directions where a gradient is zero
        return attack(fmodel, x0, y0, epsilons=None)[0]

    return run
