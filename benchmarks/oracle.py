"""An independent check of the published worst case, for both threat models: on the zoo
models whose worst case is at least 40% (L∞) or 10% (L2), attacks from libraries and
families the row does not rest on attack every test sample the leaderboard row covers,
and every sample a library breaks that robbench counts as robust is listed. There must
be none.

    python -m benchmarks.oracle --dataset digits --norm L2

writes benchmarks/results-oracle-<dataset>-<norm>.json. The sources are of different
kinds, so that a blind spot shared by one family cannot hide a break:
- L∞: torchattacks APGD-CE, APGD-DLR and PGD-100 (gradient); pyautoattack's standard
  AutoAttack (gradient and Square, gradient-free).
- L2: pyautoattack's standard L2 AutoAttack (APGD-CE, APGD-T, FAB-T: gradient and
  minimum-norm; Square: gradient-free, from its own seed and batches) and foolbox's
  FMN-L2 (minimum-norm; robbench's rows use foolbox only for C&W and DDN), its points
  thresholded at ε; on the samples the row counts robust (ROBUST_ONLY). The L2 rows run
  pyautoattack's Square, FAB-T and APGD-T too (square-l2, square-l2-long,
  square-l2-long2, fab-t-l2, apgd-t-l2), with other seeds and batches, and the l2-suite
  runs APGD-CE in reduced form: FMN is the one source they share nothing with.
  torchattacks' Square-L2 is a port of the same Square and ran at over 10 minutes per
  model: not used.

A library's point counts as broken only if it lies in [0, 1], within ε (1e-6 slack for
L∞, 1e-5 relative for L2) and the wrapped model, whose argmax is the defense's own rule,
misclassifies it."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import run_main
from benchmarks.results_file import write_rows
from robbench.zoo.lookup import MODELS, load_model
from robbench.attacks.base import perturbation_norm
from robbench.config import DEFAULT_SEED, LEADERBOARD_DIR, RUNS_DIR, THREAT_DEFAULTS
from robbench.datasets import load_split
from robbench.evaluation.scoring import WORST_CASE, robust_vectors
from robbench.store.table import read_table
from robbench.store.runs import RunStore, run_dir

LIBRARY_ATTACKS = {
    "Linf": ("torchattacks-apgd-ce", "torchattacks-apgd-dlr", "torchattacks-pgd", "pyautoattack"),
    "L2": ("pyautoattack", "foolbox-fmn"),
}
# L2: only the samples the row counts robust are attacked, the only ones where a miss can
# be (pyautoattack's standard L2 version takes up to 7 minutes per mnist-t10k model on
# all 500 points: seconds_aa in results-fast.json); library_worst is then the worst case
# of the union.
ROBUST_ONLY = {"Linf": False, "L2": True}
MIN_ROBUST = {"Linf": 40.0, "L2": 10.0}
BATCH = 250
SQUARE_QUERIES = 5000  # torchattacks' Square, as AutoAttack runs it
FMN_STEPS = 1000


def results_path(dataset: str, norm: str) -> Path:
    return Path(__file__).parent / f"results-oracle-{dataset}-{norm}.json"


def robust_models(dataset: str, leaderboards: Path, norm: str = "Linf") -> list[str]:
    table = read_table(leaderboards / f"{dataset}-{norm}.csv")
    rows = table[(table["source"] == "measured") & (table["worst_case_acc"] >= MIN_ROBUST[norm])]
    return sorted(m for m in rows["model"] if m in MODELS)


def row_n(model_id: str, leaderboards: Path, norm: str) -> int:
    """The n of the model's committed leaderboard row: the samples an oracle must cover."""
    table = read_table(leaderboards / f"{MODELS.get(model_id).dataset}-{norm}.csv").set_index("model")
    return int(table.loc[model_id, "n_examples"])


def committed_store(model_id: str, norm: str, runs: Path) -> RunStore:
    """The run of the zoo model's leaderboard row: its checkpoint, the protocol ε, seed 0."""
    entry = MODELS.get(model_id)
    eps = THREAT_DEFAULTS[entry.dataset].eps(norm)
    return RunStore(run_dir(runs, model_id, entry.checkpoint_sha256, norm, eps, DEFAULT_SEED))


def robbench_robust(model_id: str, n: int, runs: Path, norm: str = "Linf") -> torch.Tensor:
    """Per sample: clean-correct and no attack on record succeeded (the row's worst case)."""
    return torch.from_numpy(robust_vectors(committed_store(model_id, norm, runs), n)[WORST_CASE])


def library_attack(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   eps: float, norm: str) -> torch.Tensor:
    """The library's points for x (clean points where it returns none)."""
    if name == "pyautoattack":
        from pyautoattack import AutoAttack

        adversary = AutoAttack(model, device=x.device, eps=eps, norm=norm, seed=1, version="standard")
        adversary.verbose = False
        return adversary.run_standard_evaluation(x, y, batch_size=BATCH)[0]
    if name == "foolbox-fmn":
        import foolbox as fb

        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        attack = fb.attacks.L2FMNAttack(steps=FMN_STEPS)
        return torch.cat([attack(fmodel, x[i:i + BATCH], y[i:i + BATCH], epsilons=None)[0]
                          for i in range(0, len(y), BATCH)])
    import torchattacks

    if name == "torchattacks-pgd":
        attack = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=100, random_start=True)
    elif name == "torchattacks-square":
        attack = torchattacks.Square(model, norm=norm, eps=eps, n_queries=SQUARE_QUERIES, n_restarts=1, seed=1)
    else:
        attack = torchattacks.APGD(model, norm=norm, eps=eps, steps=100, n_restarts=1, seed=1,
                                   loss=name.rsplit("-", 1)[1])
    torch.manual_seed(1)
    return torch.cat([attack(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(y), BATCH)])


@torch.no_grad()
def broken(model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
           eps: float, norm: str = "Linf") -> torch.Tensor:
    """Per sample: x_adv is in the box, within ε of x and misclassified (robbench's check)."""
    size = perturbation_norm(x_adv - x, norm)
    inside = size <= (eps + 1e-6 if norm == "Linf" else eps * (1 + 1e-5))
    in_box = (x_adv >= 0).flatten(1).all(dim=1) & (x_adv <= 1).flatten(1).all(dim=1)
    wrong = torch.cat([model(x_adv[i:i + BATCH]).argmax(1) for i in range(0, len(y), BATCH)]) != y
    return (inside & in_box & wrong).cpu()


def oracle(model_id: str, n: int | None, attacks: tuple[str, ...], device: str,
           data_root: str | None, runs: Path, leaderboards: Path, norm: str = "Linf",
           robust_only: bool = False) -> dict[str, Any]:
    """One model's row. With robust_only, the libraries attack only the samples the row
    counts robust, and `library_worst` is the worst case of robbench's and their union."""
    entry = MODELS.get(model_id)
    n = row_n(model_id, leaderboards, norm) if n is None else n
    eps = THREAT_DEFAULTS[entry.dataset].eps(norm)
    model = load_model(model_id, device=device).model.eval()
    test = load_split(entry.dataset, "test", data_root)
    x, y = test.x[:n].to(device), test.y[:n].to(device)
    ours = robbench_robust(model_id, n, runs, norm)
    with torch.no_grad():
        correct = torch.cat([model(x[i:i + BATCH]).argmax(1) for i in range(0, n, BATCH)]).cpu() == y.cpu()
    # the samples attacked: all, or (robust_only) those the row counts robust
    scope = ours.clone() if robust_only else torch.ones(n, dtype=torch.bool)
    rows = scope.nonzero().squeeze(1)
    library_robust = correct & scope
    per_attack, per_attack_missed, started = {}, {}, time.perf_counter()
    for name in attacks:
        fooled = torch.zeros(n, dtype=torch.bool)
        if len(rows):
            xs, ys = x[rows.to(x.device)], y[rows.to(x.device)]
            fooled[rows] = broken(model, xs, library_attack(name, model, xs, ys, eps, norm).detach(), ys,
                                  eps, norm)
        per_attack[name] = round(100.0 * float((correct & scope & ~fooled).float().mean()), 2)
        per_attack_missed[name] = (ours & fooled).nonzero().squeeze(1).tolist()
        library_robust &= ~fooled
    missed = (ours & ~library_robust).nonzero().squeeze(1).tolist()
    return {"model": model_id, "norm": norm, "n": n, "eps": eps,
            "robbench_worst": round(100.0 * float(ours.float().mean()), 2),
            "library_worst": round(100.0 * float(library_robust.float().mean()), 2),
            "missed": len(missed), "missed_samples": missed, "library": per_attack,
            "attacked": "the samples the row counts robust" if robust_only else "every sample",
            "library_missed_samples": per_attack_missed,
            "library_broken_samples": (~library_robust).nonzero().squeeze(1).tolist(),
            "seconds": round(time.perf_counter() - started, 1), "device": device}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--norm", default="Linf", choices=sorted(LIBRARY_ATTACKS))
    parser.add_argument("--models", default=None,
                        help="comma-separated (default: worst case >= 40%% L∞, >= 10%% L2)")
    parser.add_argument("--n-examples", type=int, default=None, help="default: the row's n")
    parser.add_argument("--attacks", default=None, help="default: the norm's library attacks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default=RUNS_DIR)
    parser.add_argument("--leaderboards", default=LEADERBOARD_DIR)
    parser.add_argument("--out", default=None,
                        help="merge the results into this JSON file (default: results-oracle-<dataset>-<norm>.json)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    models = (args.models.split(",") if args.models
              else robust_models(args.dataset, Path(args.leaderboards), args.norm))
    attacks = tuple(args.attacks.split(",")) if args.attacks else LIBRARY_ATTACKS[args.norm]
    out = None if args.no_write else Path(args.out) if args.out else results_path(args.dataset, args.norm)
    results = []
    for model_id in models:
        results.append(oracle(model_id, args.n_examples, attacks, args.device, args.data_root,
                              Path(args.runs_dir), Path(args.leaderboards), args.norm,
                              ROBUST_ONLY[args.norm]))
        print(json.dumps(results[-1]), flush=True)
        if out is not None:
            write_rows(out, results[-1:], merge=True)
    bad = [r["model"] for r in results if r["missed"]]
    print(f"missed by robbench: {', '.join(bad) if bad else 'none'}")
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    run_main(main)
