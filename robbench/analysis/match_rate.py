"""Feature clustering match rate (METHODS §4.2) on clean, PGD and DDN inputs.

Clusters come from Ward hierarchical clustering (sklearn AgglomerativeClustering,
linkage="ward") of the CLEAN features, one cluster per class by default; each
cluster's dominant predicted class is the most frequent clean prediction among its
members. For every input set (clean, PGD, DDN) each sample is assigned to the nearest
cluster centroid (mean of the cluster's clean features); the match rate is the share
of samples whose nearest cluster's dominant predicted class equals the model's
prediction on that input. A high rate on adversarial inputs means the attack moved the
feature into the other class's cluster; a low rate means the decision changed while
the feature stayed among the true class's features (or off the clusters).

PGD: pgd20 (L∞, --eps or the protocol ε). DDN: ddn (minimum-norm L2, unbounded): its
returned points are used whatever their norm. Samples an attack did not fool keep
their clean input; rates are given over all samples and over the fooled ones.
"""

from __future__ import annotations

import numpy as np

from robbench.analysis.common import (AnalysisOptions, Report, attack, features, load_inputs, one_eps,
                                      predict, protocol_eps, pyplot, run_attack, save_figure,
                                      single_model)


def ward_clusters(f_clean: np.ndarray, pred_clean: np.ndarray,
                  n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k, d), dominant predicted class per cluster (k,))."""
    from sklearn.cluster import AgglomerativeClustering

    k = min(n_clusters, len(f_clean))
    labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(f_clean)
    centroids = np.stack([f_clean[labels == c].mean(axis=0) for c in range(k)])
    dominant = np.array([np.bincount(pred_clean[labels == c]).argmax() for c in range(k)])
    return centroids, dominant


def match(f: np.ndarray, pred: np.ndarray, centroids: np.ndarray, dominant: np.ndarray) -> np.ndarray:
    """Per sample: the nearest centroid's dominant predicted class equals `pred`."""
    d2 = ((f[:, None, :] - centroids[None]) ** 2).sum(-1)
    return dominant[d2.argmin(axis=1)] == pred


def _rate(values: np.ndarray) -> float | None:
    return 100.0 * float(values.mean()) if len(values) else None


def analyze(model_ids: list[str], opts: AnalysisOptions, n_clusters: int | None = None) -> Report:
    model_id = single_model(model_ids, "match-rate")
    inputs = load_inputs(model_id, opts)
    model, x, y = inputs.model, inputs.x, inputs.y
    eps = one_eps(opts, inputs.dataset)
    k = n_clusters or inputs.num_classes
    f_clean = features(model, x).double().cpu().numpy()
    pred_clean = predict(model, x).cpu().numpy()
    centroids, dominant = ward_clusters(f_clean, pred_clean, k)
    sets = {"clean": (x, np.zeros(len(y), dtype=bool))}
    pgd = run_attack(attack("pgd20", opts), model, x, y, eps, opts.seed)
    sets["PGD"] = (pgd.x_adv.to(x.device), pgd.success.numpy() & (pred_clean == y.cpu().numpy()))
    ddn_eps = protocol_eps(inputs.dataset, "L2")
    ddn = run_attack(attack("ddn", opts), model, x, y, ddn_eps, opts.seed)
    ddn_fooled = np.isfinite(ddn.norm.numpy()) & (ddn.norm.numpy() > 0)
    sets["DDN"] = (ddn.x_adv.to(x.device), ddn_fooled)
    rates, lines = {}, [f"{model_id}: match rate of Ward clusters ({k} clusters of {len(y)} clean "
                        f"features, linkage=ward) - PGD: pgd20 Linf eps={eps:.4g}; DDN: minimum-norm L2"]
    for name, (xs, fooled) in sets.items():
        f = features(model, xs).double().cpu().numpy()
        pred = predict(model, xs).cpu().numpy()
        ok = match(f, pred, centroids, dominant)
        rates[name] = {"match_rate": _rate(ok), "match_rate_fooled": _rate(ok[fooled]),
                       "fooled": int(fooled.sum()), "n": len(ok)}
        on_fooled = f"{rates[name]['match_rate_fooled']:.1f}%" if fooled.any() else "n/a"
        tail = "" if name == "clean" else f"; on the {int(fooled.sum())} fooled samples: {on_fooled}"
        lines.append(f"  {name:5s}: {rates[name]['match_rate']:.1f}% of {len(ok)}{tail}")
    if ddn_fooled.any():
        median = float(np.median(ddn.norm.numpy()[ddn_fooled]))
        lines.append(f"  DDN median L2 norm over fooled samples: {median:.3g}")
    plot = _plot(rates, model_id, k, eps, opts.plot)
    return Report("match-rate", [model_id], lines,
                  {"n_examples": len(y), "n_clusters": k, "eps": eps, "rates": rates}, plot)


def _plot(rates: dict, model_id: str, k: int, eps: float, path) -> str | None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    names = list(rates)
    pos = np.arange(len(names))
    allv = [rates[n]["match_rate"] for n in names]
    fooled = [rates[n]["match_rate_fooled"] if rates[n]["match_rate_fooled"] is not None else np.nan
              for n in names]
    b1 = ax.bar(pos - 0.2, allv, 0.4, label="all samples", color="#4c72b0")
    b2 = ax.bar(pos + 0.2, fooled, 0.4, label="fooled samples only", color="#dd8452")
    for bars in (b1, b2):
        for b in bars:
            h = b.get_height()
            if np.isfinite(h):
                ax.text(b.get_x() + b.get_width() / 2, h + 1, f"{h:.0f}%", ha="center", fontsize=8)
    ax.set_xticks(pos, labels=[f"{n}\n(fooled {rates[n]['fooled']}/{rates[n]['n']})" for n in names])
    ax.set_ylabel("match rate (%)")
    ax.set_xlabel("input set")
    ax.set_ylim(0, 110)
    ax.set_title(f"Ward-cluster match rate: {model_id}\n({k} clusters; PGD-20 Linf eps={eps:.3g}, DDN L2)")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
