"""`robbench eval`: model id → manifest → wrapper → attacks → per-sample results →
leaderboard. Finished batches are on disk before the next starts, so an interrupted
run loses nothing and the same command resumes it."""

from __future__ import annotations

import datetime as dt
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import robbench
from model_zoo.zoo import MODELS, load_model
from robbench.attacks import ATTACKS, Attack, AttackResult
from robbench.attacks.base import run_in_batches
from robbench.config import DEFAULT_BATCH_SIZE, DEFAULT_SEED, LEADERBOARD_DIR, RUNS_DIR, THREAT_DEFAULTS
from robbench.datasets import DATASETS, load_split
from robbench.diagnostics import record_success_check, run_diagnostics, unreliable_text
from robbench.errors import RobbenchError
from robbench.leaderboard import default_path, upsert_row
from robbench.results import RunStore, run_dir
from robbench.sharding import sharded_attack


@dataclass
class EvalRequest:
    model_id: str
    attacks: list[str]
    n_examples: int | None = None  # None: the whole test split
    eps: float | None = None  # None: the protocol default for the dataset and norm
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = DEFAULT_SEED
    device: str = "cpu"
    checkpoint: str | None = None
    data_root: str | None = None
    download: bool = False
    runs_dir: Path = field(default_factory=lambda: Path(RUNS_DIR))
    leaderboard: Path | None = None  # None: leaderboards/<dataset>-<norm>.csv
    progress: bool = True
    backend: str = "local"  # "local" or "ray" (robbench.sharding)
    shards: int = 1  # Ray tasks per attack
    address: str | None = None  # a running Ray cluster; None starts a local one


def resolve_attacks(ids: list[str]) -> tuple[list[Attack], str]:
    if not ids:
        raise RobbenchError("no attack given; pass --attacks ID[,ID...] (see `robbench attacks`)")
    attacks = [ATTACKS.get(a) for a in ids]
    norms = {a.norm for a in attacks}
    if len(norms) > 1:
        by_norm = ", ".join(f"{a.id} ({a.norm})" for a in attacks)
        raise RobbenchError(f"attacks {by_norm} belong to different threat models; "
                            f"evaluate each norm in its own run")
    return attacks, norms.pop()


def check_eps(eps: float, norm: str, input_shape: tuple[int, ...]) -> None:
    if not math.isfinite(eps) or eps <= 0:
        raise RobbenchError(f"--eps must be a positive number, got {eps}")
    limit = 1.0 if norm == "Linf" else math.sqrt(math.prod(input_shape))
    if eps > limit:
        raise RobbenchError(f"--eps {eps} exceeds the input range: inputs lie in [0, 1], so an "
                            f"{norm} perturbation is at most {limit:.4g}")


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobbenchError(f"unknown --device {name!r}; use cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RobbenchError("--device cuda requested but CUDA is not available on this machine")
    return device


def evaluate(req: EvalRequest) -> dict[str, Any]:
    started = time.perf_counter()
    attacks, norm = resolve_attacks(req.attacks)
    entry = MODELS.get(req.model_id)
    spec = DATASETS.get(entry.dataset)
    protocol_eps = THREAT_DEFAULTS[entry.dataset].eps(norm)
    eps = protocol_eps if req.eps is None else req.eps
    check_eps(eps, norm, spec.input_shape)
    if req.n_examples is not None and req.n_examples <= 0:
        raise RobbenchError(f"--n-examples must be positive, got {req.n_examples}")
    if req.batch_size <= 0:
        raise RobbenchError(f"--batch-size must be positive, got {req.batch_size}")
    if req.backend not in ("local", "ray"):
        raise RobbenchError(f"--backend must be local or ray, got {req.backend!r}")
    if req.shards <= 0:
        raise RobbenchError(f"--shards must be positive, got {req.shards}")
    device = resolve_device(req.device)

    loaded = load_model(req.model_id, req.checkpoint, device)
    model = loaded.model
    test = load_split(entry.dataset, "test", req.data_root, req.download)
    n = len(test) if req.n_examples is None else req.n_examples
    if n > len(test):
        raise RobbenchError(f"--n-examples {n} exceeds the {len(test)} test images of {entry.dataset}")
    x_all, y_all = test.x[:n], test.y[:n]
    index = torch.arange(n)

    store = RunStore(run_dir(req.runs_dir, req.model_id, loaded.sha256, norm, eps, req.seed))
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    store.save_meta({
        "model": req.model_id, "dataset": entry.dataset, "defense": entry.defense,
        "architecture": entry.architecture, "threat_model": norm, "eps": eps,
        "protocol_eps": protocol_eps, "seed": req.seed, "n_examples": n,
        "checkpoint": str(loaded.checkpoint_path),
        "checkpoint_sha256": loaded.sha256, "reference": entry.reference, "date": date,
        "versions": versions(),
    })

    pred = clean_predictions(model, x_all, req.batch_size, device)
    store.save_clean(index, y_all, pred)
    correct = pred == y_all

    for attack in attacks:
        run_attack(attack, model, store, x_all, y_all, correct, eps, req, device)

    summary = summarize(store, n, requested=[a.id for a in attacks])
    # METHODS §5: checks that flag an unreliable evaluation (robbench/diagnostics.py)
    summary["unreliable"] = run_diagnostics(model, store, x_all, y_all, summary, norm=norm,
                                            seed=req.seed, num_classes=spec.num_classes,
                                            device=device)
    summary.update({"model": req.model_id, "dataset": entry.dataset, "threat_model": norm,
                    "eps": eps, "n_examples": n, "seed": req.seed,
                    "checkpoint_sha256": loaded.sha256, "run_dir": str(store.root),
                    "seconds": round(time.perf_counter() - started, 2)})
    lb_path = req.leaderboard or default_path(Path(LEADERBOARD_DIR), entry.dataset, norm, eps, protocol_eps)
    upsert_row(lb_path, leaderboard_row(summary, store.load_meta()))
    summary["leaderboard"] = str(lb_path)
    return summary


def versions() -> dict[str, str]:
    return {"robbench": robbench.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


@torch.inference_mode()
def clean_predictions(model: torch.nn.Module, x: torch.Tensor, batch_size: int,
                      device: torch.device) -> torch.Tensor:
    preds = [model(x[i:i + batch_size].to(device)).argmax(dim=1).cpu()
             for i in range(0, len(x), batch_size)]
    return torch.cat(preds)


def run_attack(attack: Attack, model: torch.nn.Module, store: RunStore, x: torch.Tensor,
               y: torch.Tensor, correct: torch.Tensor, eps: float, req: EvalRequest,
               device: torch.device) -> None:
    """Attacks the clean-correct samples this run dir has no row for yet."""
    done = set(store.start_attack(attack.id, attack.params())["index"].tolist())
    todo = torch.tensor([i for i in range(len(y)) if i not in done], dtype=torch.int64)
    wrong = todo[~correct[todo]]
    if len(wrong):  # misclassified already: the clean input is the adversarial example
        store.append_attack(attack.id, wrong, trivial_result(x[wrong]), 0.0)
    todo = todo[correct[todo]]
    bar = tqdm(total=len(todo), desc=attack.id, unit="img", leave=False,
               disable=None if req.progress else True)
    for idx, result, seconds in attack_batches(attack, model, x, y, todo, eps, req, device):
        store.append_attack(attack.id, idx, result, seconds)
        record_success_check(store, attack, model, idx, x[idx].to(device), y[idx].to(device),
                             result, eps)  # silent success
        bar.update(len(idx))
    bar.close()


def attack_batches(attack: Attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   todo: torch.Tensor, eps: float, req: EvalRequest, device: torch.device
                   ) -> Iterator[tuple[torch.Tensor, AttackResult, float]]:
    """(sample indices, result, seconds) per finished batch, here or on Ray."""
    if req.backend == "ray":
        yield from sharded_attack(attack, req.model_id, req.checkpoint, x, y, todo, eps, req.seed,
                                  req.batch_size, str(device), req.shards, req.address)
        return
    yield from run_in_batches(attack, model, x[todo], y[todo], todo, eps=eps, seed=req.seed,
                              batch_size=req.batch_size, device=device)


def trivial_result(x: torch.Tensor) -> AttackResult:
    """Clean-misclassified samples: the input itself is the adversarial, norm 0."""
    zeros = torch.zeros(len(x), dtype=torch.int64)
    return AttackResult(x_adv=x, success=torch.ones(len(x), dtype=torch.bool),
                        norm=torch.zeros(len(x)), n_forward=zeros, n_backward=zeros.clone())


def summarize(store: RunStore, n: int, requested: list[str]) -> dict[str, Any]:
    """Accuracies over samples 0..n-1. The worst case is per sample: robust only if
    clean-correct and no attack on record (this run's or an earlier one's, for the
    same checkpoint, ε and seed) succeeded on it — the mean of a per-sample min."""
    clean = store.load_clean().set_index("index").loc[range(n)]
    robust = clean["correct"].to_numpy().copy()
    attacks: dict[str, Any] = {}
    for attack_id in store.attack_ids():
        frame, meta = store.load_attack(attack_id)
        frame = frame.set_index("index")
        if not set(range(n)) <= set(frame.index):
            continue  # this attack has not covered these samples; never mix partial runs
        rows = frame.loc[range(n)]
        success = rows["success"].astype(bool).to_numpy()
        correct = clean["correct"].to_numpy()
        attacks[attack_id] = {
            "robust_acc": 100.0 * float((correct & ~success).mean()),
            "successes": int((success & correct).sum()),
            **norm_statistics(rows["norm"].to_numpy()[correct]),
            "n_forward": int(rows["n_forward"].sum()), "n_backward": int(rows["n_backward"].sum()),
            "seconds": round(meta["seconds"], 2), "flags": meta["flags"],
            "from_earlier_run": attack_id not in requested,
        }
        robust &= ~success
    return {"clean_acc": 100.0 * float(clean["correct"].mean()), "attacks": attacks,
            "worst_case_acc": 100.0 * float(robust.mean()), "worst_case_over": sorted(attacks)}


def norm_statistics(norms: np.ndarray) -> dict[str, Any]:
    """Over the clean-correct samples: mean and median norm of the adversarials found
    (any size: minimum-norm attacks report norms beyond ε too) and how many samples
    got none (norm inf: e.g. foolbox C&W's all-zero failure images)."""
    found = norms[np.isfinite(norms) & (norms > 0)]
    return {"mean_norm": float(found.mean()) if len(found) else None,
            "median_norm": float(np.median(found)) if len(found) else None,
            "failures": int(np.isinf(norms).sum())}


def leaderboard_row(summary: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    row = {
        "model": summary["model"], "defense": meta["defense"], "dataset": summary["dataset"],
        "threat_model": summary["threat_model"], "eps": round(summary["eps"], 6),
        "architecture": meta["architecture"], "clean_acc": round(summary["clean_acc"], 2),
        "worst_case_acc": round(summary["worst_case_acc"], 2),
        "n_examples": summary["n_examples"], "seed": summary["seed"],
        "checkpoint_sha256": summary["checkpoint_sha256"],
        "robbench_version": meta["versions"]["robbench"], "torch_version": meta["versions"]["torch"],
        "date": meta["date"], "source": "measured",
        "unreliable": unreliable_text(summary.get("unreliable", [])), "reference": meta["reference"],
    }
    for attack_id, result in summary["attacks"].items():
        row[attack_id] = round(result["robust_acc"], 2)
    return row
