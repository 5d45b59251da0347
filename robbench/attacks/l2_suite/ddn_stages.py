"""l2-suite's DDN stages (minimum-norm, margin_ddn and foolbox's DDN): from x, from random
starts, random walks where a gradient was zero, from the best adversarial so far."""

from __future__ import annotations

from collections.abc import Sequence

import foolbox as fb
import torch

from robbench.attacks import margin_ddn
from robbench.attacks.l2_suite.apgd_stages import apgd
from robbench.attacks.l2_suite.state import State, attempt, foolbox_run
from robbench.attacks.losses import LOSSES, cross_entropy
from robbench.attacks.minimum_norm import PassCounter
from robbench.attacks.pgd import random_start
from robbench.defenses import DefenseModel


def ddn(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    """foolbox's DDN on the cross-entropy (margin_ddn with its loss), with each sample's
    random directions where the gradient is zero from that sample's own generator."""
    for run, ratio in enumerate(suite.ddn_inits):
        def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor, rows: torch.Tensor,
                   init: float = ratio * eps, run: int = run) -> torch.Tensor:
            walked = torch.zeros(len(rows), dtype=torch.bool)
            point = margin_ddn.ddn(counter, x0, y0, steps=suite.ddn_steps, init_epsilon=init,
                                   gamma=suite.ddn_gamma, loss=cross_entropy,
                                   generators=state.generators(seed, "l2-suite/ddn", rows, run),
                                   walked=walked)
            state.walked[rows] |= walked
            return point

        attempt(model, state, state.live(), eps, index, attack, "ddn")


def ddn_margin(suite, model: DefenseModel, state: State, eps: float, seed: int,
               index: int) -> None:
    for ratio in suite.margin_ddn_inits:
        def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor, rows: torch.Tensor,
                   init: float = ratio * eps) -> torch.Tensor:
            return margin_ddn.ddn(counter, x0, y0, steps=suite.ddn_steps, init_epsilon=init,
                                  gamma=suite.ddn_gamma)

        attempt(model, state, state.live(), eps, index, attack, "ddn-margin")


def ddn_restarts(suite, model: DefenseModel, state: State, eps: float, seed: int,
                 index: int) -> None:
    """DDN from random points, one run per (loss, radius) in `restart_starts`, each on
    the survivors of the last, near the boundary only."""
    ddn_from_random_starts(suite, model, state, eps, seed, index, state.near(suite.restart_radius * eps),
                           suite.restart_starts, "ddn-restarts", polish=None)


def ddn_walks(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    """More random walks where the first one's result hung on its draws: CE DDN runs from
    random points (`walk_starts`) on the near survivors whose ddn run met a zero gradient,
    each run followed by APGD-CE from its own point."""
    among = state.near(suite.walk_radius * eps) & state.walked
    ddn_from_random_starts(suite, model, state, eps, seed, index, among,
                           [("ce", radius) for radius in suite.walk_starts], "ddn-walks", polish="ce")


def ddn_from_random_starts(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int,
                           among: torch.Tensor, starts: Sequence[tuple[str, float]], stage: str,
                           polish: str | None) -> None:
    """One DDN run per (loss, radius x ε) in `starts`, each from a random point of that
    radius, on the survivors in `among`; given a `polish` loss, each run is followed by
    APGD on it from the run's own adversarials, projected onto the ε-ball."""
    for run, (loss, radius) in enumerate(starts):
        found = state.x.clone()

        def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor, rows: torch.Tensor,
                   loss: str = loss, radius: float = radius, run: int = run) -> torch.Tensor:
            gens = state.generators(seed, f"l2-suite/{stage}", rows, run)
            found[rows.to(x0.device)] = margin_ddn.ddn(
                counter, x0, y0, steps=suite.ddn_steps, init_epsilon=radius * eps, gamma=suite.ddn_gamma,
                loss=LOSSES[loss], start=random_start(x0, radius * eps, "L2", gens), generators=gens)
            return found[rows.to(x0.device)]

        rows = state.live(among)
        fooled = attempt(model, state, rows, eps, index, attack, stage)
        if polish is not None:
            polished = torch.zeros_like(among)
            polished[rows[fooled]] = True
            attempt(model, state, state.live(polished), eps, index,
                    apgd(suite, eps, seed, state, polish, found))


def ddn_warm(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    """DDN from the best adversarial found so far (beyond ε), shrinking it toward x."""
    def attack(counter: PassCounter, x0: torch.Tensor, y0: torch.Tensor,
               rows: torch.Tensor) -> torch.Tensor:
        start = state.x_adv[rows.to(x0.device)]
        return margin_ddn.ddn(counter, x0, y0, steps=suite.ddn_steps, init_epsilon=None,
                              gamma=suite.ddn_gamma, loss=LOSSES[suite.ddn_warm_loss], start=start)

    attempt(model, state, state.live(state.near(suite.warm_radius * eps)), eps, index, attack,
            "ddn-warm")


def ddn_long(suite, model: DefenseModel, state: State, eps: float, seed: int, index: int) -> None:
    attack = fb.attacks.DDNAttack(init_epsilon=eps, steps=suite.long_steps, gamma=suite.ddn_gamma)
    attempt(model, state, state.live(state.near(suite.long_radius * eps)), eps, index,
            foolbox_run(attack, seed), "ddn-long")
