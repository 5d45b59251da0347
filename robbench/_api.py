"""The Python API: the same code path as the CLI (`robbench.evaluation.evaluator.evaluate`), returning
objects instead of printing. `import robbench` stays cheap: robbench/__init__.py
imports this module (and torch) on first use of one of its names.

    import robbench
    model = robbench.load_model("clustr-digits")
    result = robbench.evaluate("clustr-digits", attacks=["pgd20"], n_examples=50)
    result.worst_case_acc, result.per_sample  # per-sample results: a pandas DataFrame
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from robbench.attacks import ATTACKS
from robbench.config import DEFAULT_BATCH_SIZE, DEFAULT_SEED
from robbench.errors import RobbenchError
from robbench.evaluation.evaluator import EvalRequest, evaluate as run_eval, resolve_device
from robbench.evaluation.external import state_dict_sha256
from robbench.store.runs import RunStore
from robbench.zoo.lookup import MODELS, load_model as zoo_load


@dataclass(frozen=True)
class EvalResult:
    """Accuracies in percent over the first `n_examples` test images. `per_sample` has
    one row per image: index, label, pred, correct, `<attack>` (True where that attack
    succeeded) and `robust` (clean-correct and no attack succeeded: the worst case)."""

    model: str
    dataset: str
    clean_acc: float
    robust_acc: dict[str, float]
    worst_case_acc: float
    per_sample: pd.DataFrame
    unreliable: list[dict[str, str]]
    provenance: dict[str, Any]  # seed, n_examples, eps, threat model, checkpoint sha256, versions
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)  # the CLI's --json summary


def list_models() -> list[dict[str, Any]]:
    """Every zoo model: id, dataset, defense, architecture, checkpoint sha256 (None for
    paper-scale models without a committed checkpoint)."""
    return [{"id": mid, "dataset": e.dataset, "defense": e.defense, "architecture": e.architecture,
             "checkpoint_sha256": e.checkpoint_sha256, "reference": e.reference}
            for mid, e in MODELS.items()]


def list_attacks() -> list[dict[str, Any]]:
    """Every registered attack id with its parameters (as `robbench attacks --json`)."""
    return [attack.listing() for _, attack in ATTACKS.items()]


def load_model(model_id: str, checkpoint: str | Path | None = None,
               device: str = "cpu") -> torch.nn.Module:
    """The zoo model's wrapper (logits whose argmax is the defense's rule), in eval mode.
    It remembers its id and checkpoint, so `evaluate(model)` records it as the zoo model
    while its weights are unchanged (and by a digest of its weights once they change)."""
    if not isinstance(model_id, str):
        raise RobbenchError(f"load_model() takes a zoo model id, not {model_id!r}")
    if not isinstance(device, str):
        raise RobbenchError(f"device must be a string, got {device!r}")
    checkpoint = _path_text("checkpoint", checkpoint)
    loaded = zoo_load(model_id, checkpoint, resolve_device(device))
    model = loaded.model
    model.robbench_id = model_id
    model.robbench_checkpoint = None if checkpoint is None else str(checkpoint)
    model.robbench_weights = state_dict_sha256(model)
    model.checkpoint_sha256 = loaded.sha256
    return model


def evaluate(model: str | torch.nn.Module, *, attacks: Sequence[str] = ("pgd100",),
             dataset: str | None = None, n_examples: int | None = None, eps: float | None = None,
             device: str = "cpu", runs_dir: str | Path | None = None,
             leaderboard: str | Path | None = None, seed: int = DEFAULT_SEED,
             batch_size: int = DEFAULT_BATCH_SIZE, checkpoint: str | Path | None = None,
             data_root: str | Path | None = None, progress: bool = False) -> EvalResult:
    """Evaluates a zoo id, a third-party `PKG.MODULE:FACTORY` / `FILE.py:FACTORY`, a model
    from `load_model`, or any nn.Module returning logits on [0, 1] inputs (with
    `dataset`). Writes the per-sample results to `runs_dir` and upserts the leaderboard
    row exactly as `robbench eval` does; errors raise `RobbenchError`."""
    if isinstance(attacks, str):
        attacks = [a for a in attacks.split(",") if a]
    request = EvalRequest(
        model_id="", attacks=list(attacks) if isinstance(attacks, (list, tuple)) else attacks,
        n_examples=n_examples, eps=eps, batch_size=batch_size, seed=seed, device=device,
        checkpoint=_path_text("checkpoint", checkpoint), data_root=_path_text("data_root", data_root),
        runs_dir=_path("runs_dir", runs_dir), leaderboard=_path("leaderboard", leaderboard),
        progress=bool(progress), dataset=dataset)
    if isinstance(model, str):
        request.model_id = model
    elif isinstance(model, torch.nn.Module):
        if _unchanged_zoo_model(model) and checkpoint is None:
            request.model_id, request.checkpoint = model.robbench_id, model.robbench_checkpoint
        else:
            request.module = model
    else:
        raise RobbenchError(f"evaluate() takes a model id or an nn.Module, not {type(model).__name__}")
    summary = run_eval(request)
    return _result(summary)


def _path(name: str, value: Any) -> Path | None:
    """A path argument as a Path; anything else is a RobbenchError, not a TypeError."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise RobbenchError(f"{name} must be a path, got {value!r}")
    return None if value is None else Path(value)


def _path_text(name: str, value: Any) -> str | None:
    path = _path(name, value)
    return None if path is None else str(path)


def _unchanged_zoo_model(model: torch.nn.Module) -> bool:
    """Loaded by `load_model` and its weights are still the checkpoint's."""
    weights = getattr(model, "robbench_weights", None)
    return weights is not None and state_dict_sha256(model) == weights


def per_sample_frame(run_dir: str | Path, n: int, attack_ids: Sequence[str]) -> pd.DataFrame:
    """One row per sample 0..n-1 from the run's records (robbench.store.runs)."""
    store = RunStore(Path(run_dir))
    frame = store.load_clean().set_index("index").loc[range(n)].reset_index()
    robust = frame["correct"].to_numpy(dtype=bool).copy()
    for attack_id in attack_ids:
        rows = store.load_attack(attack_id)[0].set_index("index").loc[range(n)]
        success = rows["success"].to_numpy(dtype=bool)
        frame[attack_id] = success
        robust &= ~success
    frame["robust"] = robust
    return frame


def _result(summary: dict[str, Any]) -> EvalResult:
    attack_ids = summary["worst_case_over"]
    return EvalResult(
        model=summary["model"], dataset=summary["dataset"], clean_acc=summary["clean_acc"],
        robust_acc={a: r["robust_acc"] for a, r in summary["attacks"].items()},
        worst_case_acc=summary["worst_case_acc"],
        per_sample=per_sample_frame(summary["run_dir"], summary["n_examples"], attack_ids),
        unreliable=summary["unreliable"],
        provenance={k: summary[k] for k in ("model", "dataset", "threat_model", "eps",
                                            "n_examples", "seed", "checkpoint_sha256",
                                            "checkpoint_source", "versions", "run_dir",
                                            "leaderboard", "leaderboard_model")},
        notes=summary["notes"], summary=summary)
