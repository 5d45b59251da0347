"""Certified radius and certified accuracy of nearest-centre classifiers (METHODS §4.1).

For features f = f(x) with an L2 Lipschitz bound L_f (robbench.analysis.lipschitz),
centres μ and the predicted class c:

    r(x) = max_{a ∈ c} min_{j ∉ c} (||f − μ_j||² − ||f − μ_a||² − s) / (2·L_f·||μ_j − μ_a||)

(0 when negative), and certified accuracy at radius ρ is the share of test points
classified correctly with r(x) > ρ.

Soundness. g(f') = ||f' − μ_j||² − ||f' − μ_a||² = ||μ_j||² − ||μ_a||² − 2<f', μ_j − μ_a>
is affine in f' with gradient norm 2||μ_j − μ_a||; for ||x' − x|| ≤ ρ < r(x),
||f(x') − f(x)|| ≤ L_f ρ, so g(f(x')) > s for every other-class centre j: μ_a stays
closer than any other-class centre by a squared-distance margin s. The slack s makes
this decide the model's own rule:
- one centre per class (MMC z_c = −||f − μ_c||², DRP-L2 z_c = −||f − p_c||, magnet /
  ClusTR with K = 1): s = 0, the wrapper's argmax is the nearest centre, and r is
  exactly METHODS' formula with μ_1 the nearest centre;
- magnet / ClusTR with K > 1 centres per class (the soft rule
  z_c = logsumexp_j −||f − μ_{c,j}||²/(2σ²), which is the native rule too):
  z_c ≤ max_j(−||f − μ_{c,j}||²/(2σ²)) + log K and z_pred ≥ −||f − μ_a||²/(2σ²), so
  s = 2σ²·log K guarantees z_pred > z_c for every other class c. Each own-class
  centre a gives a valid certificate, hence the max over a.
The certificate is for the wrapper's decision, the one attacks are scored against,
so certified accuracy can never exceed an attack's robust accuracy at the same L2
radius (tests check it against PGD-L2). It is only as sound as L_f: `--lipschitz`
"power" (METHODS' power iteration, a converged estimate) or "fft" (certified).
Models with a D_near restriction, cosine rules (MAT), L∞ prototypes (DRP) or softmax
heads are refused: the bound above does not describe their decision.

`--synthetic moons|circles` runs the 2D experiment instead (robbench.analysis.synthetic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from robbench.analysis.common import (AnalysisOptions, Inputs, Report, attack, features, load_inputs, predict,
                                      pyplot, run_attack, save_figure, single_model)
from robbench.analysis.lipschitz import LipschitzBound, lipschitz_bound
from robbench.defenses.magnet import MagnetModel
from robbench.defenses.mmc import MMCModel
from robbench.defenses.prototypes import PrototypeModel, PrototypeRefModel
from robbench.errors import RobbenchError


@dataclass
class CentreRule:
    centres: torch.Tensor  # (M, d)
    centre_class: torch.Tensor  # (M,)
    slack: float  # s in squared feature distance
    description: str


def centre_rule(model: torch.nn.Module) -> CentreRule:
    """The model's decision as a nearest-centre rule (see the module docstring)."""
    name = getattr(model, "defense_id", type(model).__name__)
    if isinstance(model, MagnetModel):
        if model.d_near is not None:
            raise RobbenchError(f"radius: {name} restricts its rule to the D_near={model.d_near} "
                                "nearest clusters; the certificate covers the unrestricted rule only")
        L, K, d = model.centres.shape
        sigma2 = float(model.sigma2)
        slack = 2 * sigma2 * math.log(K)
        text = ("one centre per class: nearest-centre rule, exact" if K == 1 else
                f"K={K} centres per class, soft rule: sound bound with slack 2σ²·log K = {slack:.4g}")
        return CentreRule(model.centres.detach().reshape(L * K, d).double().cpu(),
                          torch.arange(L).repeat_interleave(K), slack, text)
    if isinstance(model, MMCModel):
        c = model.centres.detach().double().cpu()
        return CentreRule(c, torch.arange(len(c)), 0.0, "MMC: nearest centre, exact")
    if isinstance(model, PrototypeModel) and not isinstance(model, PrototypeRefModel) \
            and model.distance == "l2":
        p = model.prototypes.detach().double().cpu()
        return CentreRule(p, torch.arange(len(p)), 0.0, "DRP-L2: nearest prototype, exact")
    raise RobbenchError(
        f"radius needs a classifier that decides by the nearest centre in feature space "
        f"(magnet, clustr, clustr-qtrades, mmc, drp-l2); {name!r} does not")


def certified_radii(f: torch.Tensor, pred: torch.Tensor, rule: CentreRule, lipschitz: float) -> torch.Tensor:
    """r(x) per sample (float64, ≥ 0) from features f (N, d) and predicted classes."""
    f = f.detach().double().cpu()
    pred = pred.cpu()
    c = rule.centres
    d2 = torch.cdist(f, c).pow(2)  # (N, M)
    gap = torch.cdist(c, c)  # (M, M)
    own = rule.centre_class[None, :] == pred[:, None]  # (N, M)
    # margin[n, a, j] = d2[n, j] − d2[n, a] − s over own a and other-class j
    margin = d2[:, None, :] - d2[:, :, None] - rule.slack
    r = margin / (2 * lipschitz * gap[None].clamp_min(1e-300))
    r = r.masked_fill(own[:, None, :], math.inf)  # j must be another class's centre
    per_a = r.amin(dim=2).masked_fill(~own, -math.inf)
    return per_a.amax(dim=1).clamp_min(0.0)


def certified_accuracy(radius: torch.Tensor, correct: torch.Tensor,
                       at: list[float] | np.ndarray) -> np.ndarray:
    """Share (in %) of points classified correctly with r(x) > ρ, for each ρ in `at`."""
    r, ok = radius.cpu().numpy(), correct.cpu().numpy().astype(bool)
    return np.array([100.0 * float((ok & (r > rho)).mean()) for rho in at])


def curve_grid(radius: torch.Tensor, points: int = 200) -> np.ndarray:
    top = float(radius.max()) if len(radius) and float(radius.max()) > 0 else 1.0
    return np.linspace(0.0, 1.05 * top, points)


def default_radii(radius: torch.Tensor, correct: torch.Tensor) -> list[float]:
    """Quartiles of the certified radii of the correct points (3 significant digits)."""
    r = radius[correct.cpu()]
    r = r[r > 0]
    if len(r) == 0:
        return [0.01, 0.1]
    qs = torch.quantile(r, torch.tensor([0.25, 0.5, 0.75], dtype=r.dtype)).tolist()
    return sorted({float(f"{q:.3g}") for q in qs})


def empirical_accuracy(inputs: Inputs, radii: list[float], opts: AnalysisOptions) -> list[float]:
    """Robust accuracy (%) under PGD-L2 (pgd20-l2) at each radius."""
    atk = attack("pgd20-l2", opts)
    correct = (predict(inputs.model, inputs.x) == inputs.y).cpu()
    out = []
    for rho in radii:
        res = run_attack(atk, inputs.model, inputs.x, inputs.y, rho, opts.seed)
        out.append(100.0 * float((correct & ~res.success).float().mean()))
    return out


@dataclass
class RadiusResult:
    radius: torch.Tensor
    correct: torch.Tensor
    bound: LipschitzBound
    rule: CentreRule


def compute(inputs: Inputs, lipschitz_method: str = "power") -> RadiusResult:
    rule = centre_rule(inputs.model)
    bound = lipschitz_bound(inputs.model.body, inputs.input_shape, lipschitz_method)
    pred = predict(inputs.model, inputs.x)
    radius = certified_radii(features(inputs.model, inputs.x), pred, rule, bound.value)
    return RadiusResult(radius, (pred == inputs.y).cpu(), bound, rule)


def plot_curves(curves: list[tuple[str, np.ndarray, np.ndarray]], title: str, path,
                points: list[tuple[str, list[float], list[float]]] = ()) -> str | None:
    """Certified accuracy (%) vs L2 radius; optional empirical points (label, ρs, acc)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, grid, acc in curves:
        ax.plot(grid, acc, lw=2, label=label)
    for label, rhos, acc in points:
        ax.plot(rhos, acc, "o--", label=label)
    ax.set_xlabel("L2 radius ρ (input space)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def analyze(model_ids: list[str], opts: AnalysisOptions, lipschitz_method: str = "power",
            empirical: bool = True) -> Report:
    """Certified radii of one zoo model; --eps gives the radii to report (default: the
    quartiles of the certified radii), each also attacked by PGD-L2 for comparison."""
    model_id = single_model(model_ids, "radius")
    inputs = load_inputs(model_id, opts)
    res = compute(inputs, lipschitz_method)
    radii = opts.eps or default_radii(res.radius, res.correct)
    cert = certified_accuracy(res.radius, res.correct, radii)
    emp = empirical_accuracy(inputs, radii, opts) if empirical else None
    n = len(inputs.y)
    clean = 100.0 * float(res.correct.float().mean())
    r_ok = res.radius[res.correct]
    lines = [f"{model_id}: certified radius (L2, input space) on {n} test points, "
             f"clean accuracy {clean:.1f}%",
             f"rule: {res.rule.description}",
             res.bound.describe(),
             f"radius of correct points: median {float(r_ok.median()) if len(r_ok) else 0:.4g}, "
             f"max {float(r_ok.max()) if len(r_ok) else 0:.4g}"]
    for i, rho in enumerate(radii):
        tail = f", PGD-L2 robust accuracy {emp[i]:.1f}%" if emp else ""
        lines.append(f"  rho={rho:.4g}: certified accuracy {cert[i]:.1f}%{tail}")
    grid = curve_grid(res.radius)
    plot = plot_curves(
        [(f"certified (L_f={res.bound.value:.3g})", grid, certified_accuracy(res.radius, res.correct, grid))],
        f"Certified accuracy vs L2 radius: {model_id} (n={n})\n"
        f"L_f={res.bound.value:.3g} ({lipschitz_method}); {res.rule.description.split(':')[0]}", opts.plot,
        [("PGD-L2 robust accuracy (empirical)", list(radii), emp)] if emp else [])
    data = {"n_examples": n, "clean_acc": clean, "rule": res.rule.description,
            "lipschitz": res.bound.as_dict(), "radii": list(radii),
            "certified_acc": cert.tolist(), "empirical_pgd_l2_acc": emp,
            "radius_per_sample": res.radius.tolist()}
    return Report("radius", [model_id], lines, data, plot)
