"""Evaluates every committed zoo model of a dataset and prints a Markdown table:
`python -m benchmarks.zoo_table --dataset digits --attacks pgd20`. Per-sample results
go to runs/ and rows to leaderboards/ as with `robbench eval`."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from benchmarks import run_main
from robbench.zoo.lookup import MODELS
from robbench.evaluation.evaluator import EvalRequest, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--attacks", default="pgd20")
    parser.add_argument("--n-examples", type=int, default=None)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--models", default=None, help="comma-separated ids (default: all)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ids = args.models.split(",") if args.models else [
        mid for mid, e in MODELS.items() if e.dataset == args.dataset and e.checkpoint]
    attacks = args.attacks.split(",")
    rows = []
    for model_id in ids:
        s = evaluate(EvalRequest(model_id=model_id, attacks=attacks, n_examples=args.n_examples,
                                 data_root=args.data_root, device=args.device, progress=False))
        rows.append([model_id, f"{s['clean_acc']:.2f}"]
                    + [f"{s['attacks'][a]['robust_acc']:.2f}" for a in attacks]
                    + [f"{s['worst_case_acc']:.2f}", s["n_examples"], MODELS.get(model_id).train_seconds,
                       f"{s['seconds']:.0f}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    print(tabulate(rows, headers=["model", "clean", *attacks, "worst case", "n", "train s", "eval s"],
                   tablefmt="github"))


if __name__ == "__main__":
    run_main(main)
