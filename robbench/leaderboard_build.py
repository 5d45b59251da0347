"""`robbench leaderboard build`: every leaderboard CSV regenerated from the per-sample
results under runs/ (and from the papers' reported numbers), then rendered as
Markdown, robust-accuracy-vs-ε plots and one static HTML page.

The output is a function of its inputs only: rows and columns in a fixed order,
fixed number formatting, no build timestamp, plots without metadata dates. Building
twice gives byte-identical files."""

from __future__ import annotations

import html
import io
import json
import math
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tabulate import tabulate

from model_zoo.zoo import MODELS
from robbench.config import LEADERBOARD_DIR, RUNS_DIR, THREAT_DEFAULTS
from robbench.diagnostics import load_unreliable
from robbench.errors import RobbenchError
from robbench.evaluate import EvalRequest, evaluate, leaderboard_row, resolve_attacks, summarize
from robbench.io import write_text_atomic
from robbench.leaderboard import (LEADING, TRAILING, default_path, is_missing,
                                  parse_name, read_table, write_table)
from robbench.results import RunStore

PAPER_DATASETS = ("cifar10", "cifar100", "svhn")
PAPER_RESULTS = "paper_results.csv"
PAPER_COLUMNS = ["paper", "defense", "dataset", "architecture", "threat_model", "eps", "attack",
                 "metric", "value", "note"]
PAPER_AGGREGATE_NOTE = "paper: per-sample worst case unavailable (min of the reported accuracies)"
DEFAULT_EVAL_ATTACKS = ["pgd100"]
ATTACK_SPREAD = 10.0  # points between two multi-step attacks that flag a paper row
PAGE = "index.html"
NORM_LABEL = {"Linf": "L∞", "L2": "L2"}


@dataclass
class BuildReport:
    written: list[Path] = field(default_factory=list)  # CSVs regenerated
    rendered: list[Path] = field(default_factory=list)  # Markdown, plots, the page
    rows: dict[str, int] = field(default_factory=dict)  # CSV name -> rows
    stale: list[Path] = field(default_factory=list)  # CSVs in scope with no rows now
    removed: list[Path] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    without_results: list[str] = field(default_factory=list)  # zoo models with a checkpoint
    warnings: list[str] = field(default_factory=list)


# --- measured rows from runs/ ------------------------------------------------

@dataclass(frozen=True)
class Run:
    root: Path
    meta: dict[str, Any]
    n: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.meta["model"], self.meta["threat_model"], f"{self.meta['eps']:.6g}"

    @property
    def rank(self) -> tuple:
        """Largest n first, then seed 0, then the lowest seed (then the path, for ties)."""
        seed = int(self.meta["seed"])
        return -self.n, seed != 0, seed, str(self.root)


def run_size(store: RunStore, meta: dict[str, Any]) -> int | None:
    """Samples 0..n-1 the run covers: meta's n_examples (the last eval's), or for a run
    written before meta recorded it, the contiguous prefix of clean.csv."""
    clean = store.load_clean()
    if clean is None or not len(clean):
        return None
    have = set(clean["index"].tolist())
    n = meta.get("n_examples")
    if n is None:
        n = 0
        while n in have:
            n += 1
    return int(n) if n and set(range(int(n))) <= have else None


def current_runs(runs_dir: Path, dataset: str | None, warn: Callable[[str], None]) -> dict[tuple, Run]:
    """For each zoo model, threat model and ε: the run of the manifest's current
    checkpoint with the most samples, seed 0 first."""
    chosen: dict[tuple, Run] = {}
    for meta_path in sorted(Path(runs_dir).glob("*/*/*/meta.json")):
        try:
            meta = json.loads(meta_path.read_text())
            model_id, sha = meta["model"], meta["checkpoint_sha256"]
            if not all(k in meta for k in ("dataset", "threat_model", "eps", "seed")):
                raise KeyError("dataset, threat_model, eps or seed")
        except (ValueError, KeyError, TypeError):
            warn(f"{meta_path}: unreadable run metadata, skipped")
            continue
        if dataset is not None and meta["dataset"] != dataset:
            continue
        if model_id not in MODELS:
            warn(f"{meta_path.parent}: {model_id!r} is not a zoo model, skipped")
            continue
        if sha != MODELS.get(model_id).checkpoint_sha256:
            continue  # an older (or a user-supplied) checkpoint: not the zoo model's numbers
        store = RunStore(meta_path.parent)
        n = run_size(store, meta)
        if n is None:
            warn(f"{meta_path.parent}: no complete clean predictions, skipped")
            continue
        run = Run(meta_path.parent, meta, n)
        if run.key not in chosen or run.rank < chosen[run.key].rank:
            chosen[run.key] = run
    return chosen


def measured_row(run: Run) -> dict[str, Any] | None:
    """The row `robbench eval` writes for this run (summarize + leaderboard_row); None
    when no attack has covered the run's samples yet (an interrupted first attack):
    its "worst case" would be the clean accuracy."""
    store, meta = RunStore(run.root), run.meta
    summary = summarize(store, run.n, requested=store.attack_ids())
    if not summary["attacks"]:
        return None
    summary.update({"model": meta["model"], "dataset": meta["dataset"],
                    "threat_model": meta["threat_model"], "eps": meta["eps"],
                    "n_examples": run.n, "seed": meta["seed"],
                    "checkpoint_sha256": meta["checkpoint_sha256"]})
    summary["unreliable"] = load_unreliable(store, run.n, summary["worst_case_over"])
    return leaderboard_row(summary, meta)


def protocol_eps(dataset: str, norm: str) -> float:
    return THREAT_DEFAULTS[dataset].eps(norm)


def measured_tables(runs: dict[tuple, Run], out: Path,
                    warn: Callable[[str], None]) -> dict[Path, list[dict[str, Any]]]:
    tables: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    for key in sorted(runs):
        run = runs[key]
        meta = run.meta
        proto = meta.get("protocol_eps", protocol_eps(meta["dataset"], meta["threat_model"]))
        path = default_path(out, meta["dataset"], meta["threat_model"], float(meta["eps"]), proto)
        row = measured_row(run)
        if row is None:
            warn(f"{run.root}: no attack covers its {run.n} samples yet, skipped")
            continue
        tables[path].append(row)
    return tables


def evaluate_missing(runs: dict[tuple, Run], dataset: str | None, attacks: list[str],
                     runs_dir: Path, n_examples: int | None, device: str,
                     data_root: str | None, report: BuildReport,
                     log: Callable[[str], None]) -> None:
    """Evaluates every zoo model with a committed checkpoint that has no current run at
    the protocol ε of `attacks`' threat model. Failures are reported, not fatal."""
    _, norm = resolve_attacks(attacks)
    for model_id, entry in MODELS.items():
        if entry.checkpoint_sha256 is None or (dataset is not None and entry.dataset != dataset):
            continue
        if (model_id, norm, f"{protocol_eps(entry.dataset, norm):.6g}") in runs:
            continue
        log(f"evaluating {model_id} ({', '.join(attacks)})")
        with tempfile.TemporaryDirectory() as tmp:
            try:  # the leaderboards are rebuilt below; eval's own upsert goes to a scratch file
                evaluate(EvalRequest(model_id=model_id, attacks=attacks, n_examples=n_examples,
                                     device=device, data_root=data_root, runs_dir=runs_dir,
                                     leaderboard=Path(tmp) / "scratch.csv", progress=False))
            except RobbenchError as exc:
                report.warnings.append(f"{model_id}: not evaluated: {exc}")
                continue
        report.evaluated.append(model_id)


# --- paper rows ----------------------------------------------------------------

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
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise RobbenchError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


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
            raise RobbenchError(f"{path}: value {rec['value']!r} is not a number") from None
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
    accuracies = {c: v for c, v in values.items() if c != "clean_acc" and not _is_metric(c)}
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
        "threat_model": norm, "eps": None if eps is None else round(eps, 6),
        "architecture": group["arch"], "clean_acc": values.get("clean_acc"),
        "worst_case_acc": min(accuracies.values()) if accuracies else None,
        "n_examples": None, "seed": None, "checkpoint_sha256": "", "robbench_version": "",
        "torch_version": "", "date": "", "source": "paper", "unreliable": "; ".join(reasons),
        "reference": paper,
    }
    row.update({c: v for c, v in values.items() if c != "clean_acc"})
    return row


def _is_metric(column: str) -> bool:
    """A non-accuracy column (`<attack>_<metric>`, e.g. cw_mean_l2): attack ids are
    written with hyphens (pgd100-l2), a metric is joined to its attack by an underscore."""
    return "_" in column


# --- the build ---------------------------------------------------------------------

def leaderboard_files(out: Path) -> list[Path]:
    return sorted(p for p in Path(out).glob("*.csv") if parse_name(p) is not None)


def build(out: Path = Path(LEADERBOARD_DIR), runs_dir: Path = Path(RUNS_DIR),
          dataset: str | None = None, paper_results: Path | None = None,
          run_evaluations: bool = False, attacks: list[str] | None = None,
          n_examples: int | None = None, device: str = "cpu", data_root: str | None = None,
          prune: bool = False, log: Callable[[str], None] = lambda msg: None) -> BuildReport:
    out, runs_dir = Path(out), Path(runs_dir)
    if dataset is not None and dataset not in THREAT_DEFAULTS:
        raise RobbenchError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(THREAT_DEFAULTS))})")
    report = BuildReport()
    paper_path = Path(paper_results) if paper_results is not None else out / PAPER_RESULTS
    if paper_results is not None and not paper_path.is_file():
        raise RobbenchError(f"paper results {paper_path} does not exist")

    runs = current_runs(runs_dir, dataset, report.warnings.append)
    if run_evaluations:
        evaluate_missing(runs, dataset, attacks or DEFAULT_EVAL_ATTACKS, runs_dir, n_examples,
                         device, data_root, report, log)
        runs = current_runs(runs_dir, dataset, lambda msg: None)
    have = {key[0] for key in runs}
    report.without_results = [m for m, e in MODELS.items() if e.checkpoint_sha256 is not None
                              and m not in have and (dataset is None or e.dataset == dataset)]

    tables = measured_tables(runs, out, report.warnings.append)
    if paper_path.is_file():
        for path, rows in paper_tables(paper_path, out, dataset).items():
            tables[path].extend(rows)
    else:
        report.warnings.append(f"no paper results at {paper_path}: no source=paper rows")

    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(tables):
        rows = tables[path]
        ids = [r["model"] for r in rows]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise RobbenchError(f"{path.name}: two rows for {', '.join(dup)}")
        write_table(path, pd.DataFrame(rows))
        report.written.append(path)
        report.rows[path.name] = len(rows)
    for path in leaderboard_files(out):
        ds = parse_name(path)[0]
        if path in tables or (dataset is not None and ds != dataset):
            continue
        if prune:
            path.unlink()
            report.removed.append(path)
        else:
            report.stale.append(path)
    report.rendered = render(out, report)
    return report


# --- rendering ---------------------------------------------------------------------

def fmt_eps(eps: float, dataset: str | None = None) -> str:
    """0.0313725 -> '8/255' where the dataset's budgets are in 1/255 steps, else %.6g."""
    if dataset in PAPER_DATASETS:
        k = eps * 255
        if abs(k - round(k)) < 1e-3 and round(k) > 0:
            return f"{round(k)}/255"
    return f"{eps:.6g}"


def fmt_cell(column: str, value: Any, dataset: str | None) -> str:
    if is_missing(value):
        return ""
    if column == "eps":
        return fmt_eps(float(value), dataset)
    if column == "checkpoint_sha256":
        return str(value)[:12]
    if column in ("n_examples", "seed"):
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if column in LEADING or column in TRAILING or not _is_metric(column):
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


def render_markdown(path: Path, table: pd.DataFrame, plot: Path | None) -> str:
    dataset, norm, eps = table_title(path)
    rows = []
    for row in table.to_dict("records"):
        cells = [fmt_cell(c, row[c], row.get("dataset")).replace("|", "\\|") for c in table.columns]
        if is_unreliable(row):
            cells[0] = "⚠ " + cells[0]
        rows.append(cells)
    body = tabulate(rows, headers=list(table.columns), tablefmt="github", disable_numparse=True)
    lines = [f"# {dataset}, {norm}, ε = {eps}", "",
             "Accuracies in %, sorted by worst-case accuracy (per sample over every attack "
             "on record). ⚠: unreliable, see the `unreliable` column. Generated by "
             "`robbench leaderboard build` from runs/ and paper_results.csv; do not edit.", ""]
    if plot is not None:
        lines += [f"![robust accuracy vs ε]({plot.name})", ""]
    return "\n".join(lines + [body, ""])


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
    with rc_context({"svg.hashsalt": "robbench", "svg.fonttype": "path", "font.size": 9}):
        fig = Figure(figsize=(5.5, 3.6 + 0.12 * max(0, len(series) - 22)))
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
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                  ncol=1 if len(series) <= 22 else 2)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()


def render(out: Path, report: BuildReport | None = None) -> list[Path]:
    """Markdown per leaderboard CSV in `out`, one plot per dataset and norm, and
    index.html; Markdown and plots whose CSV is gone are removed."""
    report = report or BuildReport()
    files = leaderboard_files(out)
    tables = {p: read_table(p) for p in files}
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in files:
        dataset, norm, eps = parse_name(path)
        groups[(dataset, norm)].append(path)
    written: list[Path] = []

    plots: dict[tuple[str, str], Path] = {}
    for (dataset, norm), paths in sorted(groups.items()):
        rows = [r for p in paths for r in tables[p].to_dict("records")]
        svg = plot_group(rows, dataset, norm)
        if svg is not None:
            plot = out / f"{dataset}-{norm}.svg"
            write_text_atomic(plot, svg)
            plots[(dataset, norm)] = plot
            written.append(plot)
    for path in files:
        dataset, norm, _ = parse_name(path)
        md = path.with_suffix(".md")
        write_text_atomic(md, render_markdown(path, tables[path], plots.get((dataset, norm))))
        written.append(md)
    page = out / PAGE
    write_text_atomic(page, render_html(groups, tables, plots))
    written.append(page)

    keep = set(written)
    for orphan in sorted([*out.glob("*.md"), *out.glob("*.svg")]):
        if orphan not in keep and parse_name(orphan) is not None:
            orphan.unlink()
            report.removed.append(orphan)
    return written


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem 2rem;
       color: #1d2330; background: #fff; }
h1 { margin: 0 0 .3rem; font-size: 1.8rem; }
h2 { margin-top: 2.2rem; border-bottom: 2px solid #dde3ec; padding-bottom: .2rem; }
h3 { margin: 1.2rem 0 .4rem; font-size: 1.05rem; }
p.lead { margin: 0 0 1rem; color: #4a5466; max-width: 70rem; }
nav a { margin-right: 1rem; }
figure { margin: .5rem 0 1rem; }
figure img { max-width: 100%; border: 1px solid #e3e7ee; }
.scroll { overflow-x: auto; }
table.leaderboard { border-collapse: collapse; font-size: .85rem; white-space: nowrap; }
table.leaderboard th, table.leaderboard td { padding: .3rem .55rem; border-bottom: 1px solid #e3e7ee; }
table.leaderboard th { background: #f1f4f9; text-align: left; cursor: pointer; user-select: none;
                       position: sticky; top: 0; }
table.leaderboard th:hover { background: #e2e8f2; }
table.leaderboard th[aria-sort=ascending]::after { content: " ▲"; }
table.leaderboard th[aria-sort=descending]::after { content: " ▼"; }
table.leaderboard td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.leaderboard td.key { font-weight: 600; }
table.leaderboard td.wide { white-space: normal; min-width: 18rem; max-width: 30rem; font-size: .78rem;
                            color: #5a6375; }
table.leaderboard td:first-child { position: sticky; left: 0; background: #fff; }
table.leaderboard th:first-child { position: sticky; left: 0; z-index: 1; }
table.leaderboard tr.unreliable, table.leaderboard tr.unreliable td:first-child { background: #fff6e0; }
table.leaderboard tr.unreliable td:first-child::before { content: "⚠ "; color: #b26a00; }
table.leaderboard tr.paper td:first-child { font-style: italic; }
.legend { font-size: .85rem; color: #4a5466; }
.marker { color: #b26a00; }
"""

SCRIPT = """
// Click a header to sort by that column (numbers numerically, empty cells last);
// click again to reverse.
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    if (v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? v : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, col) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === null || y === null) { return (x === null) - (y === null); }
          var c = (typeof x === "number" && typeof y === "number") ? x - y
            : String(x).localeCompare(String(y), undefined, {numeric: true});
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

WIDE_COLUMNS = ("unreliable", "reference")


def _file_order(path: Path) -> tuple[bool, float, str]:
    """The protocol-ε table first, then the others by ε."""
    eps = parse_name(path)[2]
    return eps is not None, eps or 0.0, path.name


def render_table(path: Path, table: pd.DataFrame) -> str:
    esc = html.escape
    columns = list(table.columns)
    head = "".join(f'<th scope="col" data-col="{esc(c)}">{esc(c)}</th>' for c in columns)
    body = []
    for row in table.to_dict("records"):
        classes = [c for c, on in (("unreliable", is_unreliable(row)),
                                   ("paper", row.get("source") == "paper")) if on]
        cells = []
        for c in columns:
            value = row[c]
            text = fmt_cell(c, value, row.get("dataset"))
            attrs = []
            if c == "model":
                attrs.append('class="key"')
            elif c in WIDE_COLUMNS:
                attrs.append('class="wide"')
            elif isinstance(value, (int, float)) and not is_missing(value):
                attrs.append('class="num"')
                attrs.append(f'data-sort="{float(value)!r}"')
            if c == "checkpoint_sha256" and not is_missing(value):
                attrs.append(f'title="{esc(str(value))}"')
            cells.append(f"<td{' ' if attrs else ''}{' '.join(attrs)}>{esc(text)}</td>")
        cls = f' class="{" ".join(classes)}"' if classes else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table class="leaderboard sortable" id="table-{esc(path.stem)}">'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody></table></div>")


def render_html(groups: dict[tuple[str, str], list[Path]], tables: dict[Path, pd.DataFrame],
                plots: dict[tuple[str, str], Path]) -> str:
    esc = html.escape
    sections, nav = [], []
    for (dataset, norm), paths in sorted(groups.items()):
        anchor = f"{dataset}-{norm}"
        label = f"{dataset} · {NORM_LABEL.get(norm, norm)}"
        nav.append(f'<a href="#{esc(anchor)}">{esc(label)}</a>')
        parts = [f'<section id="{esc(anchor)}"><h2>{esc(label)}</h2>']
        if (dataset, norm) in plots:
            parts.append(f'<figure><img src="{esc(plots[(dataset, norm)].name)}" '
                         f'alt="{esc(label)}: worst-case robust accuracy against ε"></figure>')
        for path in sorted(paths, key=_file_order):
            _, _, eps = table_title(path)
            n_rows = len(tables[path])
            parts.append(f"<h3>ε = {esc(eps)} <span class=\"legend\">({n_rows} "
                         f"row{'s' if n_rows != 1 else ''}; "
                         f'<a href="{esc(path.name)}">CSV</a>, '
                         f'<a href="{esc(path.with_suffix(".md").name)}">Markdown</a>)</span></h3>')
            parts.append(render_table(path, tables[path]))
        parts.append("</section>")
        sections.append("\n".join(parts))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>robbench leaderboards</title>
<style>{STYLE}</style>
</head>
<body>
<h1>robbench leaderboards</h1>
<p class="lead">Clean and robust accuracy (%) of clustering- and prototype-based defenses and
softmax baselines. <b>worst_case_acc</b> counts a sample as robust only if it is classified
correctly and every attack on record fails on it; rows are sorted by it. Click a column
header to sort by that column. <span class="marker">⚠</span> marks an unreliable row (the
reason is in its <i>unreliable</i> column); <i>italic</i> rows are numbers reported by papers
(source = paper), the others were measured by robbench.</p>
<nav>{' '.join(nav)}</nav>
{chr(10).join(sections)}
<script>{SCRIPT}</script>
</body>
</html>
"""
