"""One robust-accuracy-vs-ε plot per dataset and norm, as deterministic SVG."""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

from robbench.leaderboard.render.format import NORM_LABEL, fmt_eps, is_unreliable
from robbench.store.table import is_missing


def plot_group(rows: list[dict[str, Any]], dataset: str, norm: str) -> str | None:
    """Worst-case accuracy against ε, one series per model (points where only one ε),
    as SVG with a fixed hash salt and no date: the same rows give the same bytes."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    series: dict[str, list[tuple[float, float, bool, str]]] = defaultdict(list)
    for row in rows:
        if is_missing(row.get("worst_case_acc")) or is_missing(row.get("eps")):
            continue
        series[row["model"]].append((float(row["eps"]), float(row["worst_case_acc"]),
                                     is_unreliable(row), row.get("source", "")))
    if not series:
        return None
    with rc_context({"svg.hashsalt": "robbench", "svg.fonttype": "path", "font.size": 11}):
        # drawn at its natural size on the page (about 1000 px wide with the legend), so
        # the legend's 10 pt text stays readable without zooming
        fig = Figure(figsize=(6.5, 4.2 + 0.16 * max(0, len(series) - 18)))
        ax = fig.add_subplot(1, 1, 1)
        colors = [f"C{i}" for i in range(10)]
        markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
        for i, model in enumerate(sorted(series)):
            points = sorted(series[model])
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            paper = points[0][3] == "paper"
            ax.plot(xs, ys, linestyle=("--" if paper else "-") if len(points) > 1 else "none",
                    marker=markers[(i // 10) % len(markers)], color=colors[i % 10],
                    label=model + (" (paper)" if paper and not model.startswith("paper:") else ""))
            hollow = [(x, y) for x, y, bad, _ in points if bad]
            if hollow:
                ax.plot([h[0] for h in hollow], [h[1] for h in hollow], linestyle="none",
                        marker="o", markersize=11, markerfacecolor="none", color="0.4")
        eps_values = sorted({p[0] for pts in series.values() for p in pts})
        ax.set_xticks(eps_values, [fmt_eps(e, dataset) for e in eps_values])
        if len(eps_values) == 1:
            ax.set_xlim(eps_values[0] * 0.5, eps_values[0] * 1.5)
        ax.set_ylim(-2, 102)
        ax.set_xlabel(f"ε ({NORM_LABEL.get(norm, norm)})")
        ax.set_ylabel("worst-case robust accuracy (%)")
        ax.set_title(f"{dataset}, {NORM_LABEL.get(norm, norm)}: robust accuracy vs ε "
                     f"(grey ring: unreliable)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=10, frameon=False,
                  ncol=1 if len(series) <= 18 else 2)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()
