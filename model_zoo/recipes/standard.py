"""Nominal training: cross-entropy on clean inputs with Adam."""

from __future__ import annotations

import torch

from model_zoo.recipes.base import TrainContext, register_recipe


@register_recipe("nominal")
def train_nominal(ctx: TrainContext) -> None:
    epochs, lr, batch_size = ctx.args["epochs"], ctx.args["lr"], ctx.args["batch_size"]
    opt = torch.optim.Adam(ctx.model.parameters(), lr=lr)
    for epoch in range(epochs):
        ctx.model.train()
        total, count = 0.0, 0
        for x, y in ctx.batches(batch_size):
            loss = ctx.model.loss(x, y).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(y), count + len(y)
        ctx.log_epoch(epoch, epochs, total / count)
