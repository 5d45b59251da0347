"""Cell and title formatting shared by the Markdown tables, the plots and the page:
fixed formats, so the same rows always render to the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robbench.config import THREAT_DEFAULTS
from robbench.leaderboard.papers import PAPER_DATASETS, is_metric, protocol_eps
from robbench.store.table import LEADING, TRAILING, is_missing, parse_name

NORM_LABEL = {"Linf": "L∞", "L2": "L2"}


def fmt_eps(eps: float, dataset: str | None = None) -> str:
    """0.0313725 -> '8/255' where the dataset's budgets are in 1/255 steps, else %.6g."""
    if dataset in PAPER_DATASETS:
        k = eps * 255
        if abs(k - round(k)) < 1e-3 and round(k) > 0:
            return f"{round(k)}/255"
    return f"{eps:.6g}"


COST_COLUMNS = ("forward_per_point", "backward_per_point", "seconds")


def fmt_cell(column: str, value: Any, dataset: str | None) -> str:
    if is_missing(value):
        return ""
    if column == "eps":
        return fmt_eps(float(value), dataset)
    if column == "checkpoint_sha256":
        return str(value)[:12]
    if column in ("n_examples", "seed"):
        return str(int(value))
    if column in COST_COLUMNS:  # whole passes and seconds, but not 0 for a fraction of one
        return f"{float(value):.0f}" if float(value) >= 10 else f"{float(value):.1f}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if column in LEADING or column in TRAILING or not is_metric(column):
            return f"{float(value):.2f}"
        return f"{float(value):.4g}"
    return str(value)


def is_unreliable(row: dict[str, Any]) -> bool:
    return not is_missing(row.get("unreliable"))


def table_title(path: Path) -> tuple[str, str, str]:
    dataset, norm, eps = parse_name(path)
    shown = fmt_eps(eps if eps is not None else protocol_eps(dataset, norm), dataset) \
        if dataset in THREAT_DEFAULTS else ("protocol" if eps is None else f"{eps:.6g}")
    return dataset, norm, shown + (" (protocol)" if eps is None else "")
