"""The papers' reported numbers (paper_results.csv) as leaderboard rows with
source=paper: aggregate accuracies only, so their worst case is an upper bound and
every row says so in its `unreliable` column."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.config import THREAT_DEFAULTS
from robbench.errors import RobbenchError
from robbench.store.table import default_path, read_text_table

PAPER_DATASETS = ("cifar10", "cifar100", "svhn")
PAPER_RESULTS = "paper_results.csv"
PAPER_COLUMNS = ["paper", "defense", "dataset", "architecture", "threat_model", "eps", "attack",
                 "metric", "value", "note"]
PAPER_AGGREGATE_NOTE = "paper: per-sample worst case unavailable (min of the reported accuracies)"
ATTACK_SPREAD = 10.0  # points between two multi-step attacks that flag a paper row


def protocol_eps(dataset: str, norm: str) -> float:
    return THREAT_DEFAULTS[dataset].eps(norm)


def parse_eps(text: str) -> float | None:
    """'8/255' -> 0.0313725..., '0.5' -> 0.5, '' -> None (a budget-free metric)."""
    text = str(text).strip()
    if not text:
        return None
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise RobbenchError(f"paper results: bad eps {text!r} (use a number or a fraction "
                            f"like 8/255)") from None
    if not math.isfinite(value) or value <= 0:
        raise RobbenchError(f"paper results: eps must be positive, got {text!r}")
    return value


def paper_short(paper: str) -> str:
    """'ClusTR (Alfarra et al. 2021)' -> 'clustr'."""
    head = paper.split("(")[0].strip() or paper
    return re.sub(r"[^a-z0-9]+", "-", head.lower()).strip("-")


def read_paper_results(path: Path) -> pd.DataFrame:
    return read_text_table(path, PAPER_COLUMNS, "paper results")


def paper_tables(path: Path, out: Path, dataset: str | None) -> dict[Path, list[dict[str, Any]]]:
    """One row per paper, defense, dataset, threat model and ε, source=paper. Accuracy
    metrics become the clean_acc and attack columns; other metrics (e.g. a minimum-norm
    attack's mean_l2, reported without a budget) become `<attack>_<metric>` columns of
    the same paper's row for that defense at the dataset's protocol L∞ ε."""
    frame = read_paper_results(path)
    groups: dict[tuple, dict[str, Any]] = {}
    budget_free: list[tuple[tuple, str, float, dict[str, str]]] = []
    for rec in frame.to_dict("records"):
        if rec["dataset"] not in PAPER_DATASETS or (dataset is not None and rec["dataset"] != dataset):
            continue
        if rec["threat_model"] not in ("Linf", "L2"):
            raise RobbenchError(f"{path}: unknown threat_model {rec['threat_model']!r}")
        try:
            value = round(float(rec["value"]), 4)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise RobbenchError(f"{path}: value {rec['value']!r} is not a finite number")
        eps = parse_eps(rec["eps"])
        owner = (rec["paper"], rec["defense"], rec["dataset"])
        metric = rec["metric"].strip()
        if eps is None and metric != "accuracy":
            budget_free.append((owner, f"{rec['attack']}_{metric}", value, rec))
            continue
        if eps is None:
            eps = protocol_eps(rec["dataset"], rec["threat_model"])
        key = (*owner, rec["threat_model"], round(eps, 9))
        group = groups.setdefault(key, {"eps": eps, "arch": rec["architecture"], "values": {},
                                        "notes": []})
        column = "clean_acc" if rec["attack"] == "clean" else rec["attack"]
        if metric != "accuracy":
            column = f"{rec['attack']}_{metric}"
        group["values"][column] = value
        if rec["note"].strip():
            group["notes"].append(f"{rec['attack']}: {rec['note'].strip()}")
    for owner, column, value, rec in budget_free:
        linf = (*owner, "Linf", round(protocol_eps(owner[2], "Linf"), 9))
        own = (*owner, rec["threat_model"], None)
        key = linf if linf in groups else own
        group = groups.setdefault(key, {"eps": None, "arch": rec["architecture"], "values": {},
                                        "notes": []})
        group["values"][column] = value
        if rec["note"].strip():
            group["notes"].append(f"{column}: {rec['note'].strip()}")

    tables: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(groups, key=lambda k: tuple("" if v is None else str(v) for v in k)):
        paper, defense, ds, norm, _ = key
        group = groups[key]
        eps = group["eps"]
        row = paper_row(paper, defense, ds, norm, eps, group)
        if eps is None:
            file = out / f"{ds}-{norm}.csv"
        else:
            file = default_path(out, ds, norm, eps, protocol_eps(ds, norm))
        tables[file].append(row)
    return tables


def paper_row(paper: str, defense: str, dataset: str, norm: str, eps: float | None,
              group: dict[str, Any]) -> dict[str, Any]:
    values = group["values"]
    accuracies = {c: v for c, v in values.items() if c != "clean_acc" and not is_metric(c)}
    reasons = [PAPER_AGGREGATE_NOTE] if accuracies else ["paper: no robust accuracy reported"]
    # METHODS §5 checks that aggregate numbers can still show
    if "pgd20" in accuracies and "pgd100" in accuracies and accuracies["pgd100"] > accuracies["pgd20"]:
        reasons.append(f"more iterations raised accuracy (pgd20 {accuracies['pgd20']:.2f}, "
                       f"pgd100 {accuracies['pgd100']:.2f})")
    white_box = [v for c, v in accuracies.items() if c != "transfer"]
    if "transfer" in accuracies and white_box and accuracies["transfer"] < min(white_box):
        reasons.append("transfer beat white-box")
    strong = {c: v for c, v in accuracies.items() if c not in ("transfer", "fgsm")}
    if len(strong) > 1 and max(strong.values()) - min(strong.values()) > ATTACK_SPREAD:
        hi, lo = max(strong, key=strong.get), min(strong, key=strong.get)
        reasons.append(f"attacks disagree by {strong[hi] - strong[lo]:.2f} points ({hi} "
                       f"{strong[hi]:.2f}, {lo} {strong[lo]:.2f}): the weaker attack overestimates "
                       f"robustness")
    reasons += group["notes"]
    row = {
        "model": f"paper:{defense}:{paper_short(paper)}", "defense": defense, "dataset": dataset,
        "threat_model": norm, "eps": eps,
        "architecture": group["arch"], "clean_acc": values.get("clean_acc"),
        "worst_case_acc": min(accuracies.values()) if accuracies else None,
        "n_examples": None, "seed": None, "checkpoint_sha256": "", "robbench_version": "",
        "torch_version": "", "date": "", "source": "paper", "unreliable": "; ".join(reasons),
        "reference": paper,
    }
    row.update({c: v for c, v in values.items() if c != "clean_acc"})
    return row


def is_metric(column: str) -> bool:
    """A non-accuracy column (`<attack>_<metric>`, e.g. cw_mean_l2): attack ids are
    written with hyphens (pgd100-l2), a metric is joined to its attack by an underscore."""
    return "_" in column
