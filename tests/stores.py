"""Run stores written through the store's own API, without running an attack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robbench.zoo.lookup import MODELS
from robbench.attacks import AttackResult
from robbench.store.runs import RunStore, run_dir

VERSIONS = {"robbench": "0.1.0", "torch": "2.14.1", "python": "3.11"}


def new_store(root: Path, model_id: str = "nominal-digits", *, seed: int = 0, eps: float = 0.2,
              sha: str | None = None, norm: str = "Linf", source: str | None = None) -> RunStore:
    """An opened run at `root`. `source`: zoo or file (default: zoo iff `sha` is the
    manifest's)."""
    entry = MODELS.get(model_id)
    sha = sha or entry.checkpoint_sha256
    store = RunStore(root)
    store.open({"model": model_id, "dataset": entry.dataset, "defense": entry.defense,
                "architecture": entry.architecture, "threat_model": norm, "eps": eps,
                "protocol_eps": 0.2 if norm == "Linf" else 1.0, "seed": seed,
                "checkpoint_sha256": sha,
                "checkpoint_source": source or ("zoo" if sha == entry.checkpoint_sha256 else "file"),
                "reference": entry.reference}, VERSIONS)
    return store


def new_run(runs: Path, model_id: str, **kw: Any) -> RunStore:
    """new_store at the run dir `robbench eval` would use under `runs`."""
    entry = MODELS.get(model_id)
    sha = kw.get("sha") or entry.checkpoint_sha256
    root = run_dir(runs, model_id, sha, kw.get("norm", "Linf"), kw.get("eps", 0.2), kw.get("seed", 0))
    return new_store(root, model_id, **kw)


def write_clean(store: RunStore, labels: list[int], preds: list[int]) -> None:
    n = len(labels)
    store.save_clean(torch.arange(n), torch.tensor(labels), torch.tensor(preds))


def write_attack(store: RunStore, attack_id: str, success: list[bool],
                 params: dict[str, Any] | None = None, norm: list[float] | None = None,
                 start: int = 0, mismatch: list[bool] | None = None,
                 passes: tuple[list[int], list[int]] | None = None, seconds: float = 0.0,
                 versions: dict[str, str] | None = None) -> None:
    """Rows for samples start..start+len(success)-1; `passes`: their (forward, backward)
    counts (default none)."""
    n = len(success)
    params = params or {"id": attack_id}
    store.start_attack(attack_id, params)
    forward, backward = ((torch.zeros(n, dtype=torch.int64),) * 2 if passes is None
                         else (torch.tensor(passes[0]), torch.tensor(passes[1])))
    store.append_attack(attack_id, params, torch.arange(start, start + n), AttackResult(
        x_adv=torch.zeros(n), success=torch.tensor(success),
        norm=torch.zeros(n) if norm is None else torch.tensor(norm),
        n_forward=forward, n_backward=backward), seconds=seconds, versions=versions or VERSIONS,
        mismatch=None if mismatch is None else torch.tensor(mismatch))
