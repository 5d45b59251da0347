"""Linearised-network class directions W and their correlation matrix C (METHODS §4.3):
W_j = ∇_x of the linearised logit j (robbench.analysis.linearization), C = Ŵ Ŵᵀ with rows
L2-normalised, and the class groups of C_op = sign(C) (`class_groups`, as AT+C uses).

Models whose logits are not affine in the features (distance-based: magnet/ClusTR,
MMC, DRP) do not become affine when activations are removed: z_j = −||f − μ_j||²
linearises to a quadratic whose gradient −2Jᵀ(f − μ_j) has a class-independent part
−2Jᵀf. That shared part does not change any decision but dominates every row, so
for such models W is centred (the mean over classes subtracted from each row),
leaving 2Jᵀ(μ_j − μ̄), which does not depend on x for one centre per class. Models
with affine logits (softmax heads, MAT) use METHODS' W unchanged."""

from __future__ import annotations

import math

import numpy as np
import torch

from robbench.analysis.common import (AnalysisOptions, Report, format_matrix, heatmap, pyplot, save_figure,
                                      single_model)
from robbench.analysis.linearization import class_directions, class_groups, correlation_matrix
from robbench.datasets import DATASETS
from robbench.errors import RobbenchError
from robbench.zoo.lookup import MODELS, load_model


def logits_affine_in_features(model: torch.nn.Module, trials: int = 3) -> bool:
    """Numerically: z(a + b) − z(a) − z(b) + z(0) = 0 for random features a, b."""
    if not hasattr(model, "logits_from_features"):
        return True
    gen = torch.Generator().manual_seed(0)
    ref = next(iter([*model.parameters(), *model.buffers()]))
    d = model.feature_dim
    with torch.no_grad():
        a, b = (torch.randn(trials, d, generator=gen).to(ref) for _ in range(2))
        z = model.logits_from_features
        gap = z(a + b) - z(a) - z(b) + z(torch.zeros_like(a))
        scale = z(a).abs().max() + z(b).abs().max() + 1e-6
    return bool(gap.abs().max() <= 1e-4 * scale)


def directions(model: torch.nn.Module, input_shape: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
    """(W (L x n), centred?)."""
    w = class_directions(model, input_shape)  # on the CPU, as analyze loads it
    if logits_affine_in_features(model):
        return w, False
    return w - w.mean(dim=0, keepdim=True), True


def analyze(model_ids: list[str], opts: AnalysisOptions) -> Report:
    model_id = single_model(model_ids, "weight-corr")
    if opts.eps:
        raise RobbenchError("--eps has no meaning for weight-corr (no attack is run)")
    entry = MODELS.get(model_id)
    spec = DATASETS.get(entry.dataset)
    model = load_model(model_id, checkpoint=opts.checkpoint).model.eval()
    w, centred = directions(model, tuple(spec.input_shape))
    c = correlation_matrix(w).detach().numpy()
    groups = class_groups(torch.as_tensor(c))
    names = list(spec.class_names)
    lines = [f"{model_id}: correlation C of the linearised class directions W "
             f"({'rows centred over classes: distance-based logits' if centred else 'as METHODS §4.3'})",
             *format_matrix(c, names),
             "class groups of sign(C): "
             + "  ".join("{" + ",".join(names[i] for i in g) + "}" for g in groups)]
    plot = _plot(w.detach().numpy(), c, names, tuple(spec.input_shape), model_id, centred, opts.plot)
    return Report("weight-corr", [model_id], lines,
                  {"centred": centred, "C": c.tolist(), "groups": groups,
                   "W_row_norms": w.norm(dim=1).tolist()}, plot)


def _plot(w: np.ndarray, c: np.ndarray, names, input_shape, model_id: str, centred: bool, path):
    """C as a heatmap (left) and, for image inputs, each W row as an image (right)."""
    plt = pyplot()
    L = len(names)
    image = len(input_shape) == 3 and input_shape[0] in (1, 3)
    if not image:
        fig, ax = plt.subplots(figsize=(6.6, 5.6))
        heatmap(fig, ax, c, names, names, title=f"C = ŴŴᵀ (linearised): {model_id}", xlabel="class",
                ylabel="class", cbar_label="correlation of class directions", cmap="RdBu_r", vmin=-1, vmax=1)
        return save_figure(fig, path)
    cols = min(5, L)
    rows = math.ceil(L / cols)
    fig = plt.figure(figsize=(13, max(5.4, 1.7 * rows + 2)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 1.15])
    ax = left.subplots()
    heatmap(left, ax, c, names, names, title=f"C = ŴŴᵀ (linearised network): {model_id}",
            xlabel="class", ylabel="class", cbar_label="correlation of class directions",
            cmap="RdBu_r", vmin=-1, vmax=1)
    axes = np.atleast_1d(right.subplots(rows, cols)).ravel()
    limit = float(np.abs(w).max()) or 1.0
    for j, a in enumerate(axes):
        a.set_xticks([])
        a.set_yticks([])
        if j >= L:
            a.axis("off")
            continue
        img = w[j].reshape(input_shape)
        img = img[0] if input_shape[0] == 1 else img.mean(axis=0)
        im = a.imshow(img, cmap="RdBu_r", vmin=-limit, vmax=limit)
        a.set_title(f"W[{names[j]}]", fontsize=10)
    bar = right.colorbar(im, ax=axes.tolist(), shrink=0.8)
    bar.set_label("∂ linearised logit / ∂ pixel" + (" (centred over classes)" if centred else ""))
    right.suptitle("class directions W (rows as images)")
    return save_figure(fig, path, tight_layout=False)
