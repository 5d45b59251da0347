"""l2-suite: never a false success, successes within ε, later stages only on survivors,
at least C&W's breaks within ε on small digits models, and batching does not matter."""

from __future__ import annotations

import dataclasses

import foolbox as fb
import pytest
import torch

from robbench.zoo.lookup import load_model
from robbench.attacks import ATTACKS
from robbench.attacks.base import run_in_batches
from robbench.attacks.l2_suite import L2Suite, next_constants, search_stages
from robbench.attacks.losses import margin
from robbench.attacks.minimum_norm import PassCounter
from robbench.evaluation.diagnostics import success_mismatch
from pyautoattack.fab_pt import FABAttack_PT

EPS = 1.0  # digits' protocol L2 ε
TINY = dict(apgd_steps=10, apgd_targets=1, targeted_steps=10, ddn_steps=10, long_steps=20, fmn_steps=10,
            cw_binary_search_steps=2, cw_steps=10, warm_targets=2, cw_search_steps=10, ddn_inits=(1.0, 0.5),
            fab_steps=10, fab_targets=2)
ALL_STAGES = ("apgd-ce", "apgd-margin", "ddn", "ddn-margin", "apgd-warm", "apgd-dlr", "apgd-t", "fab-t",
              "ddn-long", "apgd-t-warm", "cw-search", "ddn-restarts", "apgd-restarts", "ddn-warm", "fmn",
              "cw")


def suite(**kw) -> L2Suite:
    return dataclasses.replace(ATTACKS.get("l2-suite"), **{**TINY, **kw})


def run(attack, model, x, y, eps=EPS):
    return attack.run_detailed(model, x, y, eps=eps, sample_ids=torch.arange(len(y)), seed=0)


@pytest.fixture(scope="module")
def batch(digits_test):
    """24 test digits, the last relabelled so that it is misclassified on the clean input."""
    x, y = digits_test.x[:24].clone(), digits_test.y[:24].clone()
    y[-1] = (y[-1] + 1) % 10
    return x, y


@pytest.fixture(scope="module")
def at_digits():
    return load_model("at-digits").model.eval()


def test_registered_as_an_l2_attack_with_valid_stages():
    attack = ATTACKS.get("l2-suite")
    assert isinstance(attack, L2Suite) and attack.norm == "L2"
    with pytest.raises(ValueError):
        dataclasses.replace(attack, stages=("apgd-ce", "bogus"))
    with pytest.raises(ValueError):
        dataclasses.replace(attack, stages=("ddn", "ddn"))


@pytest.mark.parametrize("eps", [0.3, EPS])
def test_success_only_on_misclassified_points_within_eps(one_thread, nominal_digits, batch, eps):
    x, y = batch
    result, detail = run(suite(stages=ALL_STAGES), nominal_digits, x, y, eps)
    with torch.no_grad():
        wrong = nominal_digits(result.x_adv).argmax(dim=1) != y
    size = (result.x_adv - x).flatten(1).norm(dim=1)
    assert result.success.any() and not result.success.all()
    assert (wrong[result.success]).all()
    assert (size[result.success] <= eps).all() and (result.norm[result.success] <= eps).all()
    assert torch.allclose(size[torch.isfinite(result.norm)], result.norm[torch.isfinite(result.norm)])
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert not success_mismatch(nominal_digits, x, y, result, eps, "L2", minimum_norm=True).any()
    # the clean-misclassified sample: broken by no stage, norm 0, one forward pass
    assert result.success[-1] and result.norm[-1] == 0 and detail.stage[-1] == 0
    assert result.n_forward[-1] == 1 and result.n_backward[-1] == 0
    assert (detail.stage >= 0).eq(result.success).all()
    assert sum(detail.broke().values()) == int(result.success.sum())
    assert all(f.startswith(("l2-suite:broke:", "aa:")) for f in result.flags)


def test_later_stages_run_only_on_survivors(one_thread, nominal_digits, batch):
    x, y = batch
    first, _ = run(suite(stages=("apgd-ce",)), nominal_digits, x, y, 0.3)
    both, detail = run(suite(stages=("apgd-ce", "ddn", "apgd-dlr")), nominal_digits, x, y, 0.3)
    early = first.success
    assert early.any() and (~early).any()
    assert torch.equal(both.n_forward[early], first.n_forward[early])  # stopped growing
    assert torch.equal(both.n_backward[early], first.n_backward[early])
    assert (both.n_forward[~early] > first.n_forward[~early]).all()
    assert torch.equal(both.success[early], early[early]) and (detail.stage[early] <= 1).all()
    # every sample all stages ran on paid the same gradient passes (stage totals split
    # exactly); forward counts differ only by the suite's own pulled-back checks (<= 1 per stage)
    robust = ~both.success
    assert len(set(both.n_backward[robust].tolist())) == 1
    assert both.n_forward[robust].max() - both.n_forward[robust].min() <= 3


def test_second_ddn_start_runs_only_on_the_first_starts_survivors(one_thread, nominal_digits, batch):
    x, y = batch
    once, d1 = run(suite(stages=("ddn",), ddn_inits=(1.0,)), nominal_digits, x, y, 0.3)
    twice, d2 = run(suite(stages=("ddn",), ddn_inits=(1.0, 0.5)), nominal_digits, x, y, 0.3)
    early = once.success
    assert early.any() and (~early).any()
    assert torch.equal(twice.n_backward[early], once.n_backward[early])
    assert (twice.n_backward[~early] > once.n_backward[~early]).all()
    assert (twice.success >= once.success).all()
    # the stage's norm record keeps the smaller of its two runs
    finite = torch.isfinite(d1.min_norm["ddn"])
    assert (d2.min_norm["ddn"][finite] <= d1.min_norm["ddn"][finite]).all()


def assert_ran_only_near_and_broke_there(model, x, y, eps, base, result, detail, stage, radius=1.5):
    """`stage` (after ddn, whose result is `base`) paid passes on every survivor within
    radius x ε and on no other sample, broke some of them and only them, each at a point
    misclassified and within ε."""
    survivors = ~base.success
    near = survivors & (base.norm <= radius * eps)
    far = survivors & ~near
    assert near.any() and far.any()
    paid = result.n_backward - base.n_backward
    assert (paid[near] > 0).all() and (paid[far] == 0).all() and (paid[base.success] == 0).all()
    broke = detail.stage == detail.stages.index(stage)
    assert broke.any() and (broke <= near).all()  # it breaks samples, and only those it ran on
    with torch.no_grad():
        assert (model(result.x_adv[broke]).argmax(dim=1) != y[broke]).all()
    assert ((result.x_adv[broke] - x[broke]).flatten(1).norm(dim=1) <= eps).all()


@pytest.mark.parametrize("stage, radius", [("apgd-t-warm", {"warm_radius": 1.5}),
                                           ("apgd-warm", {"warm_runs": (("margin", 1.5), ("ce", 1.5))}),
                                           ("ddn-restarts", {"restart_radius": 1.5}),
                                           ("ddn-warm", {"warm_radius": 1.5}),
                                           ("apgd-restarts", {"restart_radius": 1.5})])
def test_near_boundary_stage_runs_only_near_the_boundary_and_breaks_there(one_thread, nominal_digits,
                                                                          batch, stage, radius):
    x, y = batch
    eps = 0.6
    base, _ = run(suite(stages=("ddn",)), nominal_digits, x, y, eps)
    attack = suite(stages=("ddn", stage), warm_targets=9, targeted_steps=20, apgd_steps=30, **radius)
    result, detail = run(attack, nominal_digits, x, y, eps)
    assert_ran_only_near_and_broke_there(nominal_digits, x, y, eps, base, result, detail, stage)


def test_targeted_stage_skips_survivors_whose_best_adversarial_is_far(one_thread, nominal_digits, batch):
    x, y = batch
    eps = 0.6
    base, _ = run(suite(stages=("ddn",)), nominal_digits, x, y, eps)
    result, _ = run(suite(stages=("ddn", "apgd-t"), targeted_radius=1.5), nominal_digits, x, y, eps)
    survivors = ~base.success
    far = survivors & torch.isfinite(base.norm) & (base.norm > 1.5 * eps)
    near = survivors & ~far
    assert near.any() and far.any()
    paid = result.n_backward - base.n_backward
    assert (paid[near] > 0).all() and (paid[far] == 0).all()


@pytest.mark.parametrize("model_id", ["nominal-digits", "at-digits"])
def test_breaks_every_sample_small_cw_breaks_within_eps(one_thread, digits_test, model_id):
    model = load_model(model_id).model.eval()
    x, y = digits_test.x[:20], digits_test.y[:20]  # the suite at its full budget: 20 samples
    cw = dataclasses.replace(ATTACKS.get("cw"), binary_search_steps=5, steps=100)
    reference = cw.run(model, x, y, eps=EPS, sample_ids=torch.arange(20), seed=0)
    result, _ = ATTACKS.get("l2-suite").run_detailed(model, x, y, eps=EPS,
                                                     sample_ids=torch.arange(20), seed=0)
    assert reference.success.any()
    assert not (reference.success & ~result.success).any()


class RowByRow(torch.nn.Module):
    """The model called on one sample at a time: the same arithmetic on a sample whatever
    batch it arrives in (a batched conv may round differently by batch size, deciding a
    boundary sample on some CPUs), so a batch-size comparison tests the attack exactly."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(row.unsqueeze(0)) for row in x])


def test_results_do_not_depend_on_the_batch_size(one_thread, at_digits, batch):
    x, y = batch
    at_digits = RowByRow(at_digits).eval()
    attack = suite(stages=("apgd-ce", "apgd-margin", "ddn", "ddn-margin", "apgd-warm", "apgd-t",
                           "apgd-t-warm", "fab-t", "fmn", "cw-search", "ddn-restarts", "apgd-restarts",
                           "ddn-warm", "cw"),
                   cw_radius=3.0, restart_radius=3.0, warm_radius=3.0)

    def whole(size):
        parts = list(run_in_batches(attack, at_digits, x, y, torch.arange(len(y)), eps=0.6, seed=0,
                                    batch_size=size, device="cpu"))
        return [torch.cat([getattr(r, f) for _, r, _ in parts])
                for f in ("success", "norm", "n_forward", "n_backward")]

    _, detail = run(attack, at_digits, x, y, eps=0.6)
    for stage in ("ddn-margin", "fab-t", "cw-search", "ddn-restarts", "ddn-warm"):  # each ran somewhere
        assert not detail.min_norm[stage].isnan().all(), stage
    (s1, n1, f1, b1), (s2, n2, f2, b2) = whole(len(y)), whole(5)
    assert torch.equal(s1, s2) and torch.equal(f1, f2) and torch.equal(b1, b2)
    finite = torch.isfinite(n1)
    assert torch.equal(finite, torch.isfinite(n2)) and torch.allclose(n1[finite], n2[finite], atol=1e-4)


class ScaledUp(torch.nn.Module):
    """A model's logits times a large factor: same decisions, a cross-entropy whose
    gradient underflows to exactly zero (as with distance-based logits far from the boundary)."""

    def __init__(self, model: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


def test_margin_stage_is_blind_to_the_logits_scale_where_cross_entropy_saturates(one_thread,
                                                                                   nominal_digits, batch):
    x, y = batch
    saturated = ScaledUp(nominal_digits, 2.0 ** 14).eval()  # a power of two: exact scaling
    margin_plain, _ = run(suite(stages=("apgd-margin",), apgd_steps=20), nominal_digits, x, y)
    margin_scaled, _ = run(suite(stages=("apgd-margin",), apgd_steps=20), saturated, x, y)
    ce_scaled, _ = run(suite(stages=("apgd-ce",), apgd_steps=20), saturated, x, y)
    assert int(margin_plain.success.sum()) > int(ce_scaled.success.sum()) + 2
    assert torch.equal(margin_scaled.success, margin_plain.success)


def test_cw_search_runs_foolbox_cw_at_each_samples_own_constant(one_thread, nominal_digits, batch):
    """The per-sample constant enters as scaled logits: the same points as foolbox C&W run
    on each sample alone at that constant; the first guess is 2ε / ‖∇ margin(x)‖."""
    x, y = batch[0][:4], batch[1][:4]
    eps, attack = EPS, suite(cw_search_steps=40)
    n = len(y)
    guess = torch.full((n,), float("nan"))
    search_stages.cw_at(attack, eps, guess)(PassCounter(nominal_digits), x, y, torch.arange(n))
    const = 3 * guess
    together = search_stages.cw_at(attack, eps, const)(PassCounter(nominal_digits), x, y, torch.arange(n))
    found = (together != 0).flatten(1).any(dim=1)  # foolbox's failure marker is an all-zero image
    assert found.any() and not found.all()
    fmodel = fb.PyTorchModel(nominal_digits, bounds=(0, 1), device="cpu")
    same = []
    for i in range(n):
        xi = x[i:i + 1].clone().requires_grad_(True)
        grad, = torch.autograd.grad(margin(nominal_digits(xi), y[i:i + 1]).sum(), xi)
        assert torch.isclose(guess[i], 2 * eps / grad.norm(), rtol=1e-5)
        cw = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=1, steps=40, stepsize=attack.cw_search_stepsize,
                                              initial_const=float(const[i]), abort_early=False)
        alone = cw(fmodel, x[i:i + 1], y[i:i + 1], epsilons=None)[0]
        same.append(torch.allclose(together[i:i + 1], alone, atol=1e-5))
    # the constant enters as scaled logits in one and scales the loss in the other: the
    # same algorithm in other arithmetic, whose rounding can part one row's trajectory on
    # another CPU (a decision at the boundary); a wrong constant parts every row
    assert same.count(False) <= 1


def test_cw_search_lowers_the_constant_after_an_adversarial_and_raises_it_after_none(
        one_thread, nominal_digits, batch, monkeypatch):
    """C&W's binary search, per row: ÷ factor after an adversarial and × factor after none
    until a bracket exists, then its geometric middle."""
    x, y = batch
    rounds: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # rows, constants, crossed
    inner = search_stages.cw_at

    def recording(suite, eps, const):
        run_cw = inner(suite, eps, const)

        def attack(counter, x0, y0, rows):
            point = run_cw(counter, x0, y0, rows)
            with torch.no_grad():
                crossed = (nominal_digits(point).argmax(dim=1) != y0) & (point != 0).flatten(1).any(dim=1)
            rounds.append((rows.clone(), const[rows].clone(), crossed))
            return point
        return attack

    monkeypatch.setattr(search_stages, "cw_at", recording)
    # ddn first: cw-search runs only where some adversarial is already known
    attack = suite(stages=("ddn", "cw-search"), cw_search_rounds=3, cw_search_steps=20,
                   cw_search_factor=3.0, cw_radius=float("inf"))
    run(attack, nominal_digits, x, y, eps=0.3)
    assert len(rounds) == 3
    low, high = {}, {}
    checked = {"down": 0, "up": 0, "bracketed": 0}
    for (rows, const, crossed), (later_rows, later_const, _) in zip(rounds, rounds[1:]):
        nxt = dict(zip(later_rows.tolist(), later_const.tolist()))
        for r, c, hit in zip(rows.tolist(), const.tolist(), crossed.tolist()):
            (high if hit else low)[r] = c
            if r not in nxt:
                continue  # broken within ε
            if r in low and r in high:
                assert nxt[r] == pytest.approx((low[r] * high[r]) ** 0.5, rel=1e-6)
                checked["bracketed"] += 1
            else:
                assert nxt[r] == pytest.approx(c / 3 if hit else c * 3, rel=1e-6)
                checked["down" if hit else "up"] += 1
    assert checked["up"] and checked["bracketed"], checked  # "down": see the next test


def test_next_constant_divides_after_a_crossing_multiplies_after_none_and_bisects_a_bracket():
    inf = float("inf")
    tried = torch.tensor([2.0, 2.0, 2.0, 2.0])
    crossed = torch.tensor([True, False, True, False])
    low = torch.tensor([0.0, 0.0, 0.5, 0.5])
    high = torch.tensor([inf, inf, inf, 8.0])
    following, new_low, new_high = next_constants(tried, crossed, low, high, factor=3.0)
    assert torch.allclose(following, torch.tensor([2 / 3, 6.0, 1.0, 4.0]))
    assert torch.equal(new_low, torch.tensor([0.0, 2.0, 0.5, 2.0]))
    assert torch.equal(new_high, torch.tensor([2.0, inf, 2.0, 8.0]))


def test_ddn_margin_stage_is_blind_to_the_logits_scale(one_thread, nominal_digits, batch):
    x, y = batch
    saturated = ScaledUp(nominal_digits, 2.0 ** 14).eval()
    attack = suite(stages=("ddn-margin",), ddn_steps=20)
    plain, _ = run(attack, nominal_digits, x, y, eps=0.5)
    scaled, _ = run(attack, saturated, x, y, eps=0.5)
    assert plain.success.any() and not plain.success.all()
    assert torch.equal(scaled.success, plain.success) and torch.equal(scaled.norm, plain.norm)


def test_fab_stage_returns_pyautoattacks_fab_points_sample_by_sample(one_thread, nominal_digits, batch):
    """fab-t is FAB-T run per target from x: the norms it records are those of FAB run on
    each sample alone, toward the same class (by clean logit rank)."""
    x, y = batch[0][:6], batch[1][:6]
    _, detail = run(suite(stages=("fab-t",), fab_targets=1, fab_steps=15),
                    nominal_digits, x, y, eps=0.1)  # ε so small that no sample is broken
    recorded = detail.min_norm["fab-t"]
    assert torch.isfinite(recorded).any()
    for i in range(len(y)):
        fab = FABAttack_PT(nominal_digits, norm="L2", n_iter=15, eps=0.1, seed=0, targeted=True,
                           device="cpu", n_target_classes=1)
        fab.target_class = 2
        alone = fab.attack_single_run(x[i:i + 1], y[i:i + 1], use_rand_start=False, is_targeted=True)
        with torch.no_grad():
            fooled = bool(nominal_digits(alone.clamp(0, 1)).argmax(dim=1) != y[i])
        size = float((alone.clamp(0, 1) - x[i:i + 1]).norm())
        assert recorded[i] == pytest.approx(size, abs=1e-5) if fooled else recorded[i] == float("inf")


def test_ddn_walks_costs_nothing_where_ddn_never_met_a_zero_gradient(one_thread, nominal_digits, batch):
    x, y = batch
    base, _ = run(suite(stages=("ddn",)), nominal_digits, x, y, 0.6)
    result, _ = run(suite(stages=("ddn", "ddn-walks"), walk_radius=3.0), nominal_digits, x, y, 0.6)
    assert (~base.success).any()
    assert torch.equal(result.n_backward, base.n_backward) and torch.equal(result.success, base.success)


def test_ddn_walks_runs_only_on_near_survivors_whose_ddn_walked_and_breaks_there(one_thread, nominal_digits,
                                                                                 digits_test):
    """On saturated logits every clean-correct sample's ddn run walks: ddn-walks then runs on
    the survivors within walk_radius x ε, and what it breaks is verified within ε."""
    x, y = digits_test.x[:40], digits_test.y[:40]
    saturated = ScaledUp(nominal_digits, 2.0 ** 20).eval()
    eps = 0.5
    base, _ = run(suite(stages=("ddn",), ddn_steps=100), saturated, x, y, eps)
    attack = suite(stages=("ddn", "ddn-walks"), ddn_steps=100, walk_radius=1.5, walk_starts=(0.5, 1.0))
    result, detail = run(attack, saturated, x, y, eps)
    assert_ran_only_near_and_broke_there(saturated, x, y, eps, base, result, detail, "ddn-walks")


def test_ddn_walks_results_do_not_depend_on_the_batch_size(one_thread, nominal_digits, digits_test):
    x, y = digits_test.x[:24], digits_test.y[:24]
    saturated = ScaledUp(RowByRow(nominal_digits), 2.0 ** 20).eval()  # exact across batch sizes
    attack = suite(stages=("ddn", "ddn-walks"), ddn_steps=30, walk_radius=3.0, walk_starts=(0.5, 1.0))

    def whole(size):
        parts = list(run_in_batches(attack, saturated, x, y, torch.arange(len(y)), eps=0.8, seed=0,
                                    batch_size=size, device="cpu"))
        return [torch.cat([getattr(r, f) for _, r, _ in parts]) for f in ("success", "n_backward")]

    (s1, b1), (s2, b2) = whole(len(y)), whole(5)
    assert torch.equal(s1, s2) and torch.equal(b1, b2)
