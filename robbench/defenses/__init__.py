"""Defense wrappers by id. Importing this package registers every defense module."""

from robbench.defenses.base import DEFENSES, DefenseModel, register_defense
from robbench.defenses import magnet, mat, mmc, prototypes, softmax  # noqa: F401  (registers)

__all__ = ["DEFENSES", "DefenseModel", "register_defense"]
