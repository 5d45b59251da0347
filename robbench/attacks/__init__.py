"""Attacks by id. Importing this package registers every attack module."""

from robbench.attacks.base import ATTACKS, Attack, AttackResult, register_attack
from robbench.attacks import (adaptive, autoattack, cascade, fast, l2_suite,  # noqa: F401
                              minimum_norm, pgd, smoothed_relu, targeted,
                              transfer)  # (registers)

__all__ = ["ATTACKS", "Attack", "AttackResult", "register_attack"]
