"""l2-suite's APGD stages (pyautoattack's APGD and APGD-T, at ε): from x, from random starts,
from the best adversarial so far (warm), toward target classes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from robbench.attacks.l2_suite.state import CLEAN, WARM, State, attempt
from robbench.attacks.losses import margin
from robbench.attacks.minimum_norm import PassCounter
from robbench.attacks.pgd import project, random_start
from robbench.defenses import DefenseModel


class _APGDMargin(APGDAttack):
    """APGD on the C&W margin max_{c≠y} z_c − z_y (run with loss="dlr": pyautoattack picks
    a loss by name, and its "dlr" slot calls self.dlr_loss). Unlike CE it does not
    saturate, and unlike DLR it keeps the logits' own geometry."""

    def dlr_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return margin(x, y)


def apgd(suite, eps: float, seed: int, state: State, loss: str, start: str | torch.Tensor,
         target_rank: int | None = None) -> Callable[..., torch.Tensor]:
    """An APGD run as an `_attempt` attack, from one start: WARM (the state's current
    x_adv) or a tensor of points (one per batch row), projected onto the ε-ball; CLEAN
    (x itself); or else a random start from our per-sample generator for the stream
    named `start`."""

    def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor,
               rows: torch.Tensor) -> torch.Tensor:
        if isinstance(start, torch.Tensor) or start == WARM:
            points = start if isinstance(start, torch.Tensor) else state.x_adv
            first = project(points[rows.to(x0.device)], x0, eps, "L2")
        elif start == CLEAN:
            first = x0.clone()
        else:
            first = random_start(x0, eps, "L2", state.generators(seed, start, rows))
        if target_rank is not None:
            cls, kwargs = APGDAttack_targeted, {}
        elif loss == "margin":  # pyautoattack's "dlr" slot calls self.dlr_loss
            cls, kwargs = _APGDMargin, {"loss": "dlr"}
        else:
            cls, kwargs = APGDAttack, {"loss": loss}
        steps = suite.apgd_steps if target_rank is None else suite.targeted_steps
        apgd = cls(counter, n_iter=steps, norm="L2", eps=eps, seed=seed,
                   device=x0.device, **kwargs)
        apgd.init_hyperparam(x0)
        if target_rank is not None:
            with torch.no_grad():
                apgd.y_target = counter(x0).sort(dim=1)[1][:, -target_rank]
        return apgd.attack_single_run(x0, y0, x_init=first)[3]

    return attack


def apgd_ce(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    apgd_untargeted(suite, model, state, eps, seed, index, "ce")


def apgd_dlr(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    apgd_untargeted(suite, model, state, eps, seed, index, "dlr")


def apgd_margin(suite, model: DefenseModel, state: State, eps: float, seed: int,
                index: int) -> None:
    attempt(model, state, state.live(), eps, index,
            apgd(suite, eps, seed, state, "margin", CLEAN))


def apgd_untargeted(suite, model: DefenseModel, state: State, eps: float, seed: int,
                    index: int, loss: str) -> None:
    for restart in range(suite.apgd_restarts):
        attempt(model, state, state.live(), eps, index,
                apgd(suite, eps, seed, state, loss, f"l2-suite/apgd-{loss}/{restart}"))


def apgd_warm(suite, model: DefenseModel, state: State, eps: float, seed: int,
              index: int) -> None:
    for loss, radius in suite.warm_runs:
        attempt(model, state, state.live(state.near(radius * eps)), eps, index,
                apgd(suite, eps, seed, state, loss, WARM))


def target_ranks(state: State, targets: int, stage: str) -> range:
    """Ranks by clean logit (2: the runner-up) of the classes a targeted stage aims at,
    `targets` of them capped at classes - 1; none below 4 classes, where the targeted
    DLR loss (it needs the 4 largest logits) is undefined: the stage is skipped, said."""
    if state.classes < 4:
        state.messages.append(f"l2-suite: {stage} skipped (fewer than 4 classes)")
        return range(0)
    return state.classes_after_label(targets)


def apgd_t(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    far = state.far(suite.targeted_radius * eps)
    for rank in target_ranks(state, suite.apgd_targets, "apgd-t"):
        attempt(model, state, state.live(~far), eps, index,
                apgd(suite, eps, seed, state, "dlr-targeted", f"l2-suite/apgd-t/{rank}", rank))


def apgd_t_warm(suite, model: DefenseModel, state: State, eps: float, seed: int,
                index: int) -> None:
    near = state.near(suite.warm_radius * eps)  # fixed before the loop, as in every near stage
    for rank in target_ranks(state, suite.warm_targets, "apgd-t-warm"):
        attempt(model, state, state.live(near), eps, index,
                apgd(suite, eps, seed, state, "dlr-targeted", WARM, rank))


def apgd_restarts(suite, model: DefenseModel, state: State, eps: float, seed: int,
                  index: int) -> None:
    near = state.near(suite.restart_radius * eps)
    for loss in suite.restart_losses:
        attempt(model, state, state.live(near), eps, index,
                apgd(suite, eps, seed, state, loss, f"l2-suite/apgd-restarts/{loss}"))
