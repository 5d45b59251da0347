"""The calling convention and result type every attack shares (as in foolbox 3)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from robbench.defenses import DefenseModel
from robbench.registry import Registry
from robbench.store.runs import use_attack_registry
from robbench.types import AttackResult

__all__ = ["ATTACKS", "Attack", "AttackResult", "perturbation_norm", "register_attack",
           "run_in_batches", "sample_generator"]


@dataclass(frozen=True)
class Attack:
    """Subclasses are frozen dataclasses: their fields are the attack's parameters,
    recorded with every result so cached results are reused only for the same attack."""

    id: str
    norm: str  # "Linf" or "L2": the threat model whose ε the attack respects
    minimum_norm: ClassVar[bool] = False  # True: perturbations are not bounded by ε

    @property
    def gradient_free(self) -> bool:
        """True when the attack includes a stage that uses no gradient (Square). Gradient
        attacks can all stall on the same masked or flat loss, so a worst case counts as
        checked only with one of these on record (METHODS §3)."""
        return False

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        """Attacks a batch. `sample_ids` (the samples' indices in the test split) and
        `seed` fix all randomness per sample, so results do not depend on batching."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return asdict(self)

    def listing(self) -> dict[str, Any]:
        """What robbench.list_attacks() and `robbench attacks --json` give for it."""
        return {"id": self.id, "type": type(self).__name__, **self.params()}

    @property
    def kind(self) -> str:
        """One word for `robbench attacks`: gradient, adaptive, ensemble, score-based,
        transfer, min-norm or cascade."""
        return "min-norm" if self.minimum_norm else "gradient-free" if self.gradient_free else "gradient"

    def describe(self) -> str:
        """One line for `robbench attacks` (the full parameters: `params()`): by default
        the first sentence of the class docstring."""
        doc = " ".join((type(self).__doc__ or type(self).__name__).split())
        return doc.split(". ")[0].rstrip(".")


ATTACKS: Registry[Attack] = Registry("attack")
use_attack_registry(ATTACKS)  # the store checks a minimum-norm attack's records as such


def register_attack(attack: Attack) -> Attack:
    ATTACKS.add(attack.id, attack)
    return attack


def sample_generator(seed: int, attack_id: str, sample_id: int, restart: int) -> torch.Generator:
    """A generator unique to (seed, attack, sample, restart)."""
    key = f"{seed}/{attack_id}/{sample_id}/{restart}".encode()
    value = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
    return torch.Generator().manual_seed(value)


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "Linf" else flat.norm(dim=1)


def run_in_batches(attack: Attack, model: DefenseModel, x: torch.Tensor, y: torch.Tensor,
                   sample_ids: torch.Tensor, *, eps: float, seed: int, batch_size: int,
                   device: torch.device | str) -> Iterator[tuple[torch.Tensor, AttackResult, float]]:
    """(sample ids, result, seconds) per batch of rows of x/y (on the CPU; moved to
    `device` one batch at a time). The one loop both the local and the Ray backend run."""
    for start in range(0, len(sample_ids), batch_size):
        rows = slice(start, start + batch_size)
        t0 = time.perf_counter()
        result = attack.run(model, x[rows].to(device), y[rows].to(device), eps=eps,
                            sample_ids=sample_ids[rows], seed=seed)
        yield sample_ids[rows], result, time.perf_counter() - t0
