"""Attacks by id. Importing this package registers every attack module."""

from robbench.attacks.base import ATTACKS, Attack, AttackResult, register_attack
from robbench.attacks import (adaptive, autoattack, cascade, l2_suite, minimum_norm,  # noqa: F401
                              pgd, targeted, transfer)  # (registers)

__all__ = ["ATTACKS", "Attack", "AttackResult", "register_attack"]
