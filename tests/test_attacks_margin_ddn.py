"""DDN on a chosen loss: foolbox's DDNAttack where the loss is foolbox's (cross-entropy),
and a margin version that still moves where the cross-entropy's gradient is zero."""

from __future__ import annotations

import foolbox as fb
import torch

from robbench.attacks.losses import cross_entropy
from robbench.attacks.margin_ddn import ddn


def test_on_cross_entropy_it_returns_foolbox_ddns_points(one_thread, nominal_digits, digits_test):
    x, y = digits_test.x[:16], digits_test.y[:16]
    ours = ddn(nominal_digits, x, y, steps=30, init_epsilon=0.5, gamma=0.05, loss=cross_entropy)
    fmodel = fb.PyTorchModel(nominal_digits, bounds=(0, 1), device="cpu")
    theirs = fb.attacks.DDNAttack(init_epsilon=0.5, steps=30, gamma=0.05)(fmodel, x, y, epsilons=None)[0]
    assert (ours != x).flatten(1).any(dim=1).all()
    # the same algorithm in two libraries' arithmetic: DDN's grow-or-shrink decision on a
    # point at the boundary can go either way by rounding on another CPU and part one
    # row's trajectory; a different rule (step, projection, γ) parts them all
    same = torch.isclose(ours, theirs, atol=1e-5).flatten(1).all(dim=1)
    assert (~same).sum() <= 1


def test_on_the_margin_it_breaks_samples_whose_cross_entropy_gradient_is_zero(one_thread, nominal_digits,
                                                                              digits_test):
    x, y = digits_test.x[:16], digits_test.y[:16]

    def saturated(inputs: torch.Tensor) -> torch.Tensor:
        return nominal_digits(inputs) * 2.0 ** 20

    with torch.no_grad():
        clean_right = saturated(x).argmax(dim=1) == y
    point = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(cross_entropy(saturated(point), y).sum(), point)
    assert clean_right.sum() >= 12 and not grad[clean_right].any()  # the cross-entropy gives no direction
    found = ddn(saturated, x, y, steps=30, init_epsilon=0.5)
    with torch.no_grad():
        fooled = saturated(found).argmax(dim=1) != y
    assert fooled[clean_right].all()
    assert ((found - x).flatten(1).norm(dim=1)[clean_right] < 3.0).all()


def test_from_an_adversarial_start_it_returns_an_adversarial_no_farther_than_the_start(
        one_thread, nominal_digits, digits_test):
    """init_epsilon None: DDN starts at the start's own distance and only shrinks it (ddn-warm)."""
    x, y = digits_test.x[:16], digits_test.y[:16]
    start = ddn(nominal_digits, x, y, steps=10, init_epsilon=2.0)
    with torch.no_grad():
        was_adversarial = nominal_digits(start).argmax(dim=1) != y
    assert was_adversarial.sum() >= 12
    found = ddn(nominal_digits, x, y, steps=30, init_epsilon=None, loss=cross_entropy, start=start)
    start_size = (start - x).flatten(1).norm(dim=1)
    found_size = (found - x).flatten(1).norm(dim=1)
    with torch.no_grad():
        fooled = nominal_digits(found).argmax(dim=1) != y
    assert fooled[was_adversarial].all()
    assert (found_size[was_adversarial] <= start_size[was_adversarial] + 1e-6).all()
    assert (found_size[was_adversarial] < 0.9 * start_size[was_adversarial]).any()


def test_where_the_gradient_is_zero_each_row_walks_from_its_own_generator(one_thread, nominal_digits,
                                                                          digits_test):
    """The random directions foolbox's DDN takes on a zero gradient, but per row: a row's
    result does not depend on the rows beside it; without generators it takes no step."""
    x, y = digits_test.x[:8], digits_test.y[:8]

    def saturated(inputs: torch.Tensor) -> torch.Tensor:
        # row by row: the model's arithmetic on a row is the same in a batch of 8 as
        # alone (a batched conv may round differently), so any difference is DDN's own
        return torch.cat([nominal_digits(row.unsqueeze(0)) for row in inputs]) * 2.0 ** 20

    def generators(rows: range) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(1000 + r) for r in rows]

    together = ddn(saturated, x, y, steps=50, init_epsilon=2.0, loss=cross_entropy,
                   generators=generators(range(8)))
    alone = torch.cat([ddn(saturated, x[r:r + 1], y[r:r + 1], steps=50, init_epsilon=2.0,
                           loss=cross_entropy, generators=generators(range(r, r + 1)))
                       for r in range(8)])
    still = ddn(saturated, x, y, steps=50, init_epsilon=2.0, loss=cross_entropy)
    assert torch.allclose(together, alone, atol=1e-6)
    assert (together != x).flatten(1).any(dim=1).sum() >= 4  # the walk found adversarials
    assert torch.equal(still, x)  # no direction, no step: nothing found


def test_walked_marks_exactly_the_rows_that_met_a_zero_gradient(one_thread, nominal_digits, digits_test):
    x, y = digits_test.x[:8], digits_test.y[:8]

    def saturated(inputs: torch.Tensor) -> torch.Tensor:
        return nominal_digits(inputs) * 2.0 ** 20

    with torch.no_grad():
        clean_right = saturated(x).argmax(dim=1) == y
    walked_plain, walked_saturated = torch.zeros(8, dtype=torch.bool), torch.zeros(8, dtype=torch.bool)
    ddn(nominal_digits, x, y, steps=5, init_epsilon=1.0, loss=cross_entropy, walked=walked_plain)
    ddn(saturated, x, y, steps=5, init_epsilon=1.0, loss=cross_entropy, walked=walked_saturated)
    assert clean_right.sum() >= 6
    assert not walked_plain.any() and torch.equal(walked_saturated, clean_right)
