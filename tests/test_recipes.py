import re

import pytest
import torch
from torch import nn

from model_zoo.recipes.magnet import batch_magnet_loss, neighbourhood, qtrades_adversary
from model_zoo.train import train_model
from robbench.zoo.lookup import MODELS, load_model

DIGITS_MODELS = [mid for mid, e in MODELS.items() if e.dataset == "digits"]


def test_neighbourhood_is_the_seed_and_its_nearest_clusters_of_other_classes():
    centres = torch.tensor([[0.0], [0.1], [1.0], [2.0], [3.0], [0.2]])  # 6 clusters on a line
    cluster_class = torch.tensor([0, 0, 1, 1, 2, 2])
    nonempty = torch.tensor([True, True, True, True, True, False])
    chosen = neighbourhood(0, centres, cluster_class, nonempty, size=3)
    assert chosen.tolist() == [0, 2, 3]  # 1 is the seed's class, 5 is empty


def test_neighbourhood_is_smaller_when_too_few_other_clusters_exist():
    centres = torch.arange(4.0)[:, None]
    chosen = neighbourhood(1, centres, torch.tensor([0, 0, 1, 1]), torch.ones(4, dtype=torch.bool), 12)
    assert chosen.tolist() == [1, 2, 3]


def test_batch_magnet_loss_of_single_sample_clusters_is_finite():
    """Each cluster one sample: the batch variance is 0, and the loss must not be NaN."""
    f = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    loss = batch_magnet_loss(f, torch.tensor([0, 1]), torch.tensor([0, 1]), alpha=1.0)
    assert torch.isfinite(loss).all()


def test_batch_magnet_loss_uses_batch_means_and_variance():
    f = torch.tensor([[0.0], [2.0], [10.0], [12.0]])
    cluster = torch.tensor([0, 0, 1, 1])
    loss = batch_magnet_loss(f, cluster, torch.tensor([0, 1]), alpha=1.0)
    # means 1 and 11; σ² = (1+1+1+1)/3; sample 0: pull 1/(2σ²), push −121/(2σ²)
    s2 = 4 / 3
    expected0 = max(0.0, 1 + 1 / (2 * s2) - 121 / (2 * s2))
    assert loss[0].item() == pytest.approx(expected0)
    assert (loss >= 0).all()


class Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.calls = nn.Linear(4, 3), 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x.flatten(1))


def test_qtrades_adversary_is_one_step_inside_the_eps_ball():
    model, x = Counting(), torch.rand(8, 1, 2, 2)
    p = torch.softmax(model(x), 1).detach()
    model.calls = 0
    x_adv = qtrades_adversary(model, x, p, eps=0.1, step=0.125)
    assert model.calls == 1
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


# A tiny budget each recipe learns within: the first 512 training images, 4 epochs, one
# warm-up epoch and 2 attack steps. MAT's class-margin loss sits near chance for its first
# epochs (train acc 0.08-0.18 through epoch 4), so MAT and its second-order ablation get 8.
TRAIN_SUBSET, EPOCHS, SLOW_STARTERS = 512, 4, {"mat-digits": 8, "mat-so-digits": 8}
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss (\S+)  train acc (\S+)  test acc (\S+)$")
WARM_LINE = re.compile(r"^warm start epoch (\d+)/(\d+)  CE (\S+)$")


def tiny_budget(model_id: str) -> dict:
    args = MODELS.get(model_id).recipe_args
    overrides = {k: v for k, v in (("warm_epochs", 2), ("attack_steps", 2)) if k in args}
    return dict(epochs=SLOW_STARTERS.get(model_id, EPOCHS), overrides=overrides,
                train_subset=TRAIN_SUBSET)


@pytest.mark.parametrize("model_id", DIGITS_MODELS)
def test_every_digits_recipe_lowers_its_loss_and_beats_chance_on_a_tiny_budget(model_id, tmp_path):
    lines: list[str] = []
    out = tmp_path / "m.safetensors"
    budget = tiny_budget(model_id)
    train_model(model_id, output=out, log=lines.append, **budget)
    epochs = [EPOCH_LINE.match(line).groups() for line in lines if line.startswith("epoch ")]
    assert [(int(e), int(n)) for e, n, *_ in epochs] == [(k, budget["epochs"]) for k in range(1, budget["epochs"] + 1)]
    losses = [float(e[2]) for e in epochs]
    assert losses[-1] < losses[0], losses  # here by 7% (ClusTR+QTRADES) to 80%
    warm = [float(m.group(3)) for m in map(WARM_LINE.match, lines) if m]
    assert len(warm) == budget["overrides"].get("warm_epochs", 0)
    assert warm == sorted(warm, reverse=True), warm  # the warm start's CE falls too
    # 3x chance (10 classes); here every recipe ends above 0.75
    assert float(epochs[-1][4]) > 0.3, epochs[-1]
    assert load_model(model_id, checkpoint=out).model.defense_id == MODELS.get(model_id).defense


def test_atc_groups_come_from_the_linearised_correlation_of_the_robust_model():
    from robbench.analysis.linearization import class_directions, class_groups, correlation_matrix

    robust = load_model("at-digits").model
    expected = class_groups(correlation_matrix(class_directions(robust, (1, 8, 8))))
    assert load_model("atc-digits").model.groups == expected
    assert 1 < len(expected) < 10
