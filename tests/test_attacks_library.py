"""Library attacks (foolbox C&W / DDN, pyautoattack AutoAttack and components): the
shared result contract, the C&W all-zero failure pitfall, AutoAttack warnings as
flags, and a cross-check of apgd-ce against pyautoattack's APGD called directly."""

from __future__ import annotations

import dataclasses
import warnings

import foolbox as fb
import pytest
import torch
from pyautoattack import AutoAttack
from pyautoattack.autopgd_base import APGDAttack
from torch import nn

from robbench.attacks import ATTACKS
from robbench.attacks.autoattack import AutoAttackRun, flag_for
from robbench.attacks.minimum_norm import MinimumNormAttack

LIBRARY_IDS = [i for i, a in ATTACKS.items() if isinstance(a, (MinimumNormAttack, AutoAttackRun))]
TINY = {"cw": dict(steps=100, binary_search_steps=5), "ddn": dict(steps=20)}  # AutoAttack: below
EPS = {"Linf": 0.1, "L2": 1.0}


def tiny(attack):
    if attack.id in TINY:
        return dataclasses.replace(attack, **TINY[attack.id])
    extra = dict(eot_iter=2) if attack.version == "rand" else {}
    return dataclasses.replace(attack, steps=5, n_queries=30, **extra)


def run(attack, model, x, y, eps, seed=0):
    return attack.run(model, x, y, eps=eps, sample_ids=torch.arange(len(y)), seed=seed)


@pytest.fixture(scope="module")
def batch(digits_test):
    """12 test digits, the last relabelled so that it is misclassified on the clean input."""
    x, y = digits_test.x[:12].clone(), digits_test.y[:12].clone()
    y[-1] = (y[-1] + 1) % 10
    return x, y


@pytest.fixture(scope="module", params=LIBRARY_IDS)
def outcome(request, nominal_digits, batch):
    attack = ATTACKS.get(request.param)
    x, y = batch
    eps = EPS[attack.norm]
    return attack, eps, run(tiny(attack), nominal_digits, x, y, eps)


def test_every_library_attack_is_registered():
    assert set(LIBRARY_IDS) == {"cw", "ddn", "aa", "aa-plus", "aa-rand", "apgd-ce", "apgd-dlr",
                                "square", "aa-l2", "square-l2", "square-l2-long", "fab-t-l2",
                                "apgd-t-l2", "square-l2-long2", "square-l2-restarts", "apgd-t-l2-restarts",
                                "fast-apgd-ce", "fast-apgd-t", "fast-apgd-t-l2", "fast-fab-t-l2",
                                "fast-apgd-t-close", "fast-square", "fast-square-close", "fast-square-l2",
                                "fast-apgd-ce-restarts", "fast-apgd-ce-restarts-l2",
                                "fast-apgd-dlr-restarts", "fast-apgd-dlr-restarts-l2"}
    assert all(ATTACKS.get(i).minimum_norm == (i in ("cw", "ddn")) for i in LIBRARY_IDS)


def test_adversarials_lie_in_the_unit_box_and_bounded_ones_in_the_eps_ball(outcome, batch):
    attack, eps, result = outcome
    x, _ = batch
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    delta = (result.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if attack.norm == "Linf" else delta.norm(dim=1)
    if not attack.minimum_norm:
        assert (size <= eps + 1e-5).all()
        assert torch.allclose(size, result.norm, atol=1e-6)


def test_reported_success_is_misclassification_of_the_returned_point(outcome, nominal_digits, batch):
    attack, eps, result = outcome
    x, y = batch
    with torch.no_grad():
        fooled = nominal_digits(result.x_adv).argmax(1) != y
    if attack.minimum_norm:
        found = torch.isfinite(result.norm)
        true_norm = (result.x_adv - x).flatten(1).norm(dim=1)
        assert torch.allclose(result.norm[found], true_norm[found], atol=1e-5)
        assert torch.equal(found, fooled)  # a failure returns x itself, which is classified correctly
        assert torch.equal(result.success, fooled & (result.norm <= eps))
    else:
        assert torch.equal(result.success, fooled)
    assert result.success[-1] and result.norm[-1] == 0  # clean-misclassified: success at norm 0
    assert torch.equal(result.x_adv[-1], x[-1])


def test_pass_counts_and_a_sound_model_raises_no_flags(outcome):
    _, _, result = outcome
    assert (result.n_forward >= result.n_backward).all() and result.n_forward.min() > 0
    assert result.flags == []


def zero_image_fools(model, x, y):
    with torch.no_grad():
        return model(torch.zeros_like(x)).argmax(1) != y


def test_cw_all_zero_returns_are_failures(monkeypatch, nominal_digits, batch):
    x, y = batch[0][:11], batch[1][:11]
    original = fb.attacks.L2CarliniWagnerAttack.run

    def zero_even_rows(self, model, inputs, criterion, **kwargs):
        out = original(self, model, inputs, criterion, **kwargs)  # an eagerpy tensor
        raw = out.raw.clone()
        raw[::2] = 0  # what foolbox returns for a sample it failed on
        return type(out)(raw)

    monkeypatch.setattr(fb.attacks.L2CarliniWagnerAttack, "run", zero_even_rows)
    attack = tiny(ATTACKS.get("cw"))
    result = run(attack, nominal_digits, x, y, eps=100.0)  # any found point would count
    even = torch.arange(len(y)) % 2 == 0
    assert zero_image_fools(nominal_digits, x, y)[even].any()  # so a naive check would say success
    assert not result.success[even].any() and torch.isinf(result.norm[even]).all()
    assert torch.equal(result.x_adv[even], x[even])
    assert result.success[~even].any()


def test_cw_failures_with_a_tiny_budget_are_not_successes(nominal_digits, batch):
    """Unpatched: foolbox's C&W with one short binary-search step fails on most samples
    and returns zeros there, which the model misclassifies for most labels."""
    x, y = batch[0][:11], batch[1][:11]
    attack = dataclasses.replace(ATTACKS.get("cw"), steps=3, binary_search_steps=1)
    fmodel = fb.PyTorchModel(nominal_digits, bounds=(0, 1))
    raw, _, _ = attack.foolbox_attack()(fmodel, x, y, epsilons=None)
    zero = (raw.flatten(1) == 0).all(1) & zero_image_fools(nominal_digits, x, y)
    assert zero.any()
    result = run(attack, nominal_digits, x, y, eps=100.0)
    assert not result.success[zero].any() and torch.isinf(result.norm[zero]).all()


class NoisyLogits(nn.Module):
    """A randomised defense: fresh noise on the logits at every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits + logits.detach().std() * torch.randn_like(logits)


class Softmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(dim=1)


@pytest.mark.parametrize("wrapper, flag", [(NoisyLogits, "aa:randomized-output"),
                                           (Softmax, "aa:softmax-output")])
def test_autoattack_warnings_become_flags_and_stay_off_the_console(
        wrapper, flag, nominal_digits, batch, capsys):
    attack = dataclasses.replace(ATTACKS.get("apgd-ce"), steps=3, restarts=1)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        result = run(attack, wrapper(nominal_digits).eval(), *batch, eps=0.1)
    assert flag in result.flags
    assert not leaked
    assert capsys.readouterr() == ("", "")


def test_square_l2_long_reaches_pyautoattack_as_restarts_on_a_seed_apart_from_square_l2(nominal_digits):
    """Its draws must not repeat square-l2's, which uses the run's seed on the same batch."""
    attack = dataclasses.replace(ATTACKS.get("square-l2-long"), draws=3)
    adversary = AutoAttack(nominal_digits, attacks=["square"], device="cpu", eps=1.0, norm="L2",
                           seed=5, version="custom")
    attack.configure(adversary, 5)
    assert adversary.square.n_restarts == 3 and adversary.get_seed() == 6
    assert attack.gradient_free and attack.n_queries == 20000


def test_apgd_t_l2_restarts_runs_square_then_targeted_apgd_restarts_on_a_seed_apart(nominal_digits):
    """pyautoattack runs a custom version's components in the order given, each on what
    the earlier left: Square first, then `draws` restarts per target."""
    attack = ATTACKS.get("apgd-t-l2-restarts")
    adversary = AutoAttack(nominal_digits, attacks=list(attack.attacks), device="cpu", eps=1.0,
                           norm="L2", seed=5, version="custom")
    attack.configure(adversary, 5)
    assert adversary.attacks_to_run == ["square", "apgd-t"]
    assert adversary.apgd_targeted.n_restarts == attack.draws == 20 and adversary.get_seed() == 9
    assert attack.gradient_free and attack.kind == "ensemble" and attack.n_queries == 5000


def test_flag_names():
    assert flag_for("Square Attack has decreased the robust accuracy of 2.00%.") \
        == "aa:square-beats-white-box"
    assert flag_for("there are 3 points with zero gradient!") == "aa:zero-gradients"
    assert flag_for("Something new, happened here today ok") == "aa:warning:something-new-happened-here-today"


def test_apgd_ce_matches_pyautoattack_apgd_called_directly(nominal_digits, digits_test):
    x, y = digits_test.x[:64], digits_test.y[:64]
    attack = ATTACKS.get("apgd-ce")  # AutoAttack's own settings: 100 iterations, 5 restarts
    ours = 1 - run(attack, nominal_digits, x, y, eps=0.1, seed=0).success.float().mean().item()
    apgd = APGDAttack(nominal_digits, n_iter=100, n_restarts=5, eps=0.1, seed=0, loss="ce",
                      device=x.device)
    adv = apgd.perturb(x, y)
    with torch.no_grad():
        theirs = (nominal_digits(adv).argmax(1) == y).float().mean().item()
    assert 0 < theirs < 1
    assert abs(ours - theirs) * len(y) <= 1
