"""Every recipe's adversary attacks at the ε of the warm-up schedule, epoch by epoch.

`TrainContext.eps` ramps over `eps_warmup_epochs`, so a recipe must read it where it
attacks, in every batch; one that reads it once before the loop trains all epochs at
the first epoch's ε (train_mat did: mat-bibo-mnist-t10k's BIBO ran at 0.075, not 0.3).
Each case trains a fresh digits network on 64 images for 4 epochs, records the ε its
inner maximisation was called with, and tells the epochs apart by the recipe's own
"epoch k/N" log lines (not by ctx.epoch, which the schedule itself reads).
"""

from __future__ import annotations

import pytest
import torch

import model_zoo.recipes.adversarial as adversarial
import model_zoo.recipes.magnet as magnet
from model_zoo.recipes import RECIPES, TrainContext
from robbench.zoo.lookup import MODELS, build_model
from robbench.config import THREAT_DEFAULTS
from robbench.datasets import Split, load_split
from robbench.defenses.softmax import TradesModel

EPOCHS, WARMUP = 4, 3
TARGET_EPS = THREAT_DEFAULTS["digits"].linf_eps

# One digits model per (recipe, adversary); the recipe args shrink it to a second or two.
ADVERSARIAL = {
    "at-digits": {"attack_steps": 1},                      # adversarial: pgd_ce -> maximize_linf
    "atc-digits": {"attack_steps": 1},                     # adversarial with AT+C's regulariser
    "trades-digits": {"attack_steps": 1},                  # trades: TradesModel.trades_adversary
    "mat-bibo-digits": {"attack_steps": 1},                # mat: BIBO's maximize_linf
    "mat-digits": {"attack_steps": 1},
    "clustr-qtrades-digits": {"warm_epochs": 1},           # magnet: qtrades_adversary
}
# Recipes (and recipe variants) that have no adversary at all.
NO_ADVERSARY = ["nominal-digits", "mat-ftc-digits", "mat-so-digits", "clustr-digits", "magnet-digits"]


@pytest.fixture(scope="module")
def tiny_digits():
    train, test = load_split("digits", "train"), load_split("digits", "test")
    return Split(train.x[:64], train.y[:64]), Split(test.x[:32], test.y[:32])


def scheduled_eps(epoch: int) -> float:
    return TARGET_EPS * min(1.0, (epoch + 1) / WARMUP)


def record_adversary_eps(model_id: str, tiny_digits, monkeypatch) -> dict[int, list[float]]:
    """Trains `model_id` with its own recipe for EPOCHS epochs (warm-up WARMUP) and
    returns, per epoch, the ε of every call of its inner maximisation."""
    entry = MODELS.get(model_id)
    train, test = tiny_digits
    args = {**entry.recipe_args, "epochs": EPOCHS, "eps_warmup_epochs": WARMUP, "batch_size": 32,
            **ADVERSARIAL.get(model_id, {})}
    model = build_model(entry)
    model.body.normalize.fit(train.x)
    if model.defense_id == "atc":
        model.groups = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # instead of deriving them from at-digits
    seen: dict[int, list[float]] = {}
    epoch = [0]  # advanced by the recipe's "epoch k/N" log line

    def log(line: str) -> None:
        if line.startswith("epoch "):
            epoch[0] += 1

    def record(eps: float) -> None:
        seen.setdefault(epoch[0], []).append(float(eps))

    maximize_linf, trades_adversary, qtrades_adversary = (
        adversarial.maximize_linf, TradesModel.trades_adversary, magnet.qtrades_adversary)

    def recording_maximize_linf(loss_fn, x, eps, steps, step_size, start=None):
        record(eps)
        return maximize_linf(loss_fn, x, eps, steps, step_size, start)

    def recording_trades_adversary(self, x, *a, **kw):
        record(self.eps)
        return trades_adversary(self, x, *a, **kw)

    def recording_qtrades_adversary(model, x, p_clean, eps, step):
        record(eps)
        return qtrades_adversary(model, x, p_clean, eps, step)

    monkeypatch.setattr(adversarial, "maximize_linf", recording_maximize_linf)
    monkeypatch.setattr(TradesModel, "trades_adversary", recording_trades_adversary)
    monkeypatch.setattr(magnet, "qtrades_adversary", recording_qtrades_adversary)
    ctx = TrainContext(model=model, train=train, test=test, args=args,
                       generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                       log=log, dataset="digits")
    RECIPES.get(entry.recipe)(ctx)
    assert epoch[0] == EPOCHS
    return seen


@pytest.mark.parametrize("model_id", sorted(ADVERSARIAL))
def test_adversary_attacks_at_the_warmed_up_eps_of_every_epoch(model_id, tiny_digits, monkeypatch, one_thread):
    seen = record_adversary_eps(model_id, tiny_digits, monkeypatch)
    assert sorted(seen) == list(range(EPOCHS)), f"adversary ran in epochs {sorted(seen)} only"
    for epoch in range(EPOCHS):
        assert seen[epoch] == pytest.approx([scheduled_eps(epoch)] * len(seen[epoch])), \
            f"epoch {epoch}: ε {sorted(set(seen[epoch]))}, schedule says {scheduled_eps(epoch)}"


@pytest.mark.parametrize("model_id", NO_ADVERSARY)
def test_recipe_without_an_adversary_never_runs_one(model_id, tiny_digits, monkeypatch, one_thread):
    assert record_adversary_eps(model_id, tiny_digits, monkeypatch) == {}


def test_every_recipe_is_covered_by_the_eps_schedule_tests():
    covered = {MODELS.get(mid).recipe for mid in [*ADVERSARIAL, *NO_ADVERSARY]}
    assert covered == set(RECIPES), "a new recipe needs a case in ADVERSARIAL or NO_ADVERSARY"


def test_trades_checkpoint_keeps_the_full_eps_when_training_ends_mid_warm_up(tiny_digits, one_thread):
    entry = MODELS.get("trades-digits")
    train, test = tiny_digits
    model = build_model(entry)
    model.body.normalize.fit(train.x)
    args = {**entry.recipe_args, "epochs": 1, "eps_warmup_epochs": WARMUP, "batch_size": 32,
            "attack_steps": 1}
    ctx = TrainContext(model=model, train=train, test=test, args=args,
                       generator=torch.Generator().manual_seed(0), device=torch.device("cpu"),
                       log=lambda line: None, dataset="digits")
    RECIPES.get(entry.recipe)(ctx)
    assert model.eps == pytest.approx(TARGET_EPS)
    assert model.defense_params()["eps"] == pytest.approx(TARGET_EPS)
