"""l2-suite's other minimum-norm stages: C&W's per-sample search over its constant
(cw-search), targeted FAB (fab-t), FMN and plain C&W."""

from __future__ import annotations

from collections.abc import Callable

import foolbox as fb
import torch
from pyautoattack.fab_pt import FABAttack_PT

from robbench.attacks.l2_suite.state import State, attempt, foolbox_run
from robbench.attacks.losses import margin
from robbench.attacks.minimum_norm import PassCounter
from robbench.defenses import DefenseModel


def next_constants(tried: torch.Tensor, crossed: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                   factor: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of a per-row binary search over C&W's constant: a constant that crossed
    becomes the row's upper bound, one that did not its lower bound (0 and inf: none yet);
    the next constant is the bracket's geometric middle, or tried ÷ / × `factor` while
    the bracket is open below / above. Returns (next, low, high)."""
    high = torch.where(crossed, tried, high)
    low = torch.where(crossed, low, tried)
    following = torch.where(high.isinf(), tried * factor,
                            torch.where(low == 0, tried / factor, torch.sqrt(low * high)))
    return following, low, high




class _ScaledLogits(torch.nn.Module):
    """model(x) with row i's logits multiplied by scale[i]: same argmax, margin scaled.
    Only for attacks that always call the model on the whole batch, rows in order."""

    def __init__(self, model: torch.nn.Module, scale: torch.Tensor) -> None:
        super().__init__()
        self.model, self.scale = model, scale
        self.training = model.training  # no recursive .eval(): leave the model's mode alone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) != len(self.scale):
            raise RuntimeError("per-row logit scales need the whole batch, in order")
        return self.model(x) * self.scale.view(-1, 1).to(x.device, x.dtype)


def cw_search(suite, model: DefenseModel, state: State, eps: float, seed: int,
              index: int) -> None:
    """C&W's binary search over its constant, per sample, from a guessed constant and
    with few steps per constant. Each round runs on the survivors; a row's constant goes
    down (÷ factor, or to the geometric middle of its bracket) after any adversarial,
    up after none: the same directions as foolbox's search, from our own start."""
    near = state.near(suite.cw_radius * eps)
    n = len(state.y)
    const = torch.full((n,), float("nan"))
    low, high = torch.zeros(n), torch.full((n,), float("inf"))
    for _ in range(suite.cw_search_rounds):
        rows = state.live(near)
        crossed = attempt(model, state, rows, eps, index, cw_at(suite, eps, const),
                          "cw-search")
        const[rows], low[rows], high[rows] = next_constants(const[rows], crossed, low[rows], high[rows],
                                                            suite.cw_search_factor)


def cw_at(suite, eps: float, const: torch.Tensor) -> Callable[..., torch.Tensor]:
    """foolbox C&W-L2, one constant per row: `const[row]`, or where that is nan the
    guess c = 2ε / ‖∇ margin(x)‖ (written back into `const`), at which the penalty's
    gradient 2δ at a perturbation of size ε balances c times the margin's gradient at
    x. Per-row constants enter as logits scaled by c under initial_const 1 (the
    margin term is then c·max(0, z_y − max_other z), exactly C&W's)."""

    def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor,
               rows: torch.Tensor) -> torch.Tensor:
        unset = const[rows].isnan()
        if unset.any():
            probe = x0[unset.to(x0.device)].clone().requires_grad_(True)
            grad, = torch.autograd.grad(margin(counter(probe), y0[unset.to(x0.device)]).sum(), probe)
            guess = 2 * eps / grad.flatten(1).norm(dim=1)
            # a nan or infinite gradient would leave the row without a usable constant
            guess = torch.where(torch.isfinite(guess) & (guess > 0), guess, torch.ones_like(guess))
            const[rows[unset]] = guess.clamp(1e-10, 1e10).cpu()
        fmodel = fb.PyTorchModel(_ScaledLogits(counter, const[rows]), bounds=(0, 1),
                                 device=x0.device)
        cw = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=1, steps=suite.cw_search_steps,
                                              stepsize=suite.cw_search_stepsize, initial_const=1.0,
                                              abort_early=False)
        return cw(fmodel, x0, y0, epsilons=None)[0]

    return attack


def fab_t(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    """FAB toward each target class, from x (no random start: deterministic per sample), on
    every survivor: DDN's norms are no guide to where FAB lands (run only where the best
    adversarial lay within 1.35 ε, it left 91 more trades-mnist-t10k samples robust)."""
    for rank in state.classes_after_label(suite.fab_targets):  # FAB needs no 4 logits
        def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor, rows: torch.Tensor,
                   rank: int = rank) -> torch.Tensor:
            fab = FABAttack_PT(counter, norm="L2", n_iter=suite.fab_steps, eps=eps, seed=seed,
                               targeted=True, device=x0.device, n_target_classes=1)
            fab.target_class = rank
            return fab.attack_single_run(x0, y0, use_rand_start=False, is_targeted=True)

        attempt(model, state, state.live(), eps, index, attack, "fab-t")


def fmn(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    attack = fb.attacks.L2FMNAttack(steps=suite.fmn_steps)
    attempt(model, state, state.live(), eps, index, foolbox_run(attack, seed), "fmn")


def cw(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=suite.cw_binary_search_steps, steps=suite.cw_steps,
        stepsize=suite.cw_stepsize, initial_const=suite.cw_initial_const, abort_early=False)
    attempt(model, state, state.live(), eps, index, foolbox_run(attack, seed), "cw")
