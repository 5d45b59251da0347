"""The papers' claims confronted with what robbench measures at its own scale.

Each claim compares two numbers a paper reports (a defense against a baseline, or one
model under a weaker and a stronger attack) and names the zoo models that are its
analogue. The verdict is computed per dataset and budget from the per-sample results
in the store, with an exact paired test: the two accuracies are on the same test
points, so what counts are the samples robust under one and not the other (b and c),
and under "no difference" b ~ Binomial(b + c, 1/2) (McNemar's exact test, one-sided
p < ALPHA for each direction; uncorrected for the number of claims, p is printed).

- gain claims ("D is more robust than B"), on the per-sample worst case: *reproduced*
  if D is significantly more robust; *reversed at this scale* if B is; *exposed* if D
  is significantly more robust only under the weaker attack the claim names (the
  paper's attack, or CE-PGD where its figure is not recorded) and not in the worst
  case; otherwise *not reproduced at this scale*.
- gap and k-means-head claims ("the accuracy falls by much under X"): *reproduced*
  if the fall is significant and at least half as large, relative to the starting
  accuracy, as the paper's; otherwise *not reproduced at this scale*.

The zoo's models are small CNNs on 8x8 digits and MNIST, the papers' ResNets and WRNs
on CIFAR-10: a verdict says whether the claim holds on these models under robbench's
attacks, not whether the paper's numbers are wrong."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.zoo.lookup import MODELS
from robbench.analysis.kmeans_head import ANALYSIS as KMEANS_HEAD, PAPER_FIGURE as KMEANS_PAPER
from robbench.store.analyses import analysis_records
from robbench.store.table import default_path, read_table
from robbench.leaderboard.papers import protocol_eps, read_paper_results
from robbench.store.runs import RunStore, has_files, run_dir
from robbench.evaluation.scoring import WORST_CASE, robust_vectors

REPRODUCED = "reproduced"
REVERSED = "reversed at this scale"
EXPOSED = "exposed"
NOT_REPRODUCED = "not reproduced at this scale"
NOT_MEASURED = "not measured"
# Where the zoo has checkpoints, and the L∞ budgets judged there: the protocol's, at
# which the nominal model is at the floor as on CIFAR-10 at 8/255, and on digits a
# smaller one at which it is not (runs at ε = 0.1 exist for some models only).
BUDGETS = {"digits": (0.2, 0.1), "mnist-t10k": (0.3,)}
PAPER_EPS = "8/255"  # the papers' CIFAR-10 budget, the setting of every claim's figure
ALPHA = 0.025  # one-sided, each direction: 0.05 two-sided
SIZE_FRACTION = 0.5  # a fall counts as the paper's if at least this share of it, relatively
WORST = WORST_CASE


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
    first: Side | None = None  # gain: the defense; gap: the model under the weaker attack
    second: Side | None = None  # gain: the baseline; gap: the same model, stronger attack
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
    Claim("clustr-qtrades-gap", "gap", CLUSTR,
          "ClusTR + QTRADES keeps most of its PGD accuracy under the magnet-loss attack "
          "(the paper's own adaptive check: 74.44 -> 66.52).",
          Side("clustr-qtrades under PGD", "clustr-qtrades", "pgd20", "clustr-qtrades", "pgd20"),
          Side("clustr-qtrades, adaptive", "clustr-qtrades", "adaptive-magnet", "clustr-qtrades",
               "adaptive")),
    Claim("mmc-vs-nominal", "gain", MMC,
          "The Max-Mahalanobis centre loss gives robustness to PGD without adversarial training.",
          Side("mmc", "mmc", "pgd", "mmc", "pgd100"),
          Side("nominal", "nominal", "pgd", "nominal", "pgd100"),
          figure_note="the paper reports PGD robustness of MMC without adversarial training; "
                      "paper_results.csv holds no figure of it, and the weaker attack here is "
                      "cross-entropy PGD-100, whose gradient MMC's saturated softmax hides "
                      "(METHODS §2.3)"),
    Claim("mat-so-gap", "gap", MAT,
          "Under PGD, MAT-SO (FTC + SO) looks far more robust than it is: the adaptive attack "
          "removes most of its PGD accuracy.",
          Side("mat-so under PGD", "mat-so", "pgd", "mat-so", "pgd20"),
          Side("mat-so, adaptive", "mat-so", "adaptive-mat", "mat-so", "adaptive")),
    Claim("mat-gap", "gap", MAT,
          "Under PGD, full MAT looks more robust than it is: the adaptive attack removes a "
          "third of its PGD accuracy.",
          Side("mat under PGD", "mat", "pgd", "mat", "pgd20"),
          Side("mat, adaptive", "mat", "adaptive-mat", "mat", "adaptive")),
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
          "Nominal features are not clustered by class: a k-means head on them (K = 2 per "
          "class, clean accuracy) loses most of the accuracy.",
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
    eps: float  # the L∞ budget of the measured runs (the protocol's for the k-means head)
    paper: list[Figure] = field(default_factory=list)
    measured: list[Figure] = field(default_factory=list)
    verdict: str = NOT_MEASURED
    reason: str = ""


def one_sided_p(b: int, c: int) -> float:
    """P(X >= b) for X ~ Binomial(b + c, 1/2): McNemar's exact test that the b samples
    favouring one side outnumber the c favouring the other by more than chance."""
    m = b + c
    return 1.0 if m == 0 else sum(math.comb(m, k) for k in range(b, m + 1)) / 2 ** m


def discordant(first: np.ndarray, second: np.ndarray) -> tuple[int, int]:
    """(samples true only in `first`, true only in `second`)."""
    return int((first & ~second).sum()), int((second & ~first).sum())


def pct(vector: np.ndarray) -> float:
    return 100.0 * float(vector.mean())


# --- the papers' side -----------------------------------------------------------------------

def paper_figure(papers: pd.DataFrame | None, claim: Claim, side: Side) -> Figure | None:
    """The paper's CIFAR-10 accuracy at 8/255 for one side of the claim, if recorded."""
    if papers is None:
        return None
    rows = papers[(papers["paper"] == claim.paper) & (papers["defense"] == side.defense)
                  & (papers["attack"] == side.attack) & (papers["metric"] == "accuracy")
                  & (papers["dataset"] == "cifar10") & (papers["threat_model"] == "Linf")
                  & (papers["eps"] == PAPER_EPS)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return Figure(side.label, side.attack, float(row["value"]),
                  f"cifar10, {row['architecture']}, Linf eps {row['eps']}")


def relative_fall(high: float, low: float) -> float:
    return (high - low) / high if high > 0 else 0.0


# --- the measured side ------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    """A zoo model's run behind a leaderboard row: per-sample robustness per column."""
    model: str
    setting: str  # "<dataset>, Linf eps <ε>"
    n: int
    vectors: dict[str, np.ndarray]

    def first(self, n: int) -> Measured:
        """The same run on its first n samples (to pair it with a run of fewer)."""
        return Measured(self.model, self.setting, n, {k: v[:n] for k, v in self.vectors.items()})

    def figure(self, label: str, column: str) -> Figure | None:
        if column not in self.vectors:
            return None
        attack = "worst case" if column == WORST else column
        return Figure(label, attack, pct(self.vectors[column]), f"{self.setting}, n={self.n}", self.n)


def measured_run(table: pd.DataFrame | None, model_id: str, runs_dir: Path) -> Measured | None:
    """The run of the leaderboard row of the zoo model's current checkpoint, if the
    store holds it (the row's id is the zoo id only for the manifest's checkpoint)."""
    if table is None:
        return None
    rows = table[(table["model"] == model_id) & (table["source"] == "measured")]
    if rows.empty:
        return None
    row = rows.iloc[0]
    root = run_dir(runs_dir, model_id, row["checkpoint_sha256"], "Linf", float(row["eps"]),
                   int(row["seed"]))
    if not has_files(root):
        return None
    n = int(row["n_examples"])
    setting = f"{row['dataset']}, Linf eps {float(row['eps']):g}"
    return Measured(model_id, setting, n, robust_vectors(RunStore(root), n))


def judge_gain(finding: Finding, runs: tuple[Measured, Measured]) -> None:
    claim = finding.claim
    assert claim.first is not None and claim.second is not None
    sides = (claim.first, claim.second)
    n = min(r.n for r in runs)  # paired: on the samples both rows cover
    runs = (runs[0].first(n), runs[1].first(n))
    weak = [r.figure(s.label, s.column) for r, s in zip(runs, sides)]
    worst = [r.figure(s.label, WORST) for r, s in zip(runs, sides)]
    finding.measured = [f for pair in zip(weak, worst) for f in pair if f is not None]
    b, c = discordant(runs[0].vectors[WORST], runs[1].vectors[WORST])
    gain, loss = one_sided_p(b, c), one_sided_p(c, b)
    text = (f"worst case {worst[0].value:.2f} vs {worst[1].value:.2f}: {b} samples robust only "
            f"for {sides[0].label}, {c} only for {sides[1].label}")
    if gain < ALPHA:
        finding.verdict, finding.reason = REPRODUCED, f"{text} (p = {gain:.2g})"
        return
    if loss < ALPHA:
        finding.verdict, finding.reason = REVERSED, f"{text} (p = {loss:.2g} the other way)"
        return
    if None not in weak:
        wb, wc = discordant(runs[0].vectors[sides[0].column], runs[1].vectors[sides[1].column])
        weak_gain = one_sided_p(wb, wc)
        if weak_gain < ALPHA:
            finding.verdict = EXPOSED
            finding.reason = (f"under {weak[0].attack} vs {weak[1].attack}: {weak[0].value:.2f} vs "
                              f"{weak[1].value:.2f} (p = {weak_gain:.2g}), but {text} (p = {gain:.2g})")
            return
    finding.verdict, finding.reason = NOT_REPRODUCED, f"{text} (p = {gain:.2g})"


def judge_fall(finding: Finding, high: Figure, low: Figure, b: int, c: int,
               paper_fall: float | None) -> None:
    """A fall from `high` to `low` on the same samples, b of them lost and c gained."""
    p = one_sided_p(b, c)
    fall = relative_fall(high.value, low.value)
    text = (f"{high.attack} {high.value:.2f} -> {low.attack} {low.value:.2f}: {b} samples lost, "
            f"{c} gained (p = {p:.2g}), a relative fall of {100 * fall:.0f}%")
    if paper_fall is not None:
        text += f" (the paper's: {100 * paper_fall:.0f}%)"
    big_enough = paper_fall is None or fall >= SIZE_FRACTION * paper_fall
    if p < ALPHA and big_enough:
        finding.verdict = REPRODUCED
    else:
        finding.verdict = NOT_REPRODUCED
        if high.value == 0.0:
            text += f"; {high.attack} already breaks every sample, there is nothing to hide"
        elif p < ALPHA:
            text += "; the fall is real but far smaller than the paper's"
    finding.reason = text


def judge_gap(finding: Finding, run: Measured) -> None:
    claim = finding.claim
    assert claim.first is not None and claim.second is not None
    high = run.figure(claim.first.label, claim.first.column)
    low = run.figure(claim.second.label, claim.second.column)
    if high is None or low is None:
        finding.reason = "an attack column is missing from the run"
        return
    finding.measured = [high, low]
    b, c = discordant(run.vectors[claim.first.column], run.vectors[claim.second.column])
    paper = {f.label: f.value for f in finding.paper}
    paper_fall = (relative_fall(paper[claim.first.label], paper[claim.second.label])
                  if claim.first.label in paper and claim.second.label in paper else None)
    judge_fall(finding, high, low, b, c, paper_fall)


def judge_kmeans(finding: Finding, records: dict[str, dict[str, Any]]) -> None:
    model_id = f"nominal-{finding.dataset}"
    record = records.get(model_id)
    if record is None:
        finding.reason = f"no {KMEANS_HEAD} record of {model_id} (robbench analyze --what {KMEANS_HEAD})"
        return
    n, res = record["n_examples"], record["results"]
    k = record["params"]["clusters_per_class"]
    setting = f"{finding.dataset}, clean, n={n}"
    high = Figure("nominal", "own head", res["model_acc"], setting, n)
    low = Figure("nominal", f"k-means head (K={k}/class)", res["kmeans_head_acc"], setting, n)
    unsupervised = Figure("nominal", f"unsupervised k-means ({k}/class, majority-labelled)",
                          res["unsupervised_kmeans_acc"], setting, n)
    finding.measured = [high, low, unsupervised]
    paper_fall = relative_fall(KMEANS_PAPER["model_acc"], KMEANS_PAPER["kmeans_head_acc"])
    judge_fall(finding, high, low, res["only_model_correct"], res["only_head_correct"], paper_fall)


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


def collect_findings(out: Path, runs_dir: Path, paper_results: Path | None) -> list[Finding]:
    """Every claim, per dataset and budget of BUDGETS, judged from the L∞ leaderboards
    in `out` and the runs behind their rows."""
    papers = read_paper_results(paper_results) if paper_results and Path(paper_results).is_file() else None
    tables = {}
    for ds, budgets in BUDGETS.items():
        for eps in budgets:
            path = default_path(out, ds, "Linf", eps, protocol_eps(ds, "Linf"))
            tables[(ds, eps)] = read_table(path) if path.is_file() else None
    records = kmeans_records(runs_dir)
    loaded: dict[tuple[str, float, str], Measured | None] = {}  # a model is in several claims

    def run_of(ds: str, eps: float, model_id: str) -> Measured | None:
        if (ds, eps, model_id) not in loaded:
            loaded[(ds, eps, model_id)] = measured_run(tables[(ds, eps)], model_id, runs_dir)
        return loaded[(ds, eps, model_id)]

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
        for ds, eps in tables:
            finding = Finding(claim, ds, eps, [f for f in paper if f is not None])
            runs = [run_of(ds, eps, f"{s.zoo}-{ds}") for s in sides]
            if None in runs:
                missing = sorted({f"{s.zoo}-{ds}" for s, r in zip(sides, runs) if r is None})
                finding.reason = f"no measured row with its run for {', '.join(missing)} at this eps"
            elif claim.kind == "gap":
                judge_gap(finding, runs[0])
            else:
                judge_gain(finding, (runs[0], runs[1]))
            result.append(finding)
    return result
