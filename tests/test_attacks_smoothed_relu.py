"""The smoothed-ReLU attack (BPDA through a model's first ReLU)."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from robbench.attacks import ATTACKS
from robbench.attacks.pgd import PGD
from robbench.attacks.smoothed_relu import smoothed_first_relu
from robbench.config import STANDARD_ATTACKS


class ThresholdModel(nn.Module):
    """4x4 images; class 1 wins only once w·(x − 0.4) exceeds 1.5, with w = 1/4 on every
    pixel (‖w‖ = 1). Below that threshold the first ReLU is dead and its exact gradient
    zero. Within ε = 2 the crossing is wide: δ = 2w gives w·δ = 2, a margin of 5 in the
    logits, so no rounding decides the outcome."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.first = nn.Linear(16, 1)
        self.relu = nn.ReLU()
        with torch.no_grad():
            self.first.weight.fill_(0.25)
            self.first.bias.fill_(-0.25 * 16 * 0.4 - 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.relu(self.first(self.flatten(x)))
        return torch.cat([torch.zeros_like(u), 10 * u], dim=1)


def run(attack, model, x, y, eps=2.0):
    return attack.run(model, x, y, eps=eps, sample_ids=torch.arange(len(y)), seed=0)


def test_crosses_a_threshold_that_hides_the_gradient_from_exact_pgd():
    model, x, y = ThresholdModel(), torch.full((3, 1, 4, 4), 0.4), torch.zeros(3, dtype=torch.long)
    exact = run(PGD(id="t", norm="L2", steps=20, restarts=1, loss="margin"), model, x, y)
    smoothed = run(ATTACKS.get("smoothed-relu-l2"), model, x, y)
    assert not exact.success.any()  # zero gradient: PGD stays at its random start
    assert smoothed.success.all()
    assert (smoothed.norm <= 2.0 * (1 + 1e-5)).all()
    assert (model(smoothed.x_adv).argmax(1) == 1).all()


def test_leaves_the_forward_pass_and_the_model_unchanged():
    model, x = ThresholdModel(), torch.rand(5, 1, 4, 4)
    before = model(x)
    with smoothed_first_relu(model, beta=2.0):
        inside = model(x)
    assert torch.equal(before, inside)
    assert "forward" not in vars(model.relu)


def test_restores_the_model_after_an_error_inside_the_block():
    model = ThresholdModel()
    with pytest.raises(RuntimeError), smoothed_first_relu(model, beta=2.0):
        raise RuntimeError("inside")
    assert "forward" not in vars(model.relu)


def test_later_betas_run_only_on_samples_the_earlier_ones_left():
    model = ThresholdModel()
    x, y = torch.full((2, 1, 4, 4), 0.4), torch.zeros(2, dtype=torch.long)
    attack = ATTACKS.get("smoothed-relu-l2")
    first_only = run(replace(attack, betas=attack.betas[:1]), model, x, y)
    assert first_only.success.all()
    every = run(attack, model, x, y)
    assert torch.equal(every.n_forward, first_only.n_forward)
    assert torch.equal(every.n_backward, first_only.n_backward)


def test_is_a_member_of_the_standard_l2_set():
    assert "smoothed-relu-l2" in STANDARD_ATTACKS["standard-l2"]


def test_restarts_from_k_start_where_smoothed_relu_l2_s_restarts_of_those_numbers_start():
    later = ATTACKS.get("fast-smoothed-relu-restarts-l2")
    full = ATTACKS.get("smoothed-relu-l2")
    x, ids = torch.rand(3, 1, 4, 4), torch.arange(3)
    for k in range(later.restarts):
        assert torch.equal(later.starts(x, 2.0, ids, k, seed=0),
                           full.starts(x, 2.0, ids, later.first_restart + k, seed=0))
    assert later.first_restart + later.restarts <= full.restarts  # none beyond the standard's
