import foolbox as fb
import pytest
import torch
from torch import nn

from robbench.attacks import ATTACKS
from robbench.attacks.base import sample_generator
from robbench.attacks.pgd import PGD, first_occurrences, random_start


class BandModel(nn.Module):
    """One-pixel input; class 1 wins only in a narrow band around 0.6, so sign-gradient
    steps of 0.08 from 0.5 visit 0.58 (fooled) and then overshoot to 0.66 (not fooled)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)[:, 0]
        margin = 1 - 400 * (v - 0.6) ** 2
        return torch.stack([torch.zeros_like(v), margin], dim=1)


def run(attack, model, x, y, eps, seed=0):
    return attack.run(model, x, y, eps=eps, sample_ids=torch.arange(len(y)), seed=seed)


class RowByRow(nn.Module):
    """The model called on one sample at a time: its arithmetic on a sample is the same
    whatever batch it arrives in (a batched conv or matmul may round differently by batch
    size, which on some CPUs decides a sample at the boundary). Comparisons across batch
    sizes then test the attack's own batching, exactly."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(row.unsqueeze(0)) for row in x])


def test_keeps_an_adversarial_found_at_an_intermediate_iterate():
    attack = PGD(id="t", norm="Linf", steps=2, restarts=1, random_init=False)
    x, y = torch.full((1, 1, 1, 1), 0.5), torch.tensor([0])
    result = run(attack, BandModel(), x, y, eps=0.32)
    assert result.success.item()
    assert result.x_adv.item() == pytest.approx(0.58)
    assert BandModel()(result.x_adv).argmax(1).item() == 1


def test_stops_spending_passes_on_a_sample_once_it_is_fooled():
    attack = PGD(id="t", norm="Linf", steps=5, restarts=3, random_init=False)
    y = torch.tensor([0])
    found = run(attack, BandModel(), torch.full((1, 1, 1, 1), 0.5), y, eps=0.32)
    never = run(attack, BandModel(), torch.zeros(1, 1, 1, 1), y, eps=0.32)
    assert found.success.item() and not never.success.item()
    assert (found.n_forward.item(), found.n_backward.item()) == (2, 1)  # iterates 0 and 1
    assert (never.n_forward.item(), never.n_backward.item()) == (3 * 6, 3 * 5)


def test_counts_a_backward_pass_shared_with_a_batch_that_is_still_attacked():
    attack = PGD(id="t", norm="Linf", steps=5, restarts=3, random_init=False)
    x = torch.tensor([0.5, 0.0]).view(2, 1, 1, 1)
    result = run(attack, BandModel(), x, torch.tensor([0, 0]), eps=0.32)
    assert result.n_forward.tolist() == [2, 3 * 6]
    assert result.n_backward.tolist() == [2, 3 * 5]


@pytest.mark.parametrize("attack_id", ["fgsm", "pgd20", "pgd20-l2"])
def test_adversarials_lie_in_the_unit_box_and_the_eps_ball(attack_id, nominal_digits, digits_test):
    attack = ATTACKS.get(attack_id)
    eps = 0.2 if attack.norm == "Linf" else 1.0
    x, y = digits_test.x[:48], digits_test.y[:48]
    result = run(attack, nominal_digits, x, y, eps)
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    delta = (result.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if attack.norm == "Linf" else delta.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all()
    assert torch.allclose(size, result.norm)


@pytest.mark.parametrize("attack_id", ["fgsm", "pgd20", "pgd20-l2"])
def test_reported_success_is_exactly_misclassification_of_the_returned_point(
        attack_id, nominal_digits, digits_test):
    attack = ATTACKS.get(attack_id)
    x, y = digits_test.x[:48], digits_test.y[:48]
    result = run(attack, nominal_digits, x, y, 0.1 if attack.norm == "Linf" else 0.5)
    with torch.no_grad():
        fooled = nominal_digits(result.x_adv).argmax(1) != y
    assert torch.equal(result.success, fooled)
    assert 0 < result.success.sum() < len(y)  # a budget where the outcome is informative


def test_more_steps_find_every_example_fewer_steps_find(nominal_digits, digits_test):
    x, y = digits_test.x[:64], digits_test.y[:64]
    short = run(PGD(id="a", norm="Linf", steps=10, restarts=2), nominal_digits, x, y, 0.08)
    long = run(PGD(id="b", norm="Linf", steps=30, restarts=2), nominal_digits, x, y, 0.08)
    assert 0 < short.success.sum() < len(y)  # a budget where the outcome is informative
    assert (long.success | ~short.success).all()  # a superset, sample by sample


def test_random_starts_depend_on_the_sample_not_on_the_batch():
    x = torch.rand(5, 1, 8, 8)
    batch = random_start(x, 0.2, "Linf", [sample_generator(0, "s", i, 0) for i in range(5)])
    alone = random_start(x[3:4], 0.2, "Linf", [sample_generator(0, "s", 3, 0)])
    assert torch.equal(batch[3:4], alone)
    assert not torch.equal(batch[2], batch[3] - x[3] + x[2])


def test_l2_random_start_stays_inside_the_ball():
    x = torch.full((200, 1, 8, 8), 0.5)
    start = random_start(x, 1.0, "L2", [sample_generator(1, "s", i, 0) for i in range(200)])
    norms = (start - x).flatten(1).norm(dim=1)
    assert (norms <= 1.0 + 1e-6).all() and norms.min() < 0.99  # mass concentrates near the sphere in 64-d


def foolbox_pgd_success(model, x, y, eps, steps, random_start):
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    attack = fb.attacks.LinfPGD(abs_stepsize=eps / 4, steps=steps, random_start=random_start)
    torch.manual_seed(0)
    _, _, success = attack(fmodel, x, y, epsilons=eps)
    return success


def test_pgd20_finds_at_least_as_many_adversarials_as_foolbox_linf_pgd(nominal_digits, digits_test):
    x, y = digits_test.x[:200], digits_test.y[:200]
    ours = run(ATTACKS.get("pgd20"), nominal_digits, x, y, 0.1).success
    theirs = foolbox_pgd_success(nominal_digits, x, y, 0.1, steps=20, random_start=True)
    assert 0 < theirs.sum() < len(y)
    assert ours.sum() >= theirs.sum()


def test_single_pgd_run_finds_every_example_foolbox_finds_from_the_same_start(
        nominal_digits, digits_test):
    # Both libraries take the same steps from the same point, but in their own arithmetic
    # (foolbox through eagerpy), so a sign flip on a near-zero gradient component can part
    # the trajectories on another CPU: one sample of the 200 may differ; a weaker attack
    # (e.g. one that checked only the last iterate) misses several.
    x, y = digits_test.x[:200], digits_test.y[:200]
    ours = run(PGD(id="t", norm="Linf", steps=20, restarts=1, random_init=False),
               nominal_digits, x, y, 0.1).success
    theirs = foolbox_pgd_success(nominal_digits, x, y, 0.1, steps=20, random_start=False)
    assert 0 < theirs.sum() < len(y)
    assert (theirs & ~ours).sum() <= 1


def forward_batch_sizes(model, fn):
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    try:
        result = fn()
    finally:
        handle.remove()
    return result, sizes


def test_restarts_side_by_side_fool_the_same_samples_as_restarts_one_after_another(
        nominal_digits, digits_test):
    attack = PGD(id="t", norm="Linf", steps=5, restarts=4)
    x, y, ids = digits_test.x[:64], digits_test.y[:64], torch.arange(64)
    model = RowByRow(nominal_digits)  # the same arithmetic per sample in any batch: exact
    batch, sizes = forward_batch_sizes(model, lambda: attack.run(
        model, x, y, eps=0.2, sample_ids=ids, seed=0))
    # alone, a sample's restarts can only run one after another
    alone = torch.cat([attack.run(model, x[i:i + 1], y[i:i + 1], eps=0.2,
                                  sample_ids=ids[i:i + 1], seed=0).success for i in range(64)])
    first_only = PGD(id="t", norm="Linf", steps=5, restarts=1).run(
        model, x, y, eps=0.2, sample_ids=ids, seed=0).success
    assert (alone & ~first_only).any()  # some samples fall only to a later restart
    assert torch.equal(batch.success, alone)
    assert max(sizes[7:]) > (~first_only).sum()  # later restarts did run side by side


def test_restarts_side_by_side_never_exceed_the_batch_the_attack_was_given(
        nominal_digits, digits_test):
    x, y = digits_test.x[:64], digits_test.y[:64]
    _, sizes = forward_batch_sizes(nominal_digits, lambda: run(
        PGD(id="t", norm="Linf", steps=10, restarts=10), nominal_digits, x, y, 0.08))
    assert max(sizes) <= 64


def test_first_occurrences_picks_the_earliest_row_of_each_sample():
    ids = torch.tensor([7, 3, 7, 3, 9])
    assert sorted(first_occurrences(ids).tolist()) == [0, 1, 4]


def test_from_foolbox_own_starts_pgd_fools_every_sample_foolbox_fools(nominal_digits, digits_test):
    """The speed benchmark's same-start consistency check: robbench checks every iterate,
    foolbox the last, from the same replayed start. A short PGD at a small ε, where what is
    found depends on the start (from robbench's own starts, seeds 4 and 7 each miss a
    sample that foolbox fools). The two libraries' arithmetic differs (eagerpy, and the
    replay's batch), so rounding may part one trajectory: peer_only <= 1 over the four
    seeds; a replay from other starts leaves 2 (seeds 4 and 7)."""
    from benchmarks.attacks import paired_found, restarts_loop

    model, pgd, eps = nominal_digits.eval(), PGD(id="t", norm="Linf", steps=3, restarts=2), 0.03
    x, y = digits_test.x[:100], digits_test.y[:100]
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device="cpu")
    attack = fb.attacks.LinfPGD(abs_stepsize=pgd.step_fraction * eps, steps=pgd.steps, random_start=True)
    peer_only = 0
    for seed in range(4, 8):
        lives: list[torch.Tensor] = []
        torch.manual_seed(seed)
        fooled = restarts_loop(lambda a, b: attack(fmodel, a, b, epsilons=eps)[1], model, x, y,
                               pgd.restarts, lives)
        counts = paired_found(pgd, "foolbox", model, x, y, eps, seed, lives, fooled)
        assert counts["peer"] > 0 and counts["robbench"] >= counts["peer"] - counts["peer_only"]
        peer_only += counts["peer_only"]
    assert peer_only <= 1
