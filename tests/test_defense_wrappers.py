"""Defense wrappers (METHODS §2): logits agree with each defense's own rule, ties
included; they stay finite and informative far from the centres; and a model rebuilds
from its JSON params plus its state_dict."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robbench.zoo.architectures import ARCHITECTURES
from robbench.defenses import DEFENSES, DefenseModel
from robbench.defenses.magnet import MagnetModel
from robbench.defenses.mat import MATModel
from robbench.defenses.mmc import MMCModel
from robbench.defenses.prototypes import PrototypeModel
from robbench.defenses.softmax import ATCModel, SoftmaxModel
from robbench.errors import RobbenchError


pytestmark = pytest.mark.usefixtures("one_thread")

MAGNET_IDS = ["magnet", "clustr", "clustr-qtrades"]
OTHER_IDS = ["mmc", "mat-ftc", "mat-so", "mat-bibo", "mat-so-bibo", "drp", "drp-l2", "drp-ref",
             "nominal", "at", "trades", "atc"]
ALL_IDS = MAGNET_IDS + OTHER_IDS
# what each id needs to be usable (and fast) in tests
NEEDED: dict[str, dict[str, Any]] = {
    "drp": {"steps": 20}, "drp-l2": {"steps": 20}, "drp-ref": {"steps": 20},
    "trades": {"eps": 0.2}, "atc": {"groups": [[0, 1, 8, 9], [2, 3, 4, 5, 6, 7]]},
}
ADAPTIVE = {
    "magnet": ("adaptive-magnet", "adaptive-margin"),
    "mmc": ("adaptive-mmc", "adaptive-margin", "adaptive-mmc-targeted"),
    "mat-ftc": ("adaptive-mat", "adaptive-margin"),
    "drp": ("adaptive-prototype", "adaptive-margin"),
    "trades": ("adaptive-trades", "adaptive-ce", "adaptive-dlr"),
    "at": ("adaptive-ce", "adaptive-dlr"),
    "atc": ("adaptive-ce", "adaptive-dlr"),
}


class FeatureStub(nn.Module):
    """Identity 'network': lets tests feed features straight to the wrapper."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.feature_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def build(defense_id: str, dim: int, num_classes: int = 10, **params: Any) -> DefenseModel:
    if defense_id == "atc" and num_classes != 10 and "groups" not in params:
        params["groups"] = [list(range(num_classes // 2)), list(range(num_classes // 2, num_classes))]
    params = {**NEEDED.get(defense_id, {}), **params}
    return DEFENSES.get(defense_id)(FeatureStub(dim), num_classes, **params).eval()


@torch.no_grad()
def set_class_vectors(model: DefenseModel, v: torch.Tensor) -> None:
    """Class k is represented by v_k (clusters j of magnet at (1 + 4j)·v_k, σ² = 1)."""
    if isinstance(model, MagnetModel):
        model.centres.copy_(torch.stack([v * (1 + 4 * j)
                                         for j in range(model.clusters_per_class)], dim=1))
        model.sigma2.fill_(1.0)
    elif isinstance(model, (MMCModel, MATModel)):
        model.centres.copy_(v)
    elif isinstance(model, PrototypeModel):
        model.prototypes.copy_(v)
    else:
        model.head.weight.copy_(v)
        model.head.bias.zero_()


@torch.no_grad()
def randomise(model: DefenseModel, gen: torch.Generator) -> torch.Tensor:
    """Random centres / prototypes / head (equal norms for MAT, as its logits require);
    returns the points features are drawn around."""
    num_classes, dim = model.num_classes, model.feature_dim
    scale = 10 ** (torch.rand(1, generator=gen).item() * 2 - 1)  # 0.1 .. 10
    if isinstance(model, MagnetModel):
        model.centres.copy_(scale * torch.randn(model.centres.shape, generator=gen))
        model.sigma2.fill_(10 ** (torch.rand(1, generator=gen).item() * 4 - 2))  # 0.01 .. 100
        return model.centres.flatten(0, 1)
    v = scale * torch.randn(num_classes, dim, generator=gen)
    if isinstance(model, MATModel):
        v = scale * F.normalize(v, dim=1)
    set_class_vectors(model, v)
    if isinstance(model, SoftmaxModel):
        model.head.bias.copy_(torch.randn(num_classes, generator=gen))
    return v


def random_features(anchors: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """Points near random anchors (decision boundaries) and far from all of them."""
    idx = torch.randint(len(anchors), (n,), generator=gen)
    spread = anchors.norm(dim=1).mean() * 10 ** (torch.rand(n, 1, generator=gen) * 3 - 2)
    f = anchors[idx] + spread * torch.randn(n, anchors.shape[1], generator=gen)
    far = torch.rand(n, generator=gen) < 0.1
    f[far] = f[far] * 1e3
    return f


def agreement_configs(defense_id: str):
    shapes = [(2, 2), (3, 5), (10, 10), (10, 32)]  # (classes, feature dim)
    if defense_id in MAGNET_IDS:
        for (num_classes, dim), k in itertools.product(shapes, [1, 2, 3]):
            for d_near in [None, 1, 2, 3, 5, num_classes * k]:
                yield num_classes, dim, {"clusters_per_class": k, "d_near": d_near}, 25
    else:
        for num_classes, dim in shapes:
            yield num_classes, dim, {}, 300


# --- logits vs native rule ---------------------------------------------------

@pytest.mark.parametrize("defense_id", ALL_IDS)
def test_logit_argmax_equals_native_rule_on_random_cases(defense_id):
    gen = torch.Generator().manual_seed(0)
    cases = 0
    for num_classes, dim, params, n in agreement_configs(defense_id):
        model = build(defense_id, dim, num_classes, **params)
        f = random_features(randomise(model, gen), n, gen)
        with torch.no_grad():
            by_logits = model.logits_from_features(f).argmax(1)
            native = model.native_predict_from_features(f)
        mismatch = (by_logits != native).nonzero().flatten().tolist()
        assert not mismatch, f"{defense_id} {params} L={num_classes} d={dim}: rows {mismatch}"
        cases += n
    assert cases >= 1000


def tie_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = [(i, {}) for i in OTHER_IDS]
    for k, d_near in itertools.product([1, 2, 3], [None, 1, 2, 3]):
        cases += [(i, {"clusters_per_class": k, "d_near": d_near}) for i in MAGNET_IDS]
    return cases


@pytest.mark.parametrize("defense_id,params", tie_cases())
def test_exact_ties_go_to_the_lower_class_index_in_both_rules(defense_id, params):
    """Class vectors 2·e_k (exact arithmetic): f = e_a + e_b is equidistant from
    classes a and b (equal cosine, equal logit); f = 0 ties every class; and with
    class 7 a duplicate of class 3, f = 2·e_3 ties 3 and 7. The lower index wins."""
    num_classes, dim = 10, 12
    model = build(defense_id, dim, num_classes, **params)
    vectors = 2 * torch.eye(num_classes, dim)
    vectors[7] = vectors[3]
    set_class_vectors(model, vectors)
    pairs = [(a, b) for a, b in itertools.combinations(range(num_classes), 2) if 7 not in (a, b)]
    basis = torch.eye(dim)
    f = torch.stack([basis[a] + basis[b] for a, b in pairs] + [torch.zeros(dim), 2 * basis[3]])
    expected = torch.tensor([a for a, _ in pairs] + [0, 3])
    with torch.no_grad():
        logits = model.logits_from_features(f)
        native = model.native_predict_from_features(f)
    # the rows really are ties at the top of the logits
    top = logits.max(dim=1).values
    ties = [(a, b) for a, b in pairs] + [(0, 1), (3, 7)]
    if params.get("d_near") is None:  # with D_near only the first of a tie is selected
        for row, (a, b) in enumerate(ties):
            assert logits[row, a] == top[row] and logits[row, b] == top[row], (row, a, b)
    assert torch.equal(logits.argmax(1), expected)
    assert torch.equal(native, expected)


def test_magnet_d_near_gives_classes_without_a_near_cluster_a_finite_lowest_logit():
    model = build("magnet", 4, 3, clusters_per_class=2, d_near=2)
    set_class_vectors(model, torch.eye(3, 4) * 3)
    # nearest: class 0's first cluster, then class 1's; class 2 has none among them
    f = torch.tensor([[3.0, 0.0, 0.0, 0.0]], requires_grad=True)
    z = model.logits_from_features(f)
    assert torch.isfinite(z).all()
    assert z[0, 2] < z[0, :2].min()
    assert model.native_predict_from_features(f).item() == z.argmax(1).item() == 0
    z.sum().backward()
    assert torch.isfinite(f.grad).all()


# --- numerical robustness ----------------------------------------------------

def far_cases() -> list[tuple[str, dict[str, Any]]]:
    return [(i, {}) for i in ALL_IDS] + [("magnet", {"d_near": 3}), ("magnet", {"clusters_per_class": 1})]


@pytest.mark.parametrize("defense_id,params", far_cases())
def test_features_far_from_every_centre_give_finite_distinct_logits_and_gradients(defense_id,
                                                                                  params):
    gen = torch.Generator().manual_seed(1)
    model = build(defense_id, 16, **params)
    randomise(model, gen)
    if isinstance(model, MagnetModel):
        model.sigma2.fill_(1.0)
    f = F.normalize(torch.randn(8, 16, generator=gen), dim=1).mul(1e4).requires_grad_(True)
    logits = model.logits_from_features(f)
    assert torch.isfinite(logits).all()
    assert (logits.max(1).values > logits.min(1).values).all(), "all logits equal"
    logits.max(1).values.sum().backward()  # the predicted class's logit
    assert torch.isfinite(f.grad).all()
    assert (f.grad.abs().sum(1) > 0).all()


def test_magnet_loss_far_from_every_centre_is_finite_with_a_nonzero_gradient():
    """exp(−||f − μ||²/(2σ²)) underflows here; a probability-space loss sticks at a constant."""
    gen = torch.Generator().manual_seed(2)
    model = build("magnet", 16)
    model.centres.copy_(torch.randn(model.centres.shape, generator=gen))
    model.sigma2.fill_(0.1)
    f = F.normalize(torch.randn(8, 16, generator=gen), dim=1).mul(1e3).requires_grad_(True)
    with torch.no_grad():
        assert torch.exp(model.cluster_scores(f)).max() == 0  # the regime we mean
        y = model.logits_from_features(f).argmin(1)  # misclassified: the loss is active
    loss = model.magnet_loss(f, y)
    assert torch.isfinite(loss).all() and (loss > 0).all()
    loss.sum().backward()
    assert torch.isfinite(f.grad).all() and (f.grad.abs().sum(1) > 0).all()
    with torch.no_grad():
        moved = model.magnet_loss(f - f.grad / f.grad.norm(dim=1, keepdim=True), y)
    assert (moved < loss.detach()).all()
    # and its value is the log-space one: shift by the largest exponent before exp
    for fi, yi, li in zip(f.detach().double(), y, loss.detach()):
        d2 = ((fi - model.centres.double()) ** 2).sum(-1) / (2 * 0.1)  # (L, K)
        others = [-d2[c, j].item() for c in range(10) if c != yi for j in range(2)]
        top = max(others)
        push = top + math.log(sum(math.exp(o - top) for o in others))
        assert li.item() == pytest.approx(12.5 + d2[yi].min().item() + push, rel=1e-3)


def test_magnet_loss_matches_a_naive_probability_space_reference():
    gen = torch.Generator().manual_seed(3)
    model = build("magnet", 6, 4, clusters_per_class=3, alpha=1.0).double()
    with torch.no_grad():
        model.centres.copy_(torch.randn(4, 3, 6, generator=gen, dtype=torch.float64))
        model.sigma2.fill_(0.7)
    f = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(4, (20,), generator=gen)
    expected = []
    for fi, yi in zip(f, y):
        d2 = ((fi - model.centres) ** 2).sum(-1) / (2 * 0.7)  # (L, K)
        own = d2[yi].min()
        others = sum(math.exp(-d2[c, j]) for c in range(4) if c != yi for j in range(3))
        expected.append(max(0.0, 1.0 + own.item() + math.log(others)))
    assert torch.allclose(model.magnet_loss(f, y), torch.tensor(expected, dtype=torch.float64))


# --- whole wrappers on a CNN ---------------------------------------------------

@pytest.mark.parametrize("defense_id", ALL_IDS)
def test_input_gradients_on_a_random_small_cnn_are_finite_and_nonzero(defense_id):
    torch.manual_seed(0)
    dim = 100 if defense_id.startswith("drp") else 32  # DRP: D = 10·L output units
    model = DEFENSES.get(defense_id)(ARCHITECTURES.get("small-cnn")(1, dim), 10,
                                     **NEEDED.get(defense_id, {})).eval()
    x = torch.rand(6, 1, 8, 8, requires_grad=True)
    y = torch.arange(6)
    logits = model(x)
    assert logits.shape == (6, 10)
    (logits * torch.randn(6, 10)).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum((1, 2, 3)) > 0).all()
    x.grad = None
    loss = model.loss(x, y)
    assert loss.shape == (6,)
    loss.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("defense_id", ALL_IDS)
def test_wrappers_return_logits_not_probabilities(defense_id):
    gen = torch.Generator().manual_seed(4)
    model = build(defense_id, 16)
    f = random_features(randomise(model, gen), 32, gen)
    z = model.logits_from_features(f)
    is_prob = ((z >= 0) & (z <= 1)).all() and torch.allclose(z.sum(1), torch.ones(32))
    assert not is_prob


# --- params, checkpoints, declared attacks ---------------------------------------

ROUND_TRIP = [(i, {}) for i in ALL_IDS] + [
    ("magnet", {"clusters_per_class": 3, "alpha": 2.0, "d_near": 4}),
    ("mat-so", {"alpha": 0.5, "centre_scale": 5.0}),
    ("mmc", {"centre_scale": 3.0}),
    ("drp-l2", {"steps": 5, "radius": 2.0, "seed": 3}),
    ("trades", {"beta": 1.0, "eps": 0.1}),
]


@pytest.mark.parametrize("defense_id,params", ROUND_TRIP)
def test_defense_params_and_state_dict_rebuild_the_same_model(defense_id, params):
    model = build(defense_id, 16, **params)
    randomise(model, torch.Generator().manual_seed(5))
    stored = json.loads(json.dumps(model.defense_params()))
    rebuilt = DEFENSES.get(defense_id)(FeatureStub(16), 10, **stored).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert rebuilt.defense_params() == stored
    f = torch.randn(5, 16)
    assert torch.equal(rebuilt.logits_from_features(f), model.logits_from_features(f))


@pytest.mark.parametrize("defense_id", ["magnet", "mmc", "mat-ftc", "drp"])
def test_fixed_and_estimated_tensors_are_buffers_saved_in_the_state_dict(defense_id):
    model = build(defense_id, 16)
    expected = {"magnet": {"centres", "sigma2"}, "mmc": {"centres"}, "mat-ftc": {"centres"},
                "drp": {"prototypes"}}[defense_id]
    buffers, parameters = dict(model.named_buffers()), dict(model.named_parameters())
    assert expected <= set(buffers) and not expected & set(parameters)  # no optimiser moves them
    state = model.state_dict()
    assert all(torch.equal(state[name], buffers[name]) for name in expected)


@pytest.mark.parametrize("defense_id,attacks", sorted(ADAPTIVE.items()))
def test_each_defense_declares_its_adaptive_attacks(defense_id, attacks):
    assert DEFENSES.get(defense_id).adaptive_attacks == attacks


def test_mat_variants_differ_only_in_their_default_weights():
    weights = {i: (build(i, 16).alpha, build(i, 16).beta)
               for i in ["mat-ftc", "mat-so", "mat-bibo", "mat-so-bibo"]}
    assert weights["mat-ftc"] == (0.0, 0.0)
    assert weights["mat-so"][0] > 0 and weights["mat-so"][1] == 0
    assert weights["mat-bibo"][0] == 0 and weights["mat-bibo"][1] > 0
    assert min(weights["mat-so-bibo"]) > 0


# --- defense-specific objectives ------------------------------------------------

def test_mat_second_order_term_equals_autograd_squared_gradient_norm_of_ftc():
    model = build("mat-so", 12).double()
    f = torch.randn(16, 12, dtype=torch.float64) * 3
    y = torch.randint(10, (16,))
    f_req = f.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model.ftc(f_req, y).sum(), f_req)
    assert torch.allclose(model.second_order(f, y), grad.pow(2).sum(1))


def test_mat_loss_adds_the_weighted_cosine_distance_to_the_reference_feature():
    model = build("mat-so-bibo", 12, alpha=0.5, beta=2.0)
    f, f_ref, y = torch.randn(4, 12), torch.randn(4, 12), torch.arange(4)
    expected = model.ftc(f, y) + 0.5 * model.second_order(f, y) + 2.0 * model.bibo_distance(f_ref, f)
    assert torch.allclose(model.mat_loss(f, y, f_ref), expected)
    assert torch.allclose(model.bibo_distance(f, f), torch.zeros(4), atol=1e-6)


def test_magnet_estimate_clusters_finds_the_blobs_and_the_pooled_variance():
    gen = torch.Generator().manual_seed(6)
    means = torch.tensor([[[0.0, 0.0], [10.0, 0.0]], [[0.0, 10.0], [10.0, 10.0]],
                          [[20.0, 0.0], [20.0, 10.0]]])  # (L=3, K=2, d=2)
    labels = torch.arange(3).repeat_interleave(100)
    blob = torch.arange(2).repeat(150)
    f = means[labels, blob] + 0.5 * torch.randn(300, 2, generator=gen)
    model = build("clustr", 2, 3)
    model.estimate_clusters(f, labels)
    found = model.centres.sort(dim=1).values  # K order is arbitrary; x-coords differ per blob
    assert torch.allclose(found, means.sort(dim=1).values, atol=0.3)
    nearest = model.centres[labels, model.assign_clusters(f, labels) % 2]
    expected = (f - nearest).pow(2).sum(1).sum() / 299
    assert model.sigma2.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(model.native_predict_from_features(f), labels)


def test_drp_refuses_prototypes_of_another_dimension_than_the_network_output():
    with pytest.raises(RobbenchError, match="feature_dim = 50"):
        build("drp", 100, prototype_dim=50)


def test_drp_loss_is_the_distance_to_the_own_prototype():
    model = build("drp", 8, 3)
    f, y = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    expected = (f - model.prototypes[y]).abs().amax(1)
    assert torch.allclose(model.loss(f, y), expected)


def test_trades_loss_needs_eps_to_build_its_adversary():
    with pytest.raises(ValueError, match="eps"):
        build("trades", 8, eps=None).loss(torch.rand(2, 8), torch.tensor([0, 1]))


def test_trades_adversary_stays_in_the_eps_ball_and_the_unit_box():
    model = build("trades", 8, eps=0.1)
    x = torch.rand(6, 8)
    x_adv = model.trades_adversary(x)
    assert ((x_adv - x).abs() <= 0.1 + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1


def test_atc_regulariser_sums_squared_deviations_from_each_group_mean():
    model: ATCModel = build("atc", 8, 4, groups=[[0, 2], [1, 3]])  # type: ignore[assignment]
    z = torch.tensor([[1.0, 0.0, 3.0, 4.0]])
    # group {0,2}: mean 2 -> 1 + 1; group {1,3}: mean 2 -> 4 + 4
    assert model.cluster_regulariser(z).item() == pytest.approx(10.0)


def test_atc_refuses_to_train_without_a_class_hierarchy():
    model = DEFENSES.get("atc")(FeatureStub(8), 10)
    with pytest.raises(ValueError, match="groups"):
        model.loss(torch.randn(2, 8), torch.tensor([0, 1]))
