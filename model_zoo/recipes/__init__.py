"""Training recipes by id. Importing this package registers every recipe module."""

from model_zoo.recipes.base import RECIPES, TrainContext, register_recipe
from model_zoo.recipes import adversarial, magnet, standard  # noqa: F401  (registers)

__all__ = ["RECIPES", "TrainContext", "register_recipe"]
