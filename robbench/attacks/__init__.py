"""Attacks by id. Importing this package registers every attack module."""

from robbench.attacks.base import ATTACKS, Attack, AttackResult, register_attack
from robbench.attacks import (adaptive, autoattack, cascade, minimum_norm, pgd, targeted,  # noqa: F401
                              transfer)  # (registers)

__all__ = ["ATTACKS", "Attack", "AttackResult", "register_attack"]
