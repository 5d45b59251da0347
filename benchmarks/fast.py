"""What `--attacks fast` costs and what it misses, against AutoAttack standard and the
committed standard set: `python -m benchmarks.fast` (writes benchmarks/results-fast.json,
one entry per (model, norm), merged).

For each zoo model and norm, `robbench eval` runs `fast` (or `fast-l2`) and then
AutoAttack standard (`aa`, `aa-l2`) on the same points, one after the other into one
scratch store, each timed by its record (the attack alone) on this machine. n is the
committed row's n on every entry, including where AutoAttack alone is slow enough that
its first 200 points would be allowed: more points, a firmer comparison (the timings:
benchmarks/README.md).
Reported per entry:
- passes_fast, passes_aa: forward + backward passes per point of each, as recorded;
  passes_standard: the same, summed over the committed standard set's records on the
  same points; cost_vs_aa = passes_fast / passes_aa; seconds_vs_aa, both timed here.
- worst_fast, worst_aa, worst_standard: robust accuracy (%) per sample over each.
- missed_vs_standard: samples the committed standard set breaks that fast leaves robust;
  aa_missed_vs_standard: the same for AutoAttack, the bar fast is measured against.
- missed_vs_oracle: samples the oracle counts broken (`library_broken_samples` of
  results-oracle-<dataset>-<norm>.json) that fast leaves robust. In L∞ the oracle's
  libraries attacked every sample, so these are the samples they broke (or that are
  misclassified); in L2 they attacked only the samples the row counted robust, so these
  are the samples the row or the libraries broke: the union of independent sources.
  Null where the oracle does not cover the model (its worst case lies under the
  oracle's line), said in `oracle`.
Both verdicts depend on the batches as the library attacks inside them do: AutoAttack
draws its randomness per batch, and in a cascade a stage's batch is what the earlier
stages left. Run it on an otherwise idle machine: the two attacks are timed one after
the other."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import run_main
from benchmarks.oracle import committed_store, results_path, row_n
from benchmarks.results_file import read_rows, write_rows
from robbench.config import DEFAULT_SEED, LEADERBOARD_DIR, RUNS_DIR, STANDARD_ATTACKS
from robbench.evaluation.evaluator import EvalRequest, evaluate, versions
from robbench.evaluation.scoring import clean_correct, covering_records, robust_vectors
from robbench.store.runs import RunStore
from robbench.store.table import read_table
from robbench.zoo.lookup import MODELS

OUT = Path(__file__).parent / "results-fast.json"
NORMS = ("Linf", "L2")
FAST = {"Linf": "fast", "L2": "fast-l2"}
AA = {"Linf": "aa", "L2": "aa-l2"}
STANDARD = {"Linf": "standard", "L2": "standard-l2"}


def per_point_passes(store: RunStore, n: int, attack_ids: set[str]) -> float:
    return sum(float(rows["n_forward"].sum() + rows["n_backward"].sum())
               for a, rows, _ in covering_records(store, n) if a in attack_ids) / n


def standard_broken(store: RunStore, n: int, norm: str) -> tuple[np.ndarray, float, float]:
    """(per sample: clean-correct and broken by a standard attack on record, passes per
    point of those attacks, their worst case in %)."""
    members = set(STANDARD_ATTACKS[STANDARD[norm]])
    correct = clean_correct(store, n)
    robust = correct.copy()
    found = set()
    for attack_id, rows, _ in covering_records(store, n):
        if attack_id in members:
            robust &= ~rows["success"].to_numpy(dtype=bool)
            found.add(attack_id)
    if found != members:
        raise SystemExit(f"{store.load_meta()['model']} {norm}: the committed run lacks "
                         f"{', '.join(sorted(members - found))}")
    return correct & ~robust, per_point_passes(store, n, members), 100.0 * float(robust.mean())


def left_robust(robust: np.ndarray, broken: list[int]) -> list[int]:
    """The samples of `broken` (test-split indices, 0..n-1) that `robust` (per sample
    0..n-1) counts robust: what a source broke and fast missed."""
    return [i for i in broken if robust[i]]


def oracle_broken(model_id: str, norm: str, n: int) -> list[int] | None:
    path = results_path(MODELS.get(model_id).dataset, norm)
    row = next((r for r in read_rows(path) if r["model"] == model_id), None)
    return None if row is None else [i for i in row["library_broken_samples"] if i < n]


def run_eval(model_id: str, attack_id: str, n: int, device: str, data_root: str | None,
             runs: Path, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    return evaluate(EvalRequest(model_id=model_id, attacks=[attack_id], n_examples=n, seed=seed,
                                   device=device, data_root=data_root, runs_dir=runs,
                                   leaderboard=runs / "scratch.csv", progress=False))


def entry(model_id: str, norm: str, device: str, data_root: str | None, runs: Path,
          leaderboards: Path, n: int | None = None) -> dict[str, Any]:
    if n is None:
        n = row_n(model_id, leaderboards, norm)
    committed = committed_store(model_id, norm, runs)
    broken_std, passes_standard, worst_standard = standard_broken(committed, n, norm)
    with tempfile.TemporaryDirectory() as scratch:
        summary = run_eval(model_id, FAST[norm], n, device, data_root, Path(scratch))
        run_eval(model_id, AA[norm], n, device, data_root, Path(scratch))
        store = RunStore(Path(summary["run_dir"]))
        # each record's own seconds: the attack alone, not the model checks and loading
        seconds_fast, seconds_aa = (store.load_attack(a)[1]["seconds"] for a in (FAST[norm], AA[norm]))
        robust = robust_vectors(store, n)
        passes_fast = per_point_passes(store, n, {FAST[norm]})
        passes_aa = per_point_passes(store, n, {AA[norm]})
    fast_robust = robust[FAST[norm]]
    standard_breaks = np.flatnonzero(broken_std).tolist()
    missed = left_robust(fast_robust, standard_breaks)
    aa_missed = left_robust(robust[AA[norm]], standard_breaks)
    oracle = oracle_broken(model_id, norm, n)
    oracle_missed = None if oracle is None else left_robust(fast_robust, oracle)
    return {
        "model": model_id, "norm": norm, "n": n, "device": device,
        "passes_fast": round(passes_fast, 1), "passes_aa": round(passes_aa, 1),
        "passes_standard": round(passes_standard, 1),
        "cost_vs_aa": round(passes_fast / passes_aa, 4),
        "seconds_fast": round(seconds_fast, 1), "seconds_aa": round(seconds_aa, 1),
        "seconds_vs_aa": round(seconds_fast / seconds_aa, 4),
        "worst_fast": round(100.0 * float(fast_robust.mean()), 2),
        "worst_aa": round(100.0 * float(robust[AA[norm]].mean()), 2),
        "worst_standard": round(worst_standard, 2),
        "missed_vs_standard": len(missed), "missed_vs_standard_samples": missed,
        "aa_missed_vs_standard": len(aa_missed),
        "missed_vs_oracle": None if oracle_missed is None else len(oracle_missed),
        "missed_vs_oracle_samples": oracle_missed,
        "oracle": ("results-oracle file" if oracle is not None
                   else "none: the oracle covers the models at or above its line"),
        "versions": versions(),
    }


def restandard(row: dict[str, Any], runs: Path) -> dict[str, Any] | None:
    """The entry with passes_standard re-derived from the committed store after the
    standard set grew, or None where its worst case moved: a member that breaks more
    changes missed_vs_standard, which needs fast's own per-sample verdicts (a re-run).
    Growing the set only adds breaks, so an unchanged worst case means the same ones."""
    _, passes, worst = standard_broken(committed_store(row["model"], row["norm"], runs), row["n"],
                                       row["norm"])
    if round(worst, 2) != row["worst_standard"]:
        return None
    return {**row, "passes_standard": round(passes, 1)}


TABLE_HEADER = ("| model | norm | n | cost_vs_aa | seconds_vs_aa | worst fast / AA / standard | "
                "missed vs standard: fast / AA | missed vs oracle |")


def table_order(row: dict[str, Any]) -> tuple[int, str, str]:
    """The table's order: by norm, then dataset, then model (the results file keeps the
    order its entries were first written in)."""
    return NORMS.index(row["norm"]), MODELS.get(row["model"]).dataset, row["model"]


def render_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table benchmarks/README.md quotes: every entry, in table_order."""
    lines = [table_line(r) for r in sorted(rows, key=table_order)]
    return "\n".join([TABLE_HEADER, "|---" * 8 + "|", *lines])


def table_line(row: dict[str, Any]) -> str:
    """One entry as the Markdown row benchmarks/README.md quotes ("-": no oracle entry)."""
    oracle = "-" if row["missed_vs_oracle"] is None else str(row["missed_vs_oracle"])
    return (f"| {row['model']} | {row['norm']} | {row['n']} | {row['cost_vs_aa']:.3f} | "
            f"{row['seconds_vs_aa']:.3f} | {row['worst_fast']:.2f} / {row['worst_aa']:.2f} / "
            f"{row['worst_standard']:.2f} | {row['missed_vs_standard']} / "
            f"{row['aa_missed_vs_standard']} | {oracle} |")


def zoo_rows(norm: str, leaderboards: Path) -> list[str]:
    """The zoo models with a measured row on the digits and mnist-t10k leaderboards."""
    found = []
    for dataset in ("digits", "mnist-t10k"):
        table = read_table(leaderboards / f"{dataset}-{norm}.csv")
        found += sorted(m for m in table[table["source"] == "measured"]["model"] if m in MODELS)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated (default: every zoo model)")
    parser.add_argument("--norms", default=",".join(NORMS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default=RUNS_DIR)
    parser.add_argument("--leaderboards", default=LEADERBOARD_DIR)
    parser.add_argument("--n-examples", type=int, default=None,
                        help="first N test points (default: the committed row's n)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--table", action="store_true",
                        help="print the results file as benchmarks/README.md's table; run nothing")
    parser.add_argument("--standard-only", action="store_true",
                        help="re-derive passes_standard of the file's entries from the committed "
                             "store (after the standard set grew); run no attack")
    args = parser.parse_args(argv)
    if (args.standard_only or args.table) and not Path(args.out).exists():
        raise SystemExit(f"error: {args.out}: no results file to read")
    if args.standard_only:
        rows = [r for r in read_rows(Path(args.out)) if r["norm"] in args.norms.split(",")
                and (not args.models or r["model"] in args.models.split(","))]
        fresh = [restandard(r, Path(args.runs_dir)) for r in rows]
        stale = [r["model"] for r, f in zip(rows, fresh) if f is None]
        if not args.no_write:
            write_rows(Path(args.out), [f for f in fresh if f is not None], merge=True)
        print(f"passes_standard re-derived on {len(rows) - len(stale)} entries; worst case moved, "
              f"re-run them: {', '.join(stale) or 'none'}")
        raise SystemExit(1 if stale else 0)
    if args.table:
        print(render_table(read_rows(Path(args.out))))
        return
    for norm in args.norms.split(","):
        models = args.models.split(",") if args.models else zoo_rows(norm, Path(args.leaderboards))
        for model_id in models:
            row = entry(model_id, norm, args.device, args.data_root, Path(args.runs_dir),
                        Path(args.leaderboards), args.n_examples)
            print(json.dumps({k: v for k, v in row.items() if k != "versions"}), flush=True)
            if not args.no_write:
                write_rows(Path(args.out), [row], merge=True)


if __name__ == "__main__":
    run_main(main)
