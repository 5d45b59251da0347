"""Robust accuracy vs ε under PGD-20 (pgd20: L∞, CE, step ε/4, 10 restarts) for one or
several models (`--model a,b`) on one plot. --eps is the grid (default: 0 and eight
budgets up to twice the dataset's protocol ε); ε = 0 is the clean accuracy."""

from __future__ import annotations

import numpy as np

from robbench.analysis.common import (AnalysisOptions, Report, attack, load_inputs, predict, protocol_eps,
                                      pyplot, run_attack, save_figure)
from robbench.errors import RobbenchError


def default_grid(dataset: str) -> list[float]:
    top = 2 * protocol_eps(dataset, "Linf")
    return [0.0] + [float(f"{v:.4g}") for v in np.linspace(top / 8, top, 8)]


def robust_accuracy_curve(inputs, grid: list[float], opts: AnalysisOptions) -> list[float]:
    atk = attack("pgd20", opts)
    correct = (predict(inputs.model, inputs.x) == inputs.y).cpu()
    out = []
    for eps in grid:
        if eps == 0:
            out.append(100.0 * float(correct.float().mean()))
            continue
        res = run_attack(atk, inputs.model, inputs.x, inputs.y, eps, opts.seed)
        out.append(100.0 * float((correct & ~res.success).float().mean()))
    return out


def analyze(model_ids: list[str], opts: AnalysisOptions) -> Report:
    if not model_ids:
        raise RobbenchError("curve needs --model ID[,ID...]")
    if opts.checkpoint is not None and len(model_ids) > 1:
        raise RobbenchError(f"--checkpoint goes with one --model; got {len(model_ids)} "
                            f"({', '.join(model_ids)})")
    loaded = [load_inputs(m, opts) for m in model_ids]
    datasets = {i.dataset for i in loaded}
    if len(datasets) > 1:
        raise RobbenchError(f"curve compares models of one dataset; got {', '.join(sorted(datasets))}")
    if opts.eps and any(e < 0 or e > 1 for e in opts.eps):
        raise RobbenchError("--eps values for curve must lie in [0, 1] (L∞ budgets)")
    grid = sorted(opts.eps) if opts.eps else default_grid(loaded[0].dataset)
    curves = {i.model_id: robust_accuracy_curve(i, grid, opts) for i in loaded}
    atk = attack("pgd20", opts)
    lines = [f"robust accuracy (%) under PGD-{atk.steps} ({atk.restarts} restarts, Linf) on "
             f"{len(loaded[0].y)} test points of {loaded[0].dataset}",
             ]
    width = max(len(m) for m in curves) + 1
    lines.append("eps".ljust(width) + " ".join(f"{e:>7.4g}" for e in grid))
    lines += [f"{m}:".ljust(width) + " ".join(f"{a:7.1f}" for a in acc) for m, acc in curves.items()]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    for m, acc in curves.items():
        ax.plot(grid, acc, "o-", lw=2, label=m)
    ax.axvline(protocol_eps(loaded[0].dataset, "Linf"), color="grey", ls=":", label="protocol eps")
    ax.set_xlabel("Linf budget eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.set_title(f"Robust accuracy vs eps, PGD-{atk.steps} ({loaded[0].dataset}, n={len(loaded[0].y)})")
    ax.legend(fontsize=8)
    plot = save_figure(fig, opts.plot)
    return Report("curve", list(model_ids), lines,
                  {"n_examples": len(loaded[0].y), "eps": grid, "robust_acc": curves}, plot)
