"""Attacks by id. Importing this package registers every attack module."""

from robbench.attacks.base import ATTACKS, Attack, AttackResult, register_attack
from robbench.attacks import adaptive, autoattack, l2_suite, minimum_norm, pgd, targeted, transfer  # noqa: F401  (registers)

__all__ = ["ATTACKS", "Attack", "AttackResult", "register_attack"]
