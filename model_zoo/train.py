"""`robbench train`: runs a model's recipe, writes its checkpoint and manifest row."""

from __future__ import annotations

import fcntl
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from model_zoo.recipes import RECIPES, TrainContext
from robbench.config import VERSION
from robbench.datasets import load_split
from robbench.errors import RobbenchError
from robbench.store.paths import check_data_root, check_output_file
from robbench.zoo.checkpoints import save_checkpoint
from robbench.zoo.lookup import (MANIFEST_PATH, MODELS, build_model, checkpoint_meta, read_manifest,
                                 write_manifest)


def train_model(model_id: str, *, output: str | Path | None = None, epochs: int | None = None,
                data_root: str | None = None, device: str = "cpu",
                log: Callable[[str], None] = print, overrides: dict[str, Any] | None = None,
                train_subset: int | None = None) -> dict[str, Any]:
    """Trains `model_id` with its manifest recipe and seed. Without `output` the zoo
    checkpoint and the manifest's hash, wall time and versions are updated.
    `overrides` replace recipe arguments and `train_subset` keeps the first N training
    images (short-budget runs, e.g. a paper-scale model on a CPU); both are recorded in
    the checkpoint's `training` metadata, and neither may touch the zoo's checkpoint."""
    entry = MODELS.get(model_id)
    if (overrides or train_subset is not None) and output is None:
        raise RobbenchError("--set and --train-subset change the recipe: pass --output PATH "
                            "(the zoo checkpoint is only ever trained with the manifest's recipe)")
    path = checkpoint_destination(model_id, output)
    check_data_root(data_root)
    args = dict(entry.recipe_args)
    if epochs is not None:
        args["epochs"] = epochs
    unknown = sorted(set(overrides or {}) - set(args) - OPTIONAL_RECIPE_ARGS)
    if unknown:
        raise RobbenchError(f"--set {', '.join(unknown)}: not an argument of recipe "
                            f"{entry.recipe!r} (known: {', '.join(sorted(set(args) | OPTIONAL_RECIPE_ARGS))})")
    args.update(overrides or {})
    torch.manual_seed(entry.seed)
    generator = torch.Generator().manual_seed(entry.seed)
    train, test = load_split(entry.dataset, "train", data_root), load_split(entry.dataset, "test", data_root)
    if train_subset is not None:
        if not 0 < train_subset <= len(train):
            raise RobbenchError(f"--train-subset must be in 1..{len(train)}, got {train_subset}")
        train = type(train)(train.x[:train_subset], train.y[:train_subset])
    model = build_model(entry)
    model.body.normalize.fit(train.x)
    model.to(device)
    ctx = TrainContext(model=model, train=train, test=test, args=args, generator=generator,
                       device=torch.device(device), log=log, dataset=entry.dataset)
    start = time.perf_counter()
    RECIPES.get(entry.recipe)(ctx)
    seconds = time.perf_counter() - start
    model.eval()
    test_acc = ctx.accuracy(test)
    meta = checkpoint_meta(entry, model)
    if output is not None:  # zoo checkpoints keep a deterministic header (same weights, same sha256)
        meta["training"] = {"recipe": entry.recipe, "recipe_args": args, "seed": entry.seed,
                            "train_images": len(train), "overrides": dict(overrides or {}),
                            "train_subset": train_subset, "seconds": round(seconds, 1),
                            "test_acc": round(test_acc, 4), "device": str(device),
                            "threads": torch.get_num_threads(),
                            "versions": {"robbench": VERSION,
                                         "torch": torch.__version__,
                                         "python": platform.python_version()}}
    sha = save_checkpoint(model.state_dict(), meta, path)
    if output is None:
        with manifest_lock():
            record_training(model_id, sha, seconds, args, device)
    log(f"saved {path} (sha256 {sha[:16]}…), test acc {test_acc:.4f}, {seconds:.1f}s")
    return {"model": model_id, "checkpoint": str(path), "sha256": sha,
            "test_acc": test_acc, "seconds": seconds}


# recipe arguments read with a default (`args.get`), so absent from most manifests
OPTIONAL_RECIPE_ARGS = {"clusters_per_batch", "samples_per_cluster", "qtrades_lambda",
                        "qtrades_step_fraction", "eps", "eps_warmup_epochs", "warm_epochs",
                        "attack_steps"}


def checkpoint_destination(model_id: str, output: str | Path | None) -> Path:
    """Where the checkpoint will go, checked before any training: `output` (a file in
    an existing, writable directory) or the zoo's checkpoint, whose manifest is updated."""
    if output is not None:
        check_output_file(output, "--output", parent_must_exist=True)
        return Path(output)
    path = MODELS.get(model_id).checkpoint_path
    if path is None:
        raise RobbenchError(f"model {model_id!r} has no checkpoint in the zoo to replace; pass "
                            f"--output PATH for the new checkpoint (then evaluate it with "
                            f"--checkpoint PATH)")
    check_output_file(path, "zoo checkpoint")
    check_output_file(MANIFEST_PATH, "zoo manifest")
    return path


@contextmanager
def manifest_lock():
    """Trainings may run in parallel; each rewrites the manifest under this lock."""
    with open(MANIFEST_PATH.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record_training(model_id: str, sha: str, seconds: float, args: dict[str, Any], device: str) -> None:
    entries = read_manifest()
    updated = entries[model_id]
    updated.checkpoint_sha256 = sha
    updated.train_seconds = round(seconds, 1)
    updated.trained_with = {"robbench": VERSION, "torch": torch.__version__,
                            "python": platform.python_version(), "device": str(device),
                            "threads": str(torch.get_num_threads()),
                            "epochs": str(args.get("epochs"))}
    write_manifest(entries)
