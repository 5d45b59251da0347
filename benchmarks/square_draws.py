"""How far one Square draw is from converged: fresh draws of AutoAttack's Square (L2,
5000 queries each, seeds 100, 101, ..., or from --first-seed) on the samples a model's
committed L2 row counts robust, and how the union of their breaks grows. A union still
growing says a single draw (what `square-l2` records) leaves robust samples that Square
can break; a break at all says the row counts a sample robust that Square can break.

    python -m benchmarks.square_draws --model at-mnist-t10k --draws 3 --data-root DIR

writes benchmarks/results-square-draws.json (one row per model, merged)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import run_main
from benchmarks.oracle import broken, robbench_robust, row_n
from benchmarks.results_file import write_rows
from robbench.zoo.lookup import MODELS, load_model
from robbench.config import LEADERBOARD_DIR, RUNS_DIR, THREAT_DEFAULTS
from robbench.datasets import load_split

OUT = Path(__file__).parent / "results-square-draws.json"


def square_draws(model_id: str, draws: int, queries: int, data_root: str | None, runs: Path,
                 n: int | None = None, first_seed: int = 100) -> dict[str, Any]:
    from pyautoattack import AutoAttack

    entry = MODELS.get(model_id)
    eps = THREAT_DEFAULTS[entry.dataset].eps("L2")
    n = row_n(model_id, Path(LEADERBOARD_DIR), "L2") if n is None else n
    model = load_model(model_id).model.eval()
    test = load_split(entry.dataset, "test", data_root)
    robust = robbench_robust(model_id, n, runs, "L2").nonzero().squeeze(1)
    x, y = test.x[robust], test.y[robust]
    union = torch.zeros(len(robust), dtype=torch.bool)
    per_draw = []
    for draw in range(draws):
        started = time.perf_counter()
        adversary = AutoAttack(model, attacks=["square"], device="cpu", eps=eps, norm="L2",
                               seed=first_seed + draw, version="custom")
        adversary.verbose = False
        adversary.square.n_queries = queries
        hit = broken(model, x, adversary.run_standard_evaluation(x, y, batch_size=len(y))[0], y, eps, "L2")
        per_draw.append({"seed": first_seed + draw, "broke": int(hit.sum()), "new": int((hit & ~union).sum()),
                         "seconds": round(time.perf_counter() - started, 1)})
        union |= hit
        per_draw[-1]["union"] = int(union.sum())
        print(json.dumps({"model": model_id, **per_draw[-1]}), flush=True)
    return {"model": model_id, "n": n, "eps": eps, "queries": queries, "first_seed": first_seed,
            "row_robust": len(robust),
            "draws": per_draw, "union_broken_samples": robust[union].tolist()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--n-examples", type=int, default=None, help="default: the row's n")
    parser.add_argument("--first-seed", type=int, default=100,
                        help="draw k uses seed first-seed + k (100..103: the committed draws)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default=RUNS_DIR)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    row = square_draws(args.model, args.draws, args.queries, args.data_root, Path(args.runs_dir),
                       args.n_examples, args.first_seed)
    write_rows(Path(args.out), [row], merge=True)


if __name__ == "__main__":
    run_main(main)
