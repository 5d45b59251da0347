"""Does a smaller C&W budget under-report? `python -m benchmarks.cw_budget`.

Re-runs `cw` with cheaper budgets on exactly the samples, batches and seed of the
committed run (runs/) of one model and compares, per sample, with the registered
9 binary-search steps x 1000 steps: robust accuracy at the protocol L2 ε, failures
(no adversarial found at any norm), and the median ratio of found norms (cheap /
registered) over samples both found. The registered budget stays only if the
cheaper ones lose robust accuracy, which is what decides the leaderboard.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from tabulate import tabulate

from benchmarks import run_main
from robbench.zoo.lookup import MODELS, load_model
from robbench.attacks import ATTACKS
from robbench.attacks.base import run_in_batches
from robbench.config import DEFAULT_BATCH_SIZE, DEFAULT_SEED, RUNS_DIR, THREAT_DEFAULTS
from robbench.datasets import load_split
from robbench.store.runs import RunStore, run_dir


def parse_budget(text: str) -> tuple[int, int]:
    searches, steps = text.lower().split("x")
    return int(searches), int(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="at-digits")
    parser.add_argument("--budgets", default="5x200,9x100",
                        help="comma-separated BINARY_SEARCH_STEPSxSTEPS")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    entry = MODELS.get(args.model)
    eps = THREAT_DEFAULTS[entry.dataset].eps("L2")
    loaded = load_model(args.model)
    store = RunStore(run_dir(Path(RUNS_DIR), args.model, loaded.sha256, "L2", eps, DEFAULT_SEED))
    committed = store.load_attack("cw")
    if committed is None:
        raise SystemExit(f"no committed cw run for {args.model} under {store.root}; "
                         f"run `robbench eval --model {args.model} --attacks cw` first")
    reference = committed[0].set_index("index").sort_index()
    n = len(reference)
    test = load_split(entry.dataset, "test", args.data_root, False)
    x, y = test.x[:n], test.y[:n]
    ref_norm = torch.tensor(reference["norm"].to_numpy(), dtype=torch.float32)

    rows = [["9x1000 (registered, committed)", 100 * (ref_norm > eps).float().mean().item(),
             int(torch.isinf(ref_norm).sum()), 1.0, committed[1].get("seconds")]]
    for budget in args.budgets.split(","):
        searches, steps = parse_budget(budget)
        attack = dataclasses.replace(ATTACKS.get("cw"), binary_search_steps=searches, steps=steps)
        started = time.perf_counter()
        norm = torch.cat([result.norm for _, result, _ in run_in_batches(
            attack, loaded.model, x, y, torch.arange(n), eps=eps, seed=DEFAULT_SEED,
            batch_size=DEFAULT_BATCH_SIZE, device="cpu")])
        both = torch.isfinite(norm) & torch.isfinite(ref_norm) & (ref_norm > 0)
        ratio = (norm[both] / ref_norm[both]).median().item()
        rows.append([budget, 100 * (norm > eps).float().mean().item(), int(torch.isinf(norm).sum()),
                     ratio, round(time.perf_counter() - started, 1)])
    print(f"{args.model}, n={n}, L2 eps={eps}, seed={DEFAULT_SEED}")
    print(tabulate(rows, headers=["budget", f"robust % at eps {eps}", "failures",
                                  "median norm ratio", "seconds"],
                   tablefmt="github", floatfmt=".2f"))


if __name__ == "__main__":
    run_main(main)
