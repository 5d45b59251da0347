"""The papers' claims confronted with what robbench measures at its own scale.

Each claim compares two numbers the paper reports (a defense against a baseline, or
one defense under a weak and a strong attack) and names the zoo models that are its
analogue. The verdict is computed from the leaderboard rows, per dataset:

- gain claims ("D is more robust than B"): the per-sample worst case of D against
  B's. *reproduced* if D's is higher by more than twice the standard error of the
  difference; *exposed* if D only looks more robust under the attack the paper used
  (its analogue column) and the gain vanishes in the worst case; otherwise *not
  reproduced at this scale*.
- gap claims ("D's robustness under A falls under A'"): *reproduced* if the analogue
  of A leaves D more than two standard errors more accurate than its worst case.
- the k-means head (ClusTR appendix B.1): *reproduced* if the k-means head loses more
  than two standard errors against the model's own rule.

The standard error treats the two accuracies as independent binomials (larger than
the paired one, so a verdict of *reproduced* or *exposed* is conservative). The zoo's
models are small CNNs on 8x8 digits and MNIST, the papers' ResNets and WRNs on
CIFAR-10: a verdict says whether the claim's direction holds at this scale, not
whether the paper's numbers are wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from model_zoo.zoo import MODELS
from robbench.analysis.kmeans_head import ANALYSIS as KMEANS_HEAD, PAPER_FIGURE as KMEANS_PAPER
from robbench.analysis.records import analysis_records
from robbench.leaderboard import default_path, read_table
from robbench.leaderboard_papers import protocol_eps, read_paper_results

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced at this scale"
EXPOSED = "exposed"
NOT_MEASURED = "not measured"
# Where the zoo has checkpoints, and the L∞ budgets judged there: the protocol's, at
# which the nominal model is at the floor as on CIFAR-10 at 8/255, and a smaller one at
# which it is not (judged where both models of a claim have a row).
BUDGETS = {"digits": (0.2, 0.1), "mnist-t10k": (0.3, 0.1)}
WORST = "worst_case_acc"
Z = 2.0  # standard errors a difference must exceed


@dataclass(frozen=True)
class Side:
    """One model of a claim: in the paper (defense id and attack of paper_results.csv)
    and in the zoo (model `<zoo>-<dataset>` and the leaderboard column of the attack's
    analogue)."""
    label: str
    defense: str
    attack: str
    zoo: str
    column: str


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str  # "gain", "gap" or "kmeans-head"
    paper: str  # paper_results.csv's paper column
    statement: str
    first: Side | None = None  # gain: the defense; gap: the defense under the paper's attack
    second: Side | None = None  # gain: the baseline; gap: the same defense, worst case
    figure_note: str = ""  # where the paper's figure comes from when it is not in paper_results.csv


CLUSTR = "ClusTR (Alfarra et al. 2021)"
MAT = "MAT (ICLR 2021 submission)"
DRP = "Deep Repulsive Prototypes (Serban et al.)"
ATC = "Clustering Effect (Bai et al. 2021)"
MMC = "Max-Mahalanobis centre loss (Pang et al. 2020)"

CLAIMS: tuple[Claim, ...] = (
    Claim("magnet-vs-nominal", "gain", CLUSTR,
          "Magnet-loss training gives PGD robustness that nominal training lacks.",
          Side("magnet", "magnet", "pgd20", "magnet", "pgd20"),
          Side("nominal", "nominal", "pgd20", "nominal", "pgd20")),
    Claim("clustr-vs-nominal", "gain", CLUSTR,
          "ClusTR (warm start + magnet loss) gives PGD robustness without adversarial training.",
          Side("clustr", "clustr", "pgd20", "clustr", "pgd20"),
          Side("nominal", "nominal", "pgd20", "nominal", "pgd20")),
    Claim("clustr-qtrades-vs-trades", "gain", CLUSTR,
          "ClusTR + QTRADES (one-step adversary) is more robust than TRADES.",
          Side("clustr-qtrades", "clustr-qtrades", "pgd20", "clustr-qtrades", "pgd20"),
          Side("trades", "trades", "pgd20", "trades", "pgd20")),
    Claim("clustr-qtrades-vs-clustr", "gain", CLUSTR,
          "QTRADES adds robustness to ClusTR.",
          Side("clustr-qtrades", "clustr-qtrades", "pgd20", "clustr-qtrades", "pgd20"),
          Side("clustr", "clustr", "pgd20", "clustr", "pgd20")),
    Claim("mmc-vs-nominal", "gain", MMC,
          "The Max-Mahalanobis centre loss gives robustness to PGD without adversarial training.",
          Side("mmc", "mmc", "pgd", "mmc", "pgd100"),
          Side("nominal", "nominal", "pgd", "nominal", "pgd100"),
          figure_note="the paper reports PGD robustness of MMC without adversarial training; "
                      "paper_results.csv holds no figure of it"),
    Claim("mat-so-gap", "gap", MAT,
          "MAT's SO term alone only looks robust: its PGD accuracy falls under the adaptive attack.",
          Side("mat-so under PGD", "mat-so", "pgd", "mat-so", "pgd20"),
          Side("mat-so under the adaptive attack", "mat-so", "adaptive-mat", "mat-so", WORST)),
    Claim("mat-vs-at", "gain", MAT,
          "Full MAT (FTC + SO + BIBO) is more robust than PGD adversarial training.",
          Side("mat", "mat", "adaptive-mat", "mat", "adaptive"),
          Side("at", "at", "pgd", "at", "pgd20")),
    Claim("mat-bibo-vs-at", "gain", MAT,
          "MAT-BIBO (FTC + BIBO) is more robust than PGD adversarial training.",
          Side("mat-bibo", "mat-bibo", "adaptive-mat", "mat-bibo", "adaptive"),
          Side("at", "at", "pgd", "at", "pgd20")),
    Claim("drp-vs-nominal", "gain", DRP,
          "Deep repulsive prototypes give PGD robustness without adversarial training.",
          Side("drp", "drp", "pgd20", "drp", "pgd20"),
          Side("nominal", "nominal", "pgd20", "nominal", "pgd20")),
    Claim("atc-vs-at", "gain", ATC,
          "The hierarchical clustering term makes adversarial training more robust (AutoAttack).",
          Side("atc", "atc", "aa", "atc", "aa"),
          Side("at", "at", "aa", "at", "aa")),
    Claim("kmeans-head", "kmeans-head", CLUSTR,
          "Nominal features are not clustered by class: a k-means head on them loses most of "
          "the accuracy.",
          figure_note=f"{KMEANS_PAPER['source']}; not in paper_results.csv"),
)


@dataclass(frozen=True)
class Figure:
    """A paper figure or a measured accuracy (%), with its setting."""
    label: str
    attack: str
    value: float
    setting: str  # e.g. "cifar10, resnet18, Linf eps 8/255" or "digits, eps 0.2, n=450"
    n: int | None = None


@dataclass
class Finding:
    claim: Claim
    dataset: str
    eps: float  # the L∞ budget of the measured rows (the protocol's for the k-means head)
    paper: list[Figure] = field(default_factory=list)
    measured: list[Figure] = field(default_factory=list)
    verdict: str = NOT_MEASURED
    reason: str = ""


def standard_error(a: float, n_a: int, b: float, n_b: int) -> float:
    """Of the difference of two accuracies in %, as independent binomials."""
    p, q = a / 100.0, b / 100.0
    return 100.0 * math.sqrt(p * (1 - p) / n_a + q * (1 - q) / n_b)


# --- the papers' side -----------------------------------------------------------------------

def paper_figure(papers: pd.DataFrame | None, claim: Claim, side: Side) -> Figure | None:
    """The paper's CIFAR-10 accuracy for one side of the claim, if paper_results has it."""
    if papers is None:
        return None
    rows = papers[(papers["paper"] == claim.paper) & (papers["defense"] == side.defense)
                  & (papers["attack"] == side.attack) & (papers["metric"] == "accuracy")
                  & (papers["dataset"] == "cifar10") & (papers["threat_model"] == "Linf")]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return Figure(side.label, side.attack, float(row["value"]),
                  f"cifar10, {row['architecture']}, Linf eps {row['eps']}")


# --- the measured side ------------------------------------------------------------------------

def zoo_row(table: pd.DataFrame | None, model_id: str) -> dict[str, Any] | None:
    """The measured row of the zoo model's current checkpoint (its row id is the zoo id)."""
    if table is None:
        return None
    rows = table[(table["model"] == model_id) & (table["source"] == "measured")]
    return None if rows.empty else rows.iloc[0].to_dict()


def measured(row: dict[str, Any], side: Side, column: str, dataset: str) -> Figure | None:
    value = row.get(column)
    if value is None or pd.isna(value):
        return None
    attack = "worst case" if column == WORST else column
    n = int(row["n_examples"])
    return Figure(side.label, attack, float(value), f"{dataset}, Linf eps {row['eps']:g}, n={n}", n)


def judge_gain(finding: Finding, rows: tuple[dict, dict]) -> None:
    claim, ds = finding.claim, finding.dataset
    assert claim.first is not None and claim.second is not None
    sides = (claim.first, claim.second)
    worst = [measured(r, s, WORST, ds) for r, s in zip(rows, sides)]
    weak = [measured(r, s, s.column, ds) for r, s in zip(rows, sides)]
    if None in worst:
        finding.reason = "a worst case is missing"
        return
    finding.measured = [f for pair in zip(weak, worst) for f in pair if f is not None]
    gain = worst[0].value - worst[1].value
    margin = Z * standard_error(worst[0].value, worst[0].n, worst[1].value, worst[1].n)
    text = f"worst-case gain {gain:+.2f} points (noise ±{margin:.2f})"
    if gain < -margin:
        text += f"; {claim.second.label} is the more robust"
    if gain > margin:
        finding.verdict, finding.reason = REPRODUCED, text
        return
    if None not in weak:
        weak_gain = weak[0].value - weak[1].value
        weak_margin = Z * standard_error(weak[0].value, weak[0].n, weak[1].value, weak[1].n)
        if weak_gain > weak_margin:
            finding.verdict = EXPOSED
            finding.reason = (f"{weak_gain:+.2f} points under {weak[0].attack} vs {weak[1].attack} "
                              f"(noise ±{weak_margin:.2f}), but {text}")
            return
    finding.verdict, finding.reason = NOT_REPRODUCED, text


def judge_gap(finding: Finding, row: dict[str, Any]) -> None:
    claim, ds = finding.claim, finding.dataset
    assert claim.first is not None and claim.second is not None
    weak = measured(row, claim.first, claim.first.column, ds)
    strong = measured(row, claim.second, claim.second.column, ds)
    if weak is None or strong is None:
        finding.reason = "an attack column is missing"
        return
    finding.measured = [weak, strong]
    gap = weak.value - strong.value
    margin = Z * standard_error(weak.value, weak.n, strong.value, strong.n)
    text = f"{weak.attack} leaves {gap:.2f} points more than the worst case (noise ±{margin:.2f})"
    if gap > margin:
        finding.verdict, finding.reason = REPRODUCED, text
    elif weak.value <= margin:
        finding.verdict = NOT_REPRODUCED
        finding.reason = f"{text}: {weak.attack} already breaks it, there is no masking to expose"
    else:
        finding.verdict, finding.reason = NOT_REPRODUCED, text


def judge_kmeans(finding: Finding, records: dict[str, dict[str, Any]]) -> None:
    model_id = f"nominal-{finding.dataset}"
    record = records.get(model_id)
    if record is None:
        finding.reason = f"no {KMEANS_HEAD} record of {model_id} (robbench analyze --what {KMEANS_HEAD})"
        return
    n, res = record["n_examples"], record["results"]
    k = record["params"]["clusters_per_class"]
    setting = f"{finding.dataset}, clean, n={n}"
    finding.measured = [Figure("nominal", "own head", res["model_acc"], setting, n),
                        Figure("nominal", f"k-means head, K={k}/class", res["kmeans_head_acc"], setting, n)]
    drop = res["model_acc"] - res["kmeans_head_acc"]
    margin = Z * standard_error(res["model_acc"], n, res["kmeans_head_acc"], n)
    text = f"the k-means head loses {drop:.2f} points (noise ±{margin:.2f})"
    finding.verdict = REPRODUCED if drop > margin else NOT_REPRODUCED
    finding.reason = text


def kmeans_records(runs_dir: Path) -> dict[str, dict[str, Any]]:
    """The k-means-head record of each zoo model's current checkpoint, largest n."""
    chosen: dict[str, dict[str, Any]] = {}
    for _, record in analysis_records(runs_dir, KMEANS_HEAD):
        entry = MODELS.get(record["model"]) if record["model"] in MODELS else None
        if entry is None or record["checkpoint_sha256"] != entry.checkpoint_sha256:
            continue
        best = chosen.get(record["model"])
        if best is None or (record["n_examples"], -record["seed"]) > (best["n_examples"], -best["seed"]):
            chosen[record["model"]] = record
    return chosen


def findings(out: Path, runs_dir: Path, paper_results: Path | None) -> list[Finding]:
    """Every claim, per dataset and budget, judged from the L∞ leaderboards in `out`: at
    the protocol ε always, at the other budgets of BUDGETS where both models have a row."""
    papers = read_paper_results(paper_results) if paper_results and Path(paper_results).is_file() else None
    tables = {}
    for ds, budgets in BUDGETS.items():
        for eps in budgets:
            path = default_path(out, ds, "Linf", eps, protocol_eps(ds, "Linf"))
            tables[(ds, eps)] = read_table(path) if path.is_file() else None
    records = kmeans_records(runs_dir)
    result = []
    for claim in CLAIMS:
        paper = [paper_figure(papers, claim, s) for s in (claim.first, claim.second) if s is not None]
        if claim.kind == "kmeans-head":
            paper = [Figure("nominal", "own head", KMEANS_PAPER["model_acc"], "cifar10, resnet18, clean"),
                     Figure("nominal", "k-means head", KMEANS_PAPER["kmeans_head_acc"],
                            "cifar10, resnet18, clean")]
            for ds in BUDGETS:
                finding = Finding(claim, ds, protocol_eps(ds, "Linf"), paper)
                judge_kmeans(finding, records)
                result.append(finding)
            continue
        sides = [s for s in (claim.first, claim.second) if s is not None]
        for (ds, eps), table in tables.items():
            finding = Finding(claim, ds, eps, [f for f in paper if f is not None])
            rows = [zoo_row(table, f"{s.zoo}-{ds}") for s in sides]
            if None in rows:
                if eps != protocol_eps(ds, "Linf"):
                    continue
                missing = [f"{s.zoo}-{ds}" for s, r in zip(sides, rows) if r is None]
                finding.reason = f"no leaderboard row for {', '.join(missing)}"
            elif claim.kind == "gap":
                judge_gap(finding, rows[0])
            else:
                judge_gain(finding, (rows[0], rows[1]))
            result.append(finding)
    return result
