"""Adaptive attacks, the `adaptive` suite, transfer and targeted PGD (METHODS §2, §3)."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robbench.zoo.lookup import load_model
from robbench.attacks import ATTACKS
from robbench.attacks.adaptive import ADAPTIVE_PGD, nearest_other_centre
from robbench.attacks.base import sample_generator
from robbench.attacks.pgd import ascent_direction, project, random_start
from robbench.attacks.targeted import TargetedResult
from robbench.attacks.transfer import substitute_model
from robbench.defenses import DEFENSES
from robbench.defenses.magnet import MagnetModel
from robbench.defenses.mat import MATSOBIBOModel
from robbench.defenses.mmc import MMCModel
from robbench.defenses.prototypes import PrototypeModel
from robbench.defenses.softmax import SoftmaxModel, TradesModel
from robbench.errors import RobbenchError

EPS = 0.2
# the model each attack is meant for
TARGETS = {
    "adaptive-ce": "nominal-digits", "adaptive-dlr": "trades-digits",
    "adaptive-margin": "mmc-digits", "adaptive-magnet": "magnet-digits",
    "adaptive-mmc": "mmc-digits", "adaptive-mmc-targeted": "mmc-digits",
    "adaptive-mat": "mat-digits", "adaptive-prototype": "drp-digits",
    "adaptive-trades": "trades-digits", "adaptive": "magnet-digits",
    "transfer": "at-digits", "pgd-targeted": "nominal-digits",
}
NEW_IDS = sorted(TARGETS)


@pytest.fixture(scope="module")
def zoo():
    cache = {}

    def get(model_id):
        if model_id not in cache:
            cache[model_id] = load_model(model_id).model
        return cache[model_id]

    return get


def quick(attack_id):
    attack = ATTACKS.get(attack_id)
    return attack if attack_id == "transfer" else dataclasses.replace(attack, steps=5, restarts=1)


def run(attack, model, x, y, eps=EPS, seed=0):
    return attack.run(model, x, y, eps=eps, sample_ids=torch.arange(len(y)), seed=seed)


def test_every_new_attack_is_registered_and_aimed_at_a_model():
    assert {a.id for a in ADAPTIVE_PGD} | {"adaptive", "transfer", "pgd-targeted"} == set(NEW_IDS)
    assert all(ATTACKS.get(i).norm == "Linf" for i in NEW_IDS)
    for a in ADAPTIVE_PGD:  # the PGD defaults: 10 restarts × 100 steps, step ε/4
        assert (a.steps, a.restarts, a.step_fraction, a.random_init) == (100, 10, 0.25, True)


@pytest.mark.parametrize("attack_id", NEW_IDS)
def test_adversarials_are_valid_and_success_is_misclassification(attack_id, zoo, digits_test):
    model = zoo(TARGETS[attack_id])
    x, y = digits_test.x[:12], digits_test.y[:12]
    result = run(quick(attack_id), model, x, y)
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    size = (result.x_adv - x).flatten(1).abs().amax(1)
    assert (size <= EPS * (1 + 1e-5)).all()
    assert torch.allclose(size, result.norm)
    with torch.no_grad():
        fooled = model(result.x_adv).argmax(1) != y
    assert torch.equal(result.success, fooled)
    assert (result.n_forward >= 1).all()


# --- the objectives ----------------------------------------------------------------


class Scaled(nn.Module):
    """Toy features f(x) = 8·x − 4 on flat inputs, so a hand computation is easy."""

    def __init__(self, dim):
        super().__init__()
        self.feature_dim = dim

    def forward(self, x):
        return 8 * x.flatten(1) - 4


def toy(cls, dim=4, classes=3, **params):
    return cls(Scaled(dim), classes, **params).eval()


def objective(attack_id, model, x_adv, x, y):
    return ATTACKS.get(attack_id).objective(model, x_adv, x, y)


def test_objectives_match_hand_computations():
    gen = torch.Generator().manual_seed(1)
    x, x_adv = torch.rand(5, 4, generator=gen), torch.rand(5, 4, generator=gen)
    y = torch.tensor([0, 1, 2, 0, 1])
    f, f0 = 8 * x_adv - 4, 8 * x - 4
    rows = torch.arange(5)

    mmc = toy(MMCModel)
    d2 = ((f[:, None] - mmc.centres) ** 2).sum(-1)
    loss, logits = objective("adaptive-mmc", mmc, x_adv, x, y)
    assert torch.allclose(loss, d2[rows, y]) and torch.allclose(logits, mmc(x_adv))

    magnet = toy(MagnetModel, alpha=1.0)
    magnet.sigma2.fill_(3.0)
    s = -((f[:, None, None] - magnet.centres) ** 2).sum(-1) / 6.0  # (N, L, K)
    expected = []
    for i in range(5):
        others = torch.cat([s[i, c] for c in range(3) if c != y[i]])
        expected.append(max(0.0, 1.0 - s[i, y[i]].max() + torch.log(others.exp().sum())))
    assert torch.allclose(objective("adaptive-magnet", magnet, x_adv, x, y)[0],
                          torch.tensor(expected), atol=1e-5)

    mat = toy(MATSOBIBOModel)
    mu = mat.centres[y]
    cos = F.cosine_similarity(f, mu, dim=1)
    fn = f.norm(dim=1, keepdim=True)
    so = ((mu / mu.norm(dim=1, keepdim=True) - cos[:, None] * f / fn) / fn).pow(2).sum(1)
    cd = 1 - F.cosine_similarity(f0, f, dim=1)
    assert torch.allclose(objective("adaptive-mat", mat, x_adv, x, y)[0],
                          (1 - cos) + mat.alpha * so + mat.beta * cd, atol=1e-5)

    drp = toy(PrototypeModel, dim=30, steps=20)
    xd, xd_adv = torch.rand(5, 30, generator=gen), torch.rand(5, 30, generator=gen)
    fd = 8 * xd_adv - 4
    assert torch.allclose(objective("adaptive-prototype", drp, xd_adv, xd, y)[0],
                          (fd - drp.prototypes[y]).abs().amax(1))

    trades = toy(TradesModel)
    p, q = trades(x).softmax(1), trades(x_adv).softmax(1)
    assert torch.allclose(objective("adaptive-trades", trades, x_adv, x, y)[0],
                          (p * (p / q).log()).sum(1), atol=1e-6)

    z = trades(x_adv)
    margin = z.scatter(1, y[:, None], -math.inf).amax(1) - z[rows, y]
    assert torch.allclose(objective("adaptive-margin", trades, x_adv, x, y)[0], margin)
    assert torch.allclose(objective("adaptive-ce", trades, x_adv, x, y)[0],
                          F.cross_entropy(z, y, reduction="none"))


def test_mmc_targeted_aims_at_the_nearest_other_centre_of_the_clean_feature():
    mmc = toy(MMCModel, dim=4, classes=4)
    mu = mmc.centres
    # clean features: mostly the own centre, a bit towards another one
    f_clean = torch.stack([0.7 * mu[0] + 0.3 * mu[2], 0.6 * mu[1] + 0.4 * mu[3],
                           0.9 * mu[3] + 0.1 * mu[0]])
    y = torch.tensor([0, 1, 3])
    assert nearest_other_centre(mmc, f_clean, y).tolist() == [2, 3, 0]
    x = (f_clean + 4) / 8  # Scaled maps x back onto f_clean
    x_adv = torch.rand(3, 4, generator=torch.Generator().manual_seed(2))
    loss, _ = objective("adaptive-mmc-targeted", mmc, x_adv, x, y)
    f = 8 * x_adv - 4
    assert torch.allclose(loss, -((f - mu[torch.tensor([2, 3, 0])]) ** 2).sum(1))
    # brute force on a real model: argmin over the other classes
    with torch.no_grad():
        d2 = mmc.squared_distances(f)
    t = nearest_other_centre(mmc, f, y)
    for i in range(3):
        assert t[i] != y[i] and d2[i, t[i]] == min(d2[i, c] for c in range(4) if c != y[i])


@pytest.mark.parametrize("attack_id", [a.id for a in ADAPTIVE_PGD])
def test_each_objective_increases_along_its_ascent(attack_id, zoo, digits_test):
    """Five of the attack's own steps (no early stop) raise the objective on average:
    the gradient's sign is right and does not vanish."""
    attack, model = ATTACKS.get(attack_id), zoo(TARGETS[attack_id])
    x, y = digits_test.x[:16], digits_test.y[:16]
    eps = 0.1
    gens = [sample_generator(0, "test", i, 0) for i in range(len(y))]
    xk = random_start(x, eps, "Linf", gens)
    start = attack.objective(model, xk, x, y)[0].detach()
    for _ in range(5):
        xk.requires_grad_(True)
        grad, = torch.autograd.grad(attack.objective(model, xk, x, y)[0].sum(), xk)
        xk = project(xk.detach() + eps / 4 * ascent_direction(grad, "Linf"), x, eps, "Linf")
    end = attack.objective(model, xk, x, y)[0].detach()
    assert end.mean() > start.mean()


def test_adaptive_attack_on_the_wrong_defense_is_one_clear_error(zoo, digits_test):
    x, y = digits_test.x[:4], digits_test.y[:4]
    with pytest.raises(RobbenchError) as err:
        run(quick("adaptive-magnet"), zoo("mmc-digits"), x, y)
    message = str(err.value)
    assert "\n" not in message and "adaptive-magnet" in message and "magnet_loss" in message
    for attack_id, model_id in [("adaptive-mmc", "magnet-digits"), ("adaptive-mat", "mmc-digits"),
                                ("adaptive-prototype", "nominal-digits")]:
        with pytest.raises(RobbenchError, match=attack_id):
            run(quick(attack_id), zoo(model_id), x, y)


# --- the suite -----------------------------------------------------------------------


@pytest.mark.parametrize("model_id, expected", [
    ("magnet-digits", ("adaptive-magnet", "adaptive-margin")),
    ("mmc-digits", ("adaptive-mmc", "adaptive-margin", "adaptive-mmc-targeted")),
    ("mat-so-digits", ("adaptive-mat", "adaptive-margin")),
    ("nominal-digits", ("adaptive-ce", "adaptive-dlr")),
])
def test_suite_resolves_to_the_declared_attacks(model_id, expected, zoo):
    model, suite = zoo(model_id), ATTACKS.get("adaptive")
    assert type(model).adaptive_attacks == expected
    assert [a.id for a in suite.sub_attacks(model)] == list(expected)
    assert list(suite.params_for(model)["sub_attacks"]) == list(expected)
    quick_suite = dataclasses.replace(suite, steps=5, restarts=1)
    assert all((a.steps, a.restarts) == (5, 1) for a in quick_suite.sub_attacks(model))


@pytest.mark.parametrize("model_id", ["magnet-digits", "mmc-digits"])
def test_suite_success_is_the_or_of_its_sub_attacks(model_id, zoo, digits_test):
    model = zoo(model_id)
    x, y = digits_test.x[:16], digits_test.y[:16]
    suite = dataclasses.replace(ATTACKS.get("adaptive"), steps=5, restarts=1)
    eps = 0.12
    combined = run(suite, model, x, y, eps, seed=3)
    alone = [run(a, model, x, y, eps, seed=3) for a in suite.sub_attacks(model)]
    anyone = torch.stack([r.success for r in alone]).any(0)
    assert torch.equal(combined.success, anyone)
    assert 0 < anyone.sum() < len(y)  # an informative budget
    for a in suite.sub_attacks(model):
        assert any(flag.startswith(f"adaptive:{a.id}:") for flag in combined.flags)
    # the point kept is the first sub-attack's that succeeded on the sample
    first = alone[0].success
    assert torch.equal(combined.x_adv[first], alone[0].x_adv[first])
    # later sub-attacks ran only on samples still unfooled
    assert (combined.n_forward[first] == alone[0].n_forward[first]).all()


def test_suite_params_cover_every_sub_attack_any_defense_resolves_to():
    """One registered suite serves every model and cached results are keyed on its static
    params(): whatever a defense resolves to must be in them, with its own parameters."""
    suite = ATTACKS.get("adaptive")
    static = suite.params()["sub_attacks"]
    resolved = 0
    for name in DEFENSES:
        ids = DEFENSES.get(name).adaptive_attacks
        if ids:
            for attack in suite.sub_attacks(SimpleNamespace(adaptive_attacks=ids)):
                assert static.get(attack.id) == attack.params(), (name, attack.id)
                resolved += 1
    assert resolved >= 10 and "adaptive-magnet" in static


# --- transfer -------------------------------------------------------------------------


def test_transfer_feeds_the_nominal_substitutes_pgd_points_to_the_target(zoo, digits_test):
    from robbench.attacks.base import sample_generator
    from robbench.attacks.transfer import craft_on_substitute

    target = zoo("at-digits")
    x, y = digits_test.x[:16], digits_test.y[:16]
    substitute = substitute_model("nominal-digits", "cpu")
    assert substitute_model("nominal-digits", "cpu") is substitute  # loaded once
    eps, attack = 0.25, dataclasses.replace(ATTACKS.get("transfer"), steps=10)
    result = run(attack, target, x, y, eps, seed=5)
    with torch.no_grad():
        correct = target(x).argmax(1) == y
    gens = [sample_generator(5, "transfer-Linf", i, 0) for i in correct.nonzero().flatten().tolist()]
    crafted = craft_on_substitute(substitute, x[correct], y[correct], eps, "Linf", 10, eps / 4, gens)
    with torch.no_grad():
        assert (substitute(crafted).argmax(1) != y[correct]).float().mean() > 0.9
        fooled = target(crafted).argmax(1) != y[correct]
    assert torch.equal(result.success[correct], fooled)
    assert torch.equal(result.x_adv[correct], crafted)
    assert result.success[~correct].all() and (result.norm[~correct] == 0).all()
    assert (result.n_forward[correct] == 10 + 2).all() and (result.n_backward[correct] == 10).all()


def test_transfer_needs_a_dataset_with_a_nominal_substitute(zoo, digits_test):
    x, y = digits_test.x[:2], digits_test.y[:2]
    model = toy(SoftmaxModel, dim=64, classes=10)
    with pytest.raises(RobbenchError, match="dataset"):
        run(ATTACKS.get("transfer"), model, x, y)
    model.dataset = "no-such-dataset"
    with pytest.raises(RobbenchError, match="nominal-no-such-dataset"):
        run(ATTACKS.get("transfer"), model, x, y)


# --- targeted ---------------------------------------------------------------------------


def test_targeted_pgd_reaches_targets_and_succeeds_exactly_when_one_is_reached(zoo, digits_test):
    model = zoo("nominal-digits")
    x, y = digits_test.x[:8], digits_test.y[:8]
    result = run(quick("pgd-targeted"), model, x, y, eps=0.15)
    assert isinstance(result, TargetedResult) and result.reached.shape == (8, 10)
    assert not result.reached[torch.arange(8), y].any()
    with torch.no_grad():
        clean_correct = model(x).argmax(1) == y
        pred = model(result.x_adv).argmax(1)
    assert torch.equal(result.success[clean_correct], result.reached.any(1)[clean_correct])
    assert 0 < result.reached.sum() < 8 * 9  # an informative budget
    # each success lands on a target it reached
    for i in result.success.nonzero().squeeze(1):
        assert result.reached[i, pred[i]]


def test_targeted_pgd_keeps_a_target_reached_at_an_intermediate_iterate():
    """Class 1 wins only in a band around 0.6 (as in test_attacks_pgd): sign steps of
    0.08 from 0.5 visit 0.58 and then overshoot; the point found must be kept."""

    class Band(nn.Module):
        def forward(self, x):
            v = x.flatten(1)[:, 0]
            return torch.stack([torch.zeros_like(v), 1 - 400 * (v - 0.6) ** 2], dim=1)

    attack = dataclasses.replace(ATTACKS.get("pgd-targeted"), steps=3, restarts=1,
                                 random_init=False)
    result = run(attack, Band(), torch.full((1, 1, 1, 1), 0.5), torch.tensor([0]), eps=0.32)
    assert result.success.item() and result.reached.tolist() == [[False, True]]
    assert result.x_adv.item() == pytest.approx(0.58)
