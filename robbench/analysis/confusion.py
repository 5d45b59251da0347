"""Attack confusion matrix M (METHODS §4.3): M(i, j) = success rate of targeted PGD
(`pgd-targeted`: −CE toward each target t ≠ y, L∞, --eps or the protocol ε) from true
class i to class j, over the clean-correct test points of class i. Read from the
attack's `reached` (N, L); the diagonal is undefined (grey)."""

from __future__ import annotations

import numpy as np
import torch

from robbench.analysis.common import (AnalysisOptions, Report, attack, format_matrix, heatmap,
                                      load_inputs, one_eps, predict, pyplot, run_attack, save_figure,
                                      single_model)


def confusion_matrix(reached: torch.Tensor, y: torch.Tensor, correct: torch.Tensor,
                     num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(M (L, L) in [0, 1] with NaN diagonal and NaN rows for classes without
    clean-correct points, counts per class)."""
    reached, y, correct = reached.cpu(), y.cpu(), correct.cpu()
    m = np.full((num_classes, num_classes), np.nan)
    counts = np.zeros(num_classes, dtype=int)
    for i in range(num_classes):
        rows = reached[(y == i) & correct]
        counts[i] = len(rows)
        if len(rows):
            m[i] = rows.double().mean(dim=0).numpy()
        m[i, i] = np.nan
    return m, counts


def analyze(model_ids: list[str], opts: AnalysisOptions) -> Report:
    model_id = single_model(model_ids, "confusion")
    inputs = load_inputs(model_id, opts)
    eps = one_eps(opts, inputs.dataset)
    atk = attack("pgd-targeted", opts)
    correct = predict(inputs.model, inputs.x) == inputs.y
    result = run_attack(atk, inputs.model, inputs.x, inputs.y, eps, opts.seed)
    m, counts = confusion_matrix(result.reached, inputs.y, correct, inputs.num_classes)
    names = list(inputs.class_names)
    off = m[np.isfinite(m)]
    lines = [f"{model_id}: attack confusion matrix M (targeted PGD, {atk.steps} steps x {atk.restarts} "
             f"restarts, Linf eps={eps:.4g}) over {int(counts.sum())} clean-correct of "
             f"{len(inputs.y)} points",
             *format_matrix(m, names),
             f"mean off-diagonal success {100 * off.mean():.1f}%" if len(off) else "no clean-correct point"]
    easiest = [(names[i], names[int(np.nanargmax(m[i]))], m[i][np.isfinite(m[i])].max())
               for i in range(len(names)) if np.isfinite(m[i]).any()]
    lines.append("easiest target per class: "
                 + ", ".join(f"{a}->{b} ({100 * v:.0f}%)" for a, b, v in easiest))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 5.6))
    heatmap(fig, ax, m, [f"{n} (n={c})" for n, c in zip(names, counts)], names,
            title=f"Targeted-attack confusion M(i, j): {model_id}\n(PGD Linf eps={eps:.3g})",
            xlabel="target class j", ylabel="true class i", cbar_label="targeted success rate",
            cmap="viridis", vmin=0, vmax=1)
    plot = save_figure(fig, opts.plot)
    return Report("confusion", [model_id], lines,
                  {"n_examples": len(inputs.y), "eps": eps, "M": np.where(np.isfinite(m), m, None).tolist(),
                   "counts": counts.tolist(), "steps": atk.steps, "restarts": atk.restarts}, plot)
