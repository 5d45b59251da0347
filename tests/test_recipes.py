import pytest
import torch
from torch import nn

from model_zoo.recipes.magnet import batch_magnet_loss, neighbourhood, qtrades_adversary
from model_zoo.train import train_model
from model_zoo.zoo import MODELS, load_model

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


@pytest.mark.parametrize("model_id", DIGITS_MODELS)
def test_every_digits_recipe_trains_and_logs_loss_and_accuracy_each_epoch(model_id, tmp_path):
    lines: list[str] = []
    out = tmp_path / "m.safetensors"
    train_model(model_id, output=out, epochs=1, log=lines.append)
    epoch_lines = [line for line in lines if line.startswith("epoch 1/1")]
    assert epoch_lines and "loss" in epoch_lines[0] and "test acc" in epoch_lines[0]
    assert load_model(model_id, checkpoint=out).model.defense_id == MODELS.get(model_id).defense


def test_atc_groups_come_from_the_linearised_correlation_of_the_robust_model():
    from robbench.analysis.linearize import class_directions, class_groups, correlation_matrix

    robust = load_model("at-digits").model
    expected = class_groups(correlation_matrix(class_directions(robust, (1, 8, 8))))
    assert load_model("atc-digits").model.groups == expected
    assert 1 < len(expected) < 10
