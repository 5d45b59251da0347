"""Adversarial training recipes: PGD-AT (Madry), AT+C, TRADES, MAT with BIBO.
The inner maximisation is plain L∞ PGD returning its last iterate (training only;
evaluation attacks live in robbench.attacks and keep the best point found)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from model_zoo.recipes.base import TrainContext, register_recipe
from robbench.analysis.linearization import class_directions, class_groups, correlation_matrix
from robbench.zoo.lookup import load_model


def maximize_linf(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float,
                  steps: int, step_size: float, start: torch.Tensor | None = None) -> torch.Tensor:
    """argmax over the ε-ball of Σ loss_fn(x') by signed-gradient steps; `start`
    defaults to a uniform random point in the ball."""
    if start is None:
        start = x + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = start.clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        grad, = torch.autograd.grad(loss_fn(x_adv).sum(), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Craft training adversarials with the model in eval mode, as the references do."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def pgd_ce(ctx: TrainContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    eps, steps = ctx.eps, ctx.args.get("attack_steps", 10)
    with eval_mode(ctx.model):
        return maximize_linf(lambda xa: F.cross_entropy(ctx.model(xa), y, reduction="none"),
                             x, eps, steps, eps / 4)


@register_recipe("adversarial")
def train_adversarial(ctx: TrainContext) -> None:
    """Madry PGD-AT; for AT+C the model's loss adds β·reg (METHODS §2.7). AT+C's
    class groups, when the dataset has no known hierarchy, come from the
    linearised correlation matrix of the robust model named by `groups_from`."""
    if ctx.model.defense_id == "atc" and ctx.model.groups is None:
        ctx.model.groups = derive_groups(ctx)
        ctx.log(f"class groups from {ctx.args['groups_from']}: {ctx.model.groups}")
    ctx.fit(lambda x, y: ctx.model.loss(pgd_ce(ctx, x, y), y))


def derive_groups(ctx: TrainContext) -> list[list[int]]:
    robust = load_model(ctx.args["groups_from"]).model
    return class_groups(correlation_matrix(class_directions(robust, tuple(ctx.train.x.shape[1:]))))


@register_recipe("trades")
def train_trades(ctx: TrainContext) -> None:
    steps = ctx.args.get("attack_steps", 10)

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.model.eps = ctx.eps  # follows the warm-up, batch by batch
        return ctx.model.loss(x, y, ctx.model.trades_adversary(x, steps=steps))

    ctx.fit(loss)
    ctx.model.eps = ctx.target_eps  # the checkpoint keeps the full ε, even if training ended mid-warm-up


@register_recipe("mat")
def train_mat(ctx: TrainContext) -> None:
    """L_MAT = FTC + α·SO + β·BIBO, BIBO's inner max CD(f(x), f(x')) by PGD."""
    model, steps = ctx.model, ctx.args.get("attack_steps", 5)

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not model.beta:
            return model.loss(x, y)
        eps = ctx.eps  # read per batch: it follows the warm-up (never hoist it out of the loop)
        with eval_mode(model):
            f_clean = model.features(x).detach()
            x_bibo = maximize_linf(lambda xa: model.bibo_distance(f_clean, model.features(xa)),
                                   x, eps, steps, eps / 4)
        return model.loss(x, y, x_adv=x_bibo)

    ctx.fit(loss)
