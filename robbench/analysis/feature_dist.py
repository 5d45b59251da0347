"""Feature distance matrix F (METHODS §4.3): with Z_c the mean feature of the test
points of true class c, F(a, b) = ||Z_a − Z_b|| / max_{c≠a} ||Z_a − Z_c||. Row a is
normalised by its farthest other class, so F(a, b) = 1 marks a's farthest class and
small entries the classes whose features sit closest to a's. Not symmetric."""

from __future__ import annotations

import math

import numpy as np
import torch

from robbench.analysis.common import (AnalysisOptions, Report, features, format_matrix, heatmap,
                                      load_inputs, pyplot, save_figure, single_model)
from robbench.errors import RobbenchError


def class_means(f: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Z (L, d); NaN rows for classes without test points among the first N."""
    z = torch.full((num_classes, f.shape[1]), float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        if (y == c).any():
            z[c] = f[y == c].double().mean(dim=0)
    return z


def feature_distance_matrix(z: torch.Tensor) -> torch.Tensor:
    """F (L, L); rows and columns of classes with NaN means are NaN."""
    z = z.double()
    d = (z[:, None, :] - z[None, :, :]).norm(dim=-1)
    off = d.clone().fill_diagonal_(float("nan"))
    farthest = torch.where(off.isnan(), torch.tensor(-math.inf, dtype=d.dtype), off).amax(dim=1, keepdim=True)
    return d / farthest.clamp_min(1e-300)


def analyze(model_ids: list[str], opts: AnalysisOptions) -> Report:
    model_id = single_model(model_ids, "feature-dist")
    if opts.eps:
        raise RobbenchError("--eps has no meaning for feature-dist (no attack is run)")
    inputs = load_inputs(model_id, opts)
    z = class_means(features(inputs.model, inputs.x).cpu(), inputs.y.cpu(), inputs.num_classes)
    fmat = feature_distance_matrix(z).numpy()
    names = list(inputs.class_names)
    missing = [names[c] for c in range(len(names)) if not (inputs.y == c).any()]
    off = np.where(np.eye(len(names), dtype=bool), np.nan, fmat)
    nearest = [names[int(np.nanargmin(row))] if np.isfinite(row).any() else "-" for row in off]
    lines = [f"{model_id}: feature distance matrix F (class means of {len(inputs.y)} test points, "
             f"row-normalised by the farthest other class)", *format_matrix(fmat, names),
             "nearest class in feature space: " + ", ".join(f"{a}->{b}" for a, b in zip(names, nearest))]
    if missing:
        lines.append(f"no test point of class(es) {', '.join(missing)} among the first {len(inputs.y)}: "
                     "their rows and columns are empty (raise --n-examples)")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 5.6))
    heatmap(fig, ax, fmat, names, names, title=f"Feature distance F(a, b): {model_id}",
            xlabel="class b", ylabel="class a", cbar_label="||Z_a − Z_b|| / distance to the farthest class",
            cmap="viridis", vmin=0, vmax=1)
    plot = save_figure(fig, opts.plot)
    return Report("feature-dist", [model_id], lines,
                  {"n_examples": len(inputs.y), "F": np.where(np.isfinite(fmat), fmat, None).tolist(),
                   "nearest_class": nearest, "classes_without_points": missing}, plot)
