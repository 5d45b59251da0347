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

import robbench
from model_zoo.recipes import RECIPES, TrainContext
from model_zoo.zoo import MANIFEST_PATH, MODELS, build_model, checkpoint_meta, read_manifest, write_manifest
from robbench.checkpoints import save_checkpoint
from robbench.datasets import load_split
from robbench.errors import RobbenchError
from robbench.paths import check_data_root, check_output_file


def train_model(model_id: str, *, output: str | Path | None = None, epochs: int | None = None,
                data_root: str | None = None, device: str = "cpu",
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains `model_id` with its manifest recipe and seed. Without `output` the zoo
    checkpoint and the manifest's hash, wall time and versions are updated."""
    entry = MODELS.get(model_id)
    path = checkpoint_destination(model_id, output)
    check_data_root(data_root)
    args = dict(entry.recipe_args)
    if epochs is not None:
        args["epochs"] = epochs
    torch.manual_seed(entry.seed)
    generator = torch.Generator().manual_seed(entry.seed)
    train, test = load_split(entry.dataset, "train", data_root), load_split(entry.dataset, "test", data_root)
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
    sha = save_checkpoint(model.state_dict(), checkpoint_meta(entry, model), path)
    if output is None:
        with manifest_lock():
            record_training(model_id, sha, seconds, args, device)
    log(f"saved {path} (sha256 {sha[:16]}…), test acc {test_acc:.4f}, {seconds:.1f}s")
    return {"model": model_id, "checkpoint": str(path), "sha256": sha,
            "test_acc": test_acc, "seconds": seconds}


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
    updated.trained_with = {"robbench": robbench.__version__, "torch": torch.__version__,
                            "python": platform.python_version(), "device": str(device),
                            "threads": str(torch.get_num_threads()),
                            "epochs": str(args.get("epochs"))}
    write_manifest(entries)
