"""An independent check of the published worst case: for the zoo models whose L∞
worst case is at least 40%, independent libraries (torchattacks APGD-CE, APGD-DLR and
PGD; pyautoattack's standard AutoAttack) attack every test sample the leaderboard row
covers, and every sample a library breaks that robbench counts as robust is listed.
There must be none.

    python -m benchmarks.oracle --dataset digits --json --out benchmarks/results-oracle-digits.json

A library's point counts as broken only if it is within ε (L∞, 1e-6 slack) and the
wrapped model, whose argmax is the defense's own rule, misclassifies it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from model_zoo.zoo import MODELS, load_model
from robbench.config import DEFAULT_SEED, LEADERBOARD_DIR, RUNS_DIR, THREAT_DEFAULTS
from robbench.datasets import load_split
from robbench.leaderboard import read_table
from robbench.results import RunStore, run_dir

LIBRARY_ATTACKS = ("torchattacks-apgd-ce", "torchattacks-apgd-dlr", "torchattacks-pgd", "pyautoattack")
MIN_ROBUST = 40.0
BATCH = 250


def robust_models(dataset: str, leaderboards: Path) -> list[str]:
    table = read_table(leaderboards / f"{dataset}-Linf.csv")
    rows = table[(table["source"] == "measured") & (table["worst_case_acc"] >= MIN_ROBUST)]
    return sorted(m for m in rows["model"] if m in MODELS)


def robbench_robust(model_id: str, n: int, runs: Path) -> torch.Tensor:
    """Per sample: clean-correct and no attack on record succeeded (the row's worst case)."""
    entry = MODELS.get(model_id)
    eps = THREAT_DEFAULTS[entry.dataset].linf_eps
    store = RunStore(run_dir(runs, model_id, entry.checkpoint_sha256, "Linf", eps, DEFAULT_SEED))
    robust = torch.tensor(store.load_clean().set_index("index").loc[range(n), "correct"].to_numpy())
    for attack_id in store.attack_ids():
        rows = store.load_attack(attack_id)[0].set_index("index")
        if set(range(n)) <= set(rows.index):
            robust &= ~torch.tensor(rows.loc[range(n), "success"].to_numpy())
    return robust


def library_attack(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   eps: float) -> torch.Tensor:
    if name == "pyautoattack":
        from pyautoattack import AutoAttack

        adversary = AutoAttack(model, device=x.device, eps=eps, norm="Linf", seed=1, version="standard")
        adversary.verbose = False
        return adversary.run_standard_evaluation(x, y, batch_size=BATCH)[0]
    import torchattacks

    if name == "torchattacks-pgd":
        attack = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=100, random_start=True)
    else:
        attack = torchattacks.APGD(model, norm="Linf", eps=eps, steps=100, n_restarts=1, seed=1,
                                   loss=name.rsplit("-", 1)[1])
    torch.manual_seed(1)
    return torch.cat([attack(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(y), BATCH)])


@torch.no_grad()
def broken(model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
           eps: float) -> torch.Tensor:
    inside = (x_adv - x).abs().flatten(1).amax(dim=1) <= eps + 1e-6
    wrong = torch.cat([model(x_adv[i:i + BATCH]).argmax(1) for i in range(0, len(y), BATCH)]) != y
    return (inside & wrong).cpu()


def oracle(model_id: str, n: int | None, attacks: tuple[str, ...], device: str,
           data_root: str | None, runs: Path, leaderboards: Path) -> dict[str, Any]:
    entry = MODELS.get(model_id)
    table = read_table(leaderboards / f"{entry.dataset}-Linf.csv").set_index("model")
    n = int(table.loc[model_id, "n_examples"]) if n is None else n
    eps = THREAT_DEFAULTS[entry.dataset].linf_eps
    model = load_model(model_id, device=device).model.eval()
    test = load_split(entry.dataset, "test", data_root)
    x, y = test.x[:n].to(device), test.y[:n].to(device)
    ours = robbench_robust(model_id, n, runs)
    with torch.no_grad():
        correct = torch.cat([model(x[i:i + BATCH]).argmax(1) for i in range(0, n, BATCH)]).cpu() == y.cpu()
    library_robust = correct.clone()
    per_attack, started = {}, time.perf_counter()
    for name in attacks:
        fooled = broken(model, x, library_attack(name, model, x, y, eps).detach(), y, eps)
        per_attack[name] = round(100.0 * float((correct & ~fooled).float().mean()), 2)
        library_robust &= ~fooled
    missed = (ours & ~library_robust).nonzero().squeeze(1).tolist()
    return {"model": model_id, "n": n, "eps": eps, "robbench_worst_case_acc": round(100.0 * float(ours.float().mean()), 2),
            "library_worst_case_acc": round(100.0 * float(library_robust.float().mean()), 2),
            "library": per_attack, "missed": missed, "seconds": round(time.perf_counter() - started, 1),
            "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--models", default=None, help="comma-separated (default: worst case >= 40%%)")
    parser.add_argument("--n-examples", type=int, default=None, help="default: the row's n")
    parser.add_argument("--attacks", default=",".join(LIBRARY_ATTACKS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default=RUNS_DIR)
    parser.add_argument("--leaderboards", default=LEADERBOARD_DIR)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    models = args.models.split(",") if args.models else robust_models(args.dataset, Path(args.leaderboards))
    results = []
    for model_id in models:
        results.append(oracle(model_id, args.n_examples, tuple(args.attacks.split(",")), args.device,
                              args.data_root, Path(args.runs_dir), Path(args.leaderboards)))
        print(json.dumps(results[-1]), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    bad = [r["model"] for r in results if r["missed"]]
    print(f"missed by robbench: {', '.join(bad) if bad else 'none'}")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
