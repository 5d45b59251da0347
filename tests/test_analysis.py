"""`robbench analyze` (METHODS §4): the Lipschitz bound, the certified radius and its
soundness against PGD-L2, each analysis's plot, the 2D synthetic experiment."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robbench.zoo.lookup import load_model
from robbench.analysis import run_analysis
from robbench.analysis.common import AnalysisOptions, Inputs, attack, run_attack
from robbench.analysis.confusion import confusion_matrix
from robbench.analysis.feature_dist import feature_distance_matrix
from robbench.analysis.lipschitz import conv_norm_fft, conv_norm_power, lipschitz_bound
from robbench.analysis.match_rate import match, ward_clusters
from robbench.analysis.radius import (certified_accuracy, certified_radii, centre_rule, compute)
from robbench.analysis.synthetic import experiment
from robbench.cli import run
from robbench.errors import RobbenchError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK = dict(n_examples=20, steps=3, restarts=1)


@pytest.fixture(scope="module")
def clustr():
    return load_model("clustr-digits").model


def digits_inputs(model_id: str, n: int, digits_test) -> Inputs:
    model = load_model(model_id).model
    return Inputs(model_id, model, "digits", tuple(str(i) for i in range(10)), (1, 8, 8),
                  digits_test.x[:n], digits_test.y[:n], torch.device("cpu"))


# --- the Lipschitz bound ----------------------------------------------------------------------
def test_lipschitz_bound_exceeds_the_empirical_ratio_on_random_pairs(clustr, digits_test):
    bound = lipschitz_bound(clustr.body, (1, 8, 8)).value
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(100, 1, 8, 8, generator=gen), digits_test.x[:100]])
    x2 = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    with torch.no_grad():
        ratio = (clustr.features(x) - clustr.features(x2)).norm(dim=1) / (x - x2).flatten(1).norm(dim=1)
    assert ratio.max() <= bound and ratio.max() > 0


def test_conv_power_iteration_matches_the_dense_operator_norm():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    basis = torch.eye(3 * 36).view(-1, 3, 6, 6)
    dense = (F.conv2d(basis, conv.weight, None, 2, 1).flatten(1)).double()
    exact = torch.linalg.matrix_norm(dense, ord=2).item()
    assert math.isclose(conv_norm_power(conv, (3, 6, 6)), exact, rel_tol=1e-6)


def test_fft_bound_is_an_upper_bound_of_the_conv_norm():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 5, 3, padding=1)
    assert conv_norm_fft(conv, (2, 7, 7)) >= conv_norm_power(conv, (2, 7, 7)) * (1 - 1e-9)


def test_unknown_layers_have_no_bound():
    with pytest.raises(RobbenchError, match="no bound for layer"):
        lipschitz_bound(nn.Sequential(nn.Linear(2, 3), nn.GELU()), (2,))


# --- the certified radius -------------------------------------------------------------------------
@pytest.mark.parametrize("model_id", ["magnet-digits", "clustr-digits"])
def test_certified_accuracy_never_exceeds_pgd_l2_robust_accuracy(model_id, digits_test):
    inputs = digits_inputs(model_id, 24, digits_test)
    res = compute(inputs)
    positive = res.radius[res.correct & (res.radius > 0)]
    radii = [float(positive.median()), float(positive.max()) * 0.9, 0.5]
    correct = res.correct
    pgd = attack("pgd20-l2", AnalysisOptions(restarts=2))
    for rho, cert in zip(radii, certified_accuracy(res.radius, res.correct, radii)):
        fooled = run_attack(pgd, inputs.model, inputs.x, inputs.y, rho, 0).success
        assert not (fooled & (res.radius > rho)).any()  # no certified point is ever broken
        assert cert <= 100.0 * float((correct & ~fooled).float().mean())


def test_pgd_breaks_certificates_made_with_an_underestimated_lipschitz_bound(digits_test):
    """The soundness check above has teeth: with L_f / 100 some 'certified' point falls."""
    inputs = digits_inputs("clustr-digits", 24, digits_test)
    res = compute(inputs)
    f = inputs.model.features(inputs.x).detach()
    radius = certified_radii(f, inputs.model(inputs.x).argmax(1), res.rule, res.bound.value / 100)
    rho = float(radius[res.correct].median())
    fooled = run_attack(attack("pgd20-l2", AnalysisOptions(restarts=1)), inputs.model, inputs.x,
                        inputs.y, rho, 0).success
    assert (fooled & (radius > rho)).any()


def test_one_centre_per_class_radius_is_the_methods_formula(digits_test):
    mmc = load_model("mmc-digits").model
    lip = 3.0
    with torch.no_grad():
        f = mmc.features(digits_test.x[:10]).double()
    pred = mmc(digits_test.x[:10]).argmax(1)
    mu = mmc.centres.double()
    expected = []
    for fi in f:
        d2 = ((fi - mu) ** 2).sum(1)
        one = int(d2.argmin())
        expected.append(min((d2[j] - d2[one]) / (2 * lip * (mu[j] - mu[one]).norm())
                            for j in range(10) if j != one).item())
    radius = certified_radii(f, pred, centre_rule(mmc), lip)
    assert torch.allclose(radius, torch.tensor(expected, dtype=torch.float64))


def test_radius_refuses_models_without_a_nearest_centre_rule():
    with pytest.raises(RobbenchError, match="nearest centre"):
        centre_rule(load_model("mat-so-digits").model)


# --- the other analyses' pieces -------------------------------------------------------------------------
def test_feature_distance_rows_are_normalised_by_the_farthest_class():
    f = feature_distance_matrix(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]))
    assert torch.allclose(f.diag(), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(f.max(dim=1).values, torch.ones(3, dtype=torch.float64))
    assert math.isclose(f[0, 1].item(), 1 / 3)


def test_confusion_matrix_counts_targets_reached_from_each_true_class():
    reached = torch.tensor([[False, True, False], [False, True, True], [True, False, False]])
    m, counts = confusion_matrix(reached, torch.tensor([0, 0, 1]), torch.tensor([True, True, True]), 3)
    assert counts.tolist() == [2, 1, 0] and np.isnan(m[0, 0]) and np.isnan(m[2]).all()
    assert m[0, 1] == 1.0 and m[0, 2] == 0.5 and m[1, 0] == 1.0


def test_features_moved_into_another_class_cluster_match_their_prediction():
    gen = np.random.default_rng(0)
    clean = np.concatenate([gen.normal(0, 0.1, (20, 2)), gen.normal(5, 0.1, (20, 2))])
    pred = np.repeat([0, 1], 20)
    centroids, dominant = ward_clusters(clean, pred, 2)
    moved = clean[:20] + 5.0  # class-0 features pushed onto class 1's cluster, now predicted 1
    assert match(moved, np.ones(20, dtype=int), centroids, dominant).all()
    assert not match(clean[:20], np.ones(20, dtype=int), centroids, dominant).any()


def test_cosine_refuses_models_without_fixed_centres():
    with pytest.raises(RobbenchError, match="MAT or MMC"):
        run_analysis("cosine", ["clustr-digits"], AnalysisOptions(**QUICK))


# --- every analysis writes its plot ------------------------------------------------------------------------
@pytest.mark.parametrize("what, models", [
    ("radius", ["clustr-digits"]), ("match-rate", ["clustr-digits"]), ("cosine", ["mat-so-digits"]),
    ("weight-corr", ["clustr-digits"]), ("feature-dist", ["clustr-digits"]),
    ("confusion", ["clustr-digits"]), ("curve", ["clustr-digits", "nominal-digits"]),
])
def test_every_analysis_writes_its_plot(tmp_path, what, models):
    path = tmp_path / f"{what}.png"
    eps = [0.0, 0.2] if what == "curve" else None
    report = run_analysis(what, models, AnalysisOptions(plot=path, eps=eps, **QUICK))
    assert report.plot == str(path) and path.read_bytes()[:8] == PNG_MAGIC
    assert report.lines and json.dumps(report.as_dict())


def test_on_moons_the_warm_start_certifies_more_than_the_random_init(tmp_path):
    # METHODS 4.1 / ClusTR: CE pretraining before the magnet loss gives larger certified
    # radii. Here (seed 0, 5 epochs) at the largest reported radius the warm start
    # certifies 26.7% of the 60 test points and the random init none: a gap of 16 points,
    # far beyond what rounding in training can move.
    report = experiment("moons", n=200, epochs=5, plot=tmp_path / "moons.png")
    variants = report.data["variants"]
    assert set(variants) == {"random init", "warm start (CE pretraining)"}
    cold, warm = variants["random init"], variants["warm start (CE pretraining)"]
    assert cold["clean_acc"] > 80 and warm["clean_acc"] > 80
    assert warm["certified_acc"][-1] >= cold["certified_acc"][-1] + 10
    assert (tmp_path / "moons.png").read_bytes()[:8] == PNG_MAGIC


# --- the command line --------------------------------------------------------------------------------------
def test_cli_analyze_prints_json_and_writes_the_plot(tmp_path, capsys):
    plot = tmp_path / "f.png"
    assert run(["analyze", "--model", "clustr-digits", "--what", "feature-dist", "--n-examples", "60",
                "--plot", str(plot), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["analysis"] == "feature-dist" and len(out["F"]) == 10 and plot.exists()


@pytest.mark.parametrize("argv, pattern", [
    (["--model", "clustr-digits", "--what", "cosine", "--n-examples", "5"], "MAT or MMC"),
    (["--model", "clustr-digits", "--what", "radius", "--plot", "x.jpg"], ".png"),
    (["--what", "radius"], "--model is required"),
    (["--model", "clustr-digits", "--what", "weight-corr", "--synthetic", "moons"], "--synthetic"),
    (["--model", "clustr-digits", "--what", "curve", "--eps", "a,b"], "comma-separated"),
])
def test_cli_analyze_bad_input_is_one_error_line(tmp_path, capsys, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    assert run(["analyze", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and pattern in err[0], err
