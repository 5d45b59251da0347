"""Cosine similarity of features to the predicted class's centre, mean ± std, on clean
and PGD inputs (METHODS §4.2), for models with fixed class centres: MAT (whose rule is
the cosine itself) and MMC. PGD: pgd20, L∞, --eps or the protocol ε; its returned
points (the clean input where it failed). The cosine is also given for the fooled
samples alone: an attack that flips the decision while the feature stays far (in
angle) from every centre shows up there as a low similarity."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from robbench.analysis.common import (AnalysisOptions, Report, attack, features, load_inputs, one_eps,
                                      predict, pyplot, run_attack, save_figure, single_model)
from robbench.defenses.mat import MATModel
from robbench.defenses.mmc import MMCModel
from robbench.errors import RobbenchError


def class_centres(model: torch.nn.Module) -> torch.Tensor:
    if not isinstance(model, (MATModel, MMCModel)):
        raise RobbenchError(f"cosine needs a model with fixed class centres (MAT or MMC); "
                            f"{getattr(model, 'defense_id', type(model).__name__)!r} has none")
    return model.centres


def cosine_to_predicted(f: torch.Tensor, pred: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(f, centres[pred], dim=1, eps=1e-12)


def _stats(v: np.ndarray) -> dict[str, float | None]:
    if not len(v):
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}


def analyze(model_ids: list[str], opts: AnalysisOptions) -> Report:
    model_id = single_model(model_ids, "cosine")
    inputs = load_inputs(model_id, opts)
    model, x, y = inputs.model, inputs.x, inputs.y
    centres = class_centres(model)
    eps = one_eps(opts, inputs.dataset)
    pred_clean = predict(model, x)
    pgd = run_attack(attack("pgd20", opts), model, x, y, eps, opts.seed)
    x_adv = pgd.x_adv.to(x.device)
    pred_adv = predict(model, x_adv)
    fooled = (pgd.success & (pred_clean == y).cpu()).numpy()
    cos_clean = cosine_to_predicted(features(model, x), pred_clean, centres).cpu().numpy()
    cos_adv = cosine_to_predicted(features(model, x_adv), pred_adv, centres).cpu().numpy()
    stats = {"clean": _stats(cos_clean), "PGD": _stats(cos_adv), "PGD fooled": _stats(cos_adv[fooled]),
             "clean (of the fooled)": _stats(cos_clean[fooled])}
    lines = [f"{model_id}: cosine of f(x) to the predicted class's centre, {len(y)} test points; "
             f"PGD: pgd20 Linf eps={eps:.4g}, fooled {int(fooled.sum())}"]
    for name, s in stats.items():
        text = f"{s['mean']:.3f} ± {s['std']:.3f} (n={s['n']})" if s["n"] else "n/a"
        lines.append(f"  {name:22s}: {text}")
    plot = _plot(cos_clean, cos_adv, fooled, model_id, eps, opts.plot)
    return Report("cosine", [model_id], lines, {"n_examples": len(y), "eps": eps, "cosine": stats}, plot)


def _plot(clean: np.ndarray, adv: np.ndarray, fooled: np.ndarray, model_id: str, eps: float, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    low = max(-1.0, np.floor(10 * float(min(clean.min(), adv.min()))) / 10 - 0.1)
    bins = np.linspace(low, 1.0, 41)
    ax.hist(clean, bins=bins, alpha=0.6, label=f"clean: {clean.mean():.2f} ± {clean.std():.2f}")
    ax.hist(adv, bins=bins, alpha=0.6, label=f"PGD: {adv.mean():.2f} ± {adv.std():.2f}")
    if fooled.any():
        ax.hist(adv[fooled], bins=bins, histtype="step", lw=2, color="black",
                label=f"PGD, fooled only: {adv[fooled].mean():.2f} ± {adv[fooled].std():.2f}")
    ax.set_xlabel("cos(f(x), centre of the predicted class)")
    ax.set_ylabel("samples")
    ax.set_title(f"Feature cosine to the predicted centre: {model_id}\n(PGD-20 Linf eps={eps:.3g})")
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)
