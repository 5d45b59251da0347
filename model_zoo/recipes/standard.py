"""The defense's own loss on clean inputs with Adam: nominal CE, MMC, DRP, MAT-FTC/SO."""

from __future__ import annotations


from model_zoo.recipes.base import TrainContext, register_recipe


@register_recipe("standard")
def train_standard(ctx: TrainContext) -> None:
    ctx.fit(lambda x, y: ctx.model.loss(x, y))
