"""What the worst-case cascade saves: `python -m benchmarks.cascade --json` (writes
benchmarks/results-cascade.json).

For each model (default at-digits, trades-mnist-t10k on its first 100 test points, and
nominal-digits, where most samples fall to the first attack), `robbench eval` runs the
standard L∞ attack set twice, into two scratch results stores: every attack on every
sample (the leaderboards' way, per-attack columns) and as `--cascade` (each attack
only on the samples every earlier one left robust). Reported per model: both wall
times and forward+backward passes, the speed-up, both worst cases, and the samples
whose per-sample verdict differs (library attacks draw their randomness per batch,
so a batch of other samples may start them elsewhere; ours are per sample). Run it on
an otherwise idle machine: the two runs are timed one after the other. With --models,
those models' rows replace theirs in the file and the others stay."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import run_main
from benchmarks.results_file import write_rows
from robbench.config import STANDARD_ATTACKS
from robbench.evaluation.evaluator import EvalRequest, evaluate, versions
from robbench.store.runs import RunStore
from robbench.evaluation.scoring import WORST_CASE, covering_records, robust_vectors

DEFAULT_OUT = Path("benchmarks/results-cascade.json")
DEFAULT_MODELS = ["at-digits", "trades-mnist-t10k", "nominal-digits"]
DEFAULT_N = {"trades-mnist-t10k": 100}  # others: every test point


def timed_eval(model_id: str, cascade: bool, n: int | None, device: str, data_root: str | None,
               runs: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    summary = evaluate(EvalRequest(model_id=model_id, attacks=["standard"], n_examples=n,
                                   device=device, data_root=data_root, runs_dir=runs,
                                   leaderboard=runs / "scratch.csv", progress=False,
                                   cascade=cascade))
    return time.perf_counter() - started, summary


def passes(store: RunStore, n: int) -> int:
    return sum(int(rows["n_forward"].sum() + rows["n_backward"].sum())
               for _, rows, _ in covering_records(store, n))


def bench(model_id: str, n: int | None, device: str, data_root: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as every_dir, tempfile.TemporaryDirectory() as cascade_dir:
        t_every, every = timed_eval(model_id, False, n, device, data_root, Path(every_dir))
        t_cascade, cascade = timed_eval(model_id, True, n, device, data_root, Path(cascade_dir))
        n = every["n_examples"]
        stores = [RunStore(Path(s["run_dir"])) for s in (every, cascade)]
        robust = [robust_vectors(s, n)[WORST_CASE] for s in stores]
        differ = np.flatnonzero(robust[0] != robust[1]).tolist()
        cost = [passes(s, n) for s in stores]
    return {
        "model": model_id, "n": n, "attacks": list(STANDARD_ATTACKS["standard"]), "device": device,
        "seconds": {"every_attack": round(t_every, 1), "cascade": round(t_cascade, 1)},
        "speedup_seconds": round(t_every / t_cascade, 2),
        "passes": {"every_attack": cost[0], "cascade": cost[1]},
        "speedup_passes": round(cost[0] / cost[1], 2),
        "worst_case_acc": {"every_attack": every["worst_case_acc"], "cascade": cascade["worst_case_acc"]},
        "samples_that_differ": differ,
        "versions": versions(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help=f"comma-separated (default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--n-examples", type=int, default=None,
                        help=f"first N test points (default: all; {DEFAULT_N})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", action="store_true", help=f"write {DEFAULT_OUT}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    results = []
    models = [m for m in args.models.split(",") if m] if args.models else DEFAULT_MODELS
    for model_id in models:
        print(f"{model_id}: every attack on every sample, then the cascade ...", flush=True)
        r = bench(model_id, args.n_examples or DEFAULT_N.get(model_id), args.device, args.data_root)
        results.append(r)
        print(f"{model_id}: n={r['n']} every attack {r['seconds']['every_attack']} s, cascade "
              f"{r['seconds']['cascade']} s ({r['speedup_seconds']}x; passes {r['speedup_passes']}x); "
              f"worst case {r['worst_case_acc']['every_attack']:.2f} vs {r['worst_case_acc']['cascade']:.2f}, "
              f"{len(r['samples_that_differ'])} samples differ", flush=True)
        if args.json:
            write_rows(args.out, results, merge=bool(args.models))
            print(f"wrote {args.out}")


if __name__ == "__main__":
    run_main(main)
