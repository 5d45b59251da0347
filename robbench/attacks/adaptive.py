"""Adaptive attacks (METHODS §2): PGD on each defense's own objective, and the
`adaptive` suite that runs whatever a defense declares in `adaptive_attacks`.

A defense whose logits saturate (MMC) or whose training loss differs from CE can
look robust to PGD-CE alone; attacking its own loss removes that false robustness.
Success is still decided by the wrapper's logits, so every attack reports the same
thing: misclassification of the returned point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from robbench.attacks.base import ATTACKS, Attack, AttackResult, register_attack
from robbench.attacks.cascade import run_cascade
from robbench.attacks.losses import LOSSES
from robbench.attacks.pgd import PGD
from robbench.defenses import DefenseModel
from robbench.defenses.softmax import TradesModel
from robbench.errors import RobbenchError

# (model, f(x_adv), z(x_adv), clean x, y) -> per-sample loss to maximise
ObjectiveFn = Callable[[DefenseModel, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                       torch.Tensor]


@dataclass(frozen=True)
class Objective:
    fn: ObjectiveFn
    needs: tuple[str, ...] = ()  # model attributes `fn` uses (checked before attacking)
    kind: str = "any"  # the defenses it is meant for, for the error message
    # fn forwards a second input per call (the clean x, or x_adv again): counted as a pass
    clean_forward: Callable[[DefenseModel], bool] = lambda model: False


@torch.no_grad()
def clean_features(model: DefenseModel, x: torch.Tensor) -> torch.Tensor:
    return model.features(x)


def _own(values: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return values.gather(1, y[:, None]).squeeze(1)


def nearest_other_centre(model: DefenseModel, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """t = argmin_{c≠y} ||f − μ_c||² (MMC's targeted adaptive attack)."""
    d2 = model.squared_distances(f)
    return d2.scatter(1, y[:, None], float("inf")).argmin(dim=1)


def _logit_objective(name: str) -> Objective:
    return Objective(lambda model, f, z, x, y: LOSSES[name](z, y))


OBJECTIVES: dict[str, Objective] = {
    "ce": _logit_objective("ce"),
    "dlr": _logit_objective("dlr"),
    "margin": _logit_objective("margin"),
    "magnet": Objective(lambda model, f, z, x, y: model.magnet_loss(f, y),
                        ("magnet_loss",), "magnet/ClusTR"),
    "mmc": Objective(lambda model, f, z, x, y: _own(model.squared_distances(f), y),
                     ("squared_distances",), "MMC"),
    "mmc-targeted": Objective(
        lambda model, f, z, x, y: -_own(model.squared_distances(f),
                                        nearest_other_centre(model, clean_features(model, x), y)),
        ("squared_distances",), "MMC", lambda model: True),
    # f_ref is only read when β ≠ 0: skip the clean forward otherwise
    "mat": Objective(
        lambda model, f, z, x, y: model.mat_loss(
            f, y, f_ref=clean_features(model, x) if model.beta else None),
        ("mat_loss", "beta"), "MAT", lambda model: bool(model.beta)),
    "prototype": Objective(lambda model, f, z, x, y: _own(model.distances(f), y),
                           ("distances",), "DRP (prototype)"),
    # any model with features: push f(x') away from the clean f(x) (third-party models)
    "feature": Objective(
        lambda model, f, z, x, y: (f - clean_features(model, x)).flatten(1).pow(2).sum(1),
        clean_forward=lambda model: True),
    # the defense's own training loss on x' (OwnLossPGD calls it; robbench.evaluation.external)
    "own-loss": Objective(lambda model, f, z, x, y: z.new_zeros(len(y)), ("loss",),
                          "a model with a training loss", lambda model: True),
    # only logits are needed, so it applies to any model
    "trades-kl": Objective(
        lambda model, f, z, x, y: TradesModel.trades_kl(
            model.logits_from_features(clean_features(model, x)), z),
        clean_forward=lambda model: True),
}


@dataclass(frozen=True)
class AdaptivePGD(PGD):
    """PGD maximising OBJECTIVES[loss] of f(x_adv); success by the wrapper's logits."""

    steps: int = 100

    @property
    def kind(self) -> str:
        return "adaptive"

    def describe(self) -> str:
        return f"PGD on the {self.loss} objective, {self.steps} steps x {self.restarts} restarts"

    def __post_init__(self) -> None:
        if self.loss not in OBJECTIVES:
            raise ValueError(f"unknown adaptive objective {self.loss!r}")

    @property
    def rng_stream(self) -> str:
        """Own random starts, shared by every adaptive attack (and across step counts):
        adaptive-ce does not merely repeat pgd100's restarts."""
        return f"adaptive-{self.norm}"

    def check(self, model: DefenseModel) -> None:
        spec = OBJECTIVES[self.loss]
        missing = [a for a in ("features", "logits_from_features", *spec.needs)
                   if not hasattr(model, a)]
        if missing:
            raise RobbenchError(
                f"attack {self.id!r} needs a {spec.kind} defense, but "
                f"{getattr(model, 'defense_id', type(model).__name__)!r} has no "
                f"{', '.join(missing)}")

    def objective(self, model: DefenseModel, x_adv: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = model.features(x_adv)
        logits = model.logits_from_features(f)  # == model(x_adv): decides success
        return OBJECTIVES[self.loss].fn(model, f, logits, x, y), logits

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        self.check(model)
        result = super().run(model, x, y, eps=eps, sample_ids=sample_ids, seed=seed)
        if OBJECTIVES[self.loss].clean_forward(model):
            # every objective call also forwarded the clean input (PGD counted one pass)
            result.n_forward += result.n_forward - int(self.random_init)
        return result


@dataclass(frozen=True)
class OwnLossPGD(AdaptivePGD):
    """PGD maximising `model.loss(x', y)`, the defense's own per-sample training loss
    on the whole input (a third-party model's `training_loss`); success by the logits,
    from a second forward pass that is counted."""

    loss: str = "own-loss"

    def describe(self) -> str:
        return f"PGD on the model's own loss, {self.steps} steps x {self.restarts} restarts"

    def objective(self, model: DefenseModel, x_adv: torch.Tensor, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model.loss(x_adv, y), model(x_adv)


ADAPTIVE_PGD: tuple[AdaptivePGD, ...] = tuple(
    register_attack(AdaptivePGD(id=f"adaptive-{name}", norm="Linf", loss=loss))
    for name, loss in [("ce", "ce"), ("dlr", "dlr"), ("margin", "margin"), ("magnet", "magnet"),
                       ("mmc", "mmc"), ("mmc-targeted", "mmc-targeted"), ("mat", "mat"),
                       ("prototype", "prototype"), ("trades", "trades-kl")])
# For third-party models (robbench.evaluation.external). Kept out of ADAPTIVE_PGD, whose parameters
# are part of `adaptive`'s recorded parameters: adding them there would invalidate every
# `adaptive` row on record.
EXTERNAL_ADAPTIVE_PGD: tuple[AdaptivePGD, ...] = (
    register_attack(AdaptivePGD(id="adaptive-feature", norm="Linf", loss="feature")),
    register_attack(OwnLossPGD(id="adaptive-own-loss", norm="Linf")),
)


@dataclass(frozen=True)
class AdaptiveSuite(Attack):
    """Runs the model's `adaptive_attacks` in order on the samples not yet fooled.
    `steps`/`restarts`, when set, override every sub-attack's (quick runs, tests)."""

    steps: int | None = None
    restarts: int | None = None

    @property
    def kind(self) -> str:
        return "adaptive"

    def describe(self) -> str:
        return "the defense's own adaptive attacks, in turn"

    def sub_attacks(self, model: DefenseModel) -> list[Attack]:
        ids = getattr(model, "adaptive_attacks", ())  # a third-party model's are per instance
        if not ids:
            raise RobbenchError(f"defense {getattr(model, 'defense_id', type(model).__name__)!r} "
                                "declares no adaptive attacks")
        attacks = []
        for attack_id in ids:
            attack = ATTACKS.get(attack_id)
            if attack.norm != self.norm:
                raise RobbenchError(f"adaptive sub-attack {attack_id!r} is {attack.norm}, "
                                    f"the suite {self.norm}")
            overrides = {k: v for k, v in (("steps", self.steps), ("restarts", self.restarts))
                         if v is not None}
            attacks.append(replace(attack, **overrides) if overrides else attack)
        return attacks

    def params(self) -> dict[str, Any]:
        """Static, so cached results stay valid (evaluate asks before running, and one
        registered instance serves every model): own fields plus the parameters of
        every sub-attack it may resolve to. The resolved ids go into the flags."""
        return {**asdict(self), "resolves_to": "type(model).adaptive_attacks",
                "sub_attacks": {a.id: a.params() for a in ADAPTIVE_PGD}}

    def params_for(self, model: DefenseModel) -> dict[str, Any]:
        return {**asdict(self), "sub_attacks": {a.id: a.params() for a in self.sub_attacks(model)}}

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        attacks = self.sub_attacks(model)
        for attack in attacks:  # fail before spending compute
            if isinstance(attack, AdaptivePGD):
                attack.check(model)
        result = run_cascade(attacks, model, x, y, eps=eps, sample_ids=sample_ids, seed=seed,
                             label="adaptive")
        result.flags = sorted(set(result.flags) | set(getattr(model, "adaptive_flags", ())))
        return result


register_attack(AdaptiveSuite(id="adaptive", norm="Linf"))
