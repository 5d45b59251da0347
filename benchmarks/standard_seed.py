"""How reproducible the committed standard set's breaks are: `python -m
benchmarks.standard_seed --seed 1` runs the standard set again at another seed on the
committed row's points and compares it, sample by sample, with the committed run (seed
0). Writes benchmarks/results-standard-seed<SEED>.json, one entry per (model, norm),
merged.

Why: `fast`'s done-when counts the committed standard set's breaks that fast leaves
robust (benchmarks.fast). Some of those breaks are samples that one random start in ten
or twenty breaks; the standard set's tens of restarts catch such a sample at one seed
and may miss it at the next. What the same set misses of its own breaks at another seed
is a floor under what a single run of any attack can be asked to reach, and fast's
misses that the set breaks at both seeds are the ones no seed explains.

Reported per entry:
- worst_committed, worst_seed: the standard set's worst case (%) at seed 0 and here.
- committed_breaks: clean-correct samples some standard attack on record broke.
- missed_by_seed (+ _samples): those the set at this seed leaves robust;
  new_breaks (+ _samples): samples it breaks that the committed run left robust.
- fast_missed_samples: results-fast.json's missed_vs_standard_samples for the entry
  (those among the first n points);
  fast_missed_stable (+ _samples): those of them the set at this seed breaks too."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import run_main
from benchmarks.fast import OUT as FAST_OUT
from benchmarks.fast import STANDARD, run_eval, standard_broken
from benchmarks.oracle import committed_store, row_n
from benchmarks.results_file import read_rows, write_rows
from robbench.config import LEADERBOARD_DIR, RUNS_DIR
from robbench.evaluation.evaluator import versions
from robbench.store.runs import RunStore


def seed_store(model_id: str, norm: str, n: int, seed: int, device: str, data_root: str | None,
               runs: Path) -> RunStore:
    """The store of the standard set at `seed` on the first n points, run into `runs`
    (records already there with the same parameters are reused, not run again)."""
    summary = run_eval(model_id, STANDARD[norm], n, device, data_root, runs, seed)
    return RunStore(Path(summary["run_dir"]))


def compare(committed: np.ndarray, at_seed: np.ndarray, fast_missed: list[int]) -> dict[str, Any]:
    """Per-sample breaks of the committed run and of the run at another seed (booleans
    over the same points), and the committed breaks fast left robust: what each run
    breaks that the other does not, and which of fast's misses both runs break."""
    missed = np.flatnonzero(committed & ~at_seed).tolist()
    new = np.flatnonzero(at_seed & ~committed).tolist()
    stable = [i for i in fast_missed if at_seed[i]]
    return {"committed_breaks": int(committed.sum()),
            "missed_by_seed": len(missed), "missed_by_seed_samples": missed,
            "new_breaks": len(new), "new_breaks_samples": new,
            "fast_missed_samples": fast_missed,
            "fast_missed_stable": len(stable), "fast_missed_stable_samples": stable}


def entry(model_id: str, norm: str, seed: int, device: str, data_root: str | None, runs: Path,
          seed_runs: Path, leaderboards: Path, fast_rows: list[dict[str, Any]],
          n: int | None = None) -> dict[str, Any]:
    fast = next((r for r in fast_rows if (r["model"], r["norm"]) == (model_id, norm)), None)
    if fast is None:  # before the standard set runs, not after
        raise SystemExit(f"error: {FAST_OUT.name} has no entry for {model_id} {norm}")
    if n is None:
        n = row_n(model_id, leaderboards, norm)
    committed, _, worst_committed = standard_broken(committed_store(model_id, norm, runs), n, norm)
    at_seed, _, worst_seed = standard_broken(
        seed_store(model_id, norm, n, seed, device, data_root, seed_runs), n, norm)
    fast_missed = [i for i in fast["missed_vs_standard_samples"] if i < n]
    return {"model": model_id, "norm": norm, "n": n, "seed": seed, "device": device,
            "worst_committed": round(worst_committed, 2), "worst_seed": round(worst_seed, 2),
            **compare(committed, at_seed, fast_missed),
            "versions": versions()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma-separated zoo model ids")
    parser.add_argument("--norms", default="Linf")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default=RUNS_DIR, help="the committed runs (seed 0)")
    parser.add_argument("--seed-runs", default=None,
                        help="keep the runs at --seed here (default: a temporary directory)")
    parser.add_argument("--leaderboards", default=LEADERBOARD_DIR)
    parser.add_argument("--n-examples", type=int, default=None,
                        help="first N test points (default: the committed row's n)")
    parser.add_argument("--out", default=None,
                        help="default: benchmarks/results-standard-seed<SEED>.json")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.seed == 0:
        raise SystemExit("error: --seed 0 is the committed run's seed; compare another")
    out = Path(args.out or Path(__file__).parent / f"results-standard-seed{args.seed}.json")
    fast_rows = read_rows(FAST_OUT)
    with tempfile.TemporaryDirectory() as scratch:
        seed_runs = Path(args.seed_runs or scratch)
        for norm in args.norms.split(","):
            for model_id in args.models.split(","):
                row = entry(model_id, norm, args.seed, args.device, args.data_root,
                            Path(args.runs_dir), seed_runs, Path(args.leaderboards), fast_rows,
                            args.n_examples)
                print(json.dumps({k: v for k, v in row.items() if k != "versions"}), flush=True)
                if not args.no_write:
                    write_rows(out, [row], merge=True)


if __name__ == "__main__":
    run_main(main)
