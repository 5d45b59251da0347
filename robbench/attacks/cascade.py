"""Attacks in a cascade: each runs only on the samples every earlier one left robust.

When the worst case is what is wanted, a sample broken by a cheap attack needs no
expensive one (as AutoAttack runs its attacks). Every attack fixes its randomness per
sample (or, for library attacks, per batch), so running it on fewer samples changes
nothing for the samples it does run on: the cascade's per-sample worst case is the one
of running every attack on every sample, at a fraction of the cost. What it gives up is
the per-attack columns: an attack's accuracy over all samples is unknown once the
samples broken before it are skipped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from robbench.attacks.base import ATTACKS, Attack, AttackResult, register_attack
from robbench.config import STANDARD_ATTACKS
from robbench.defenses import DefenseModel
from robbench.errors import RobbenchError

# The standard sets, cheapest first: untargeted APGD (100 steps, one restart), transfer
# (one forward pass on the defense), then the 10-restart PGD and adaptive attacks,
# AutoAttack's targeted attacks and Square last.
CASCADE_ORDER = ("apgd-ce", "apgd-dlr", "transfer", "pgd100", "adaptive", "aa", "square",
                 "fgsm", "pgd20")


def cheapest_first(ids: Sequence[str]) -> tuple[str, ...]:
    """`ids` in CASCADE_ORDER; ids it does not know go last, in the order given."""
    rank = {a: i for i, a in enumerate(CASCADE_ORDER)}
    return tuple(sorted(dict.fromkeys(ids), key=lambda a: rank.get(a, len(rank))))


def run_cascade(attacks: Sequence[Attack], model: DefenseModel, x: torch.Tensor, y: torch.Tensor,
                *, eps: float, sample_ids: torch.Tensor, seed: int, label: str) -> AttackResult:
    """Each attack on the samples still robust. A broken sample keeps the point, norm
    and pass counts of the attack that broke it (plus what earlier attacks spent); a
    robust one those of the last attack. Flags `<label>:<attack>:<broken>` count what
    each attack broke."""
    n = len(y)
    x_adv, norm = x.clone(), torch.zeros(n)
    success = torch.zeros(n, dtype=torch.bool)
    n_forward = torch.zeros(n, dtype=torch.int64)
    n_backward = torch.zeros(n, dtype=torch.int64)
    flags: list[str] = []
    live = torch.arange(n)
    for attack in attacks:
        if len(live) == 0:
            flags.append(f"{label}:{attack.id}:0")
            continue
        r = attack.run(model, x[live], y[live], eps=eps, sample_ids=sample_ids[live], seed=seed)
        x_adv[live] = r.x_adv.to(x_adv.device, x_adv.dtype)
        norm[live] = r.norm.float().cpu()
        success[live] = r.success.cpu()
        n_forward[live] += r.n_forward.cpu()
        n_backward[live] += r.n_backward.cpu()
        flags += r.flags + [f"{label}:{attack.id}:{int(r.success.sum())}"]
        live = live[~r.success.cpu()]
    return AttackResult(x_adv=x_adv, success=success, norm=norm, n_forward=n_forward,
                        n_backward=n_backward, flags=sorted(set(flags)))


@dataclass(frozen=True)
class Cascade(Attack):
    """Registered attacks run as a cascade (run_cascade), in the order given."""

    attacks: tuple[str, ...] = ()
    minimum_norm: ClassVar[bool] = False

    def stages(self) -> list[Attack]:
        return [ATTACKS.get(a) for a in self.attacks]

    @property
    def kind(self) -> str:
        return "cascade"

    def describe(self) -> str:
        return f"{len(self.attacks)} attacks in turn, each on the samples left robust"

    @property
    def gradient_free(self) -> bool:
        return any(a.gradient_free for a in self.stages())

    def params(self) -> dict[str, Any]:
        return {"id": self.id, "norm": self.norm, "attacks": list(self.attacks),
                "stages": {a.id: a.params() for a in self.stages()}}

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        return run_cascade(self.stages(), model, x, y, eps=eps, sample_ids=sample_ids, seed=seed,
                           label="cascade")


def cascade_of(ids: Sequence[str]) -> Cascade:
    """One attack for `eval --cascade`: the registered cascade of a standard set, else
    the given attacks in CASCADE_ORDER (unknown to it: after, in the order given)."""
    if len(ids) == 1 and f"{ids[0]}-cascade" in ATTACKS:
        return ATTACKS.get(f"{ids[0]}-cascade")
    ids = list(dict.fromkeys(a for i in ids for a in STANDARD_ATTACKS.get(i, (i,))))
    attacks = [ATTACKS.get(a) for a in ids]
    minimum = [a.id for a in attacks if a.minimum_norm]
    if minimum:
        raise RobbenchError(f"--cascade takes attacks bounded by eps; {', '.join(minimum)} "
                            f"search a minimal norm: run them without --cascade")
    if len({a.norm for a in attacks}) > 1:
        raise RobbenchError("--cascade: the attacks belong to different threat models")
    ordered = cheapest_first(ids)
    return Cascade(id="cascade-" + "+".join(ordered), norm=attacks[0].norm, attacks=ordered)


register_attack(Cascade(id="standard-cascade", norm="Linf",
                        attacks=cheapest_first(STANDARD_ATTACKS["standard"])))
