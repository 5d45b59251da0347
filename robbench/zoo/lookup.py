"""The zoo lookup: model id -> manifest entry -> architecture -> checkpoint. The manifest
and the checkpoints stay in the model_zoo/ folder beside this package (with the training
recipes, which import robbench); robbench reads those files and never imports model_zoo."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robbench.zoo.architectures import ARCHITECTURES
from robbench.zoo.checkpoints import load_checkpoint
from robbench.datasets import DATASETS
from robbench.defenses import DEFENSES, DefenseModel
from robbench.errors import RobbenchError
from robbench.registry import Registry


def _zoo_dir() -> Path:
    """model_zoo/, found without importing it (it imports robbench): installed or in a
    checkout it is a sibling of this package."""
    spec = importlib.util.find_spec("model_zoo")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return Path(__file__).resolve().parents[2] / "model_zoo"


ZOO_DIR = _zoo_dir()
MANIFEST_PATH = ZOO_DIR / "manifest.json"


@dataclass
class ModelEntry:
    id: str
    dataset: str
    architecture: str
    defense: str
    recipe: str
    checkpoint: str | None  # relative to model_zoo/, None for paper-scale models
    checkpoint_sha256: str | None
    seed: int
    command: str
    reference: str
    feature_dim: int | None = None
    defense_params: dict[str, Any] = field(default_factory=dict)
    recipe_args: dict[str, Any] = field(default_factory=dict)
    train_seconds: float | None = None
    trained_with: dict[str, str] = field(default_factory=dict)

    @property
    def checkpoint_path(self) -> Path | None:
        return ZOO_DIR / self.checkpoint if self.checkpoint else None


def read_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelEntry]:
    raw = json.loads(path.read_text())
    return {mid: ModelEntry(id=mid, **fields) for mid, fields in raw["models"].items()}


def write_manifest(entries: dict[str, ModelEntry], path: Path = MANIFEST_PATH) -> None:
    models = {}
    for mid in sorted(entries):
        fields = dict(vars(entries[mid]))
        del fields["id"]
        models[mid] = fields
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"models": models}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


MODELS: Registry[ModelEntry] = Registry("model")
for _id, _entry in read_manifest().items():
    MODELS.add(_id, _entry)


def build_model(entry: ModelEntry, defense_params: dict[str, Any] | None = None) -> DefenseModel:
    """A freshly initialised network for `entry` (weights random)."""
    spec = DATASETS.get(entry.dataset)
    features = ARCHITECTURES.get(entry.architecture)(spec.input_shape[0], entry.feature_dim)
    params = entry.defense_params if defense_params is None else defense_params
    model = DEFENSES.get(entry.defense)(features, spec.num_classes, **params)
    model.dataset = entry.dataset
    return model


@dataclass(frozen=True)
class LoadedModel:
    model: DefenseModel
    entry: ModelEntry
    checkpoint_path: Path
    sha256: str


def load_model(model_id: str, checkpoint: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> LoadedModel:
    """Builds the model and loads its checkpoint, refusing a file whose hash or
    architecture does not match. A user-supplied --checkpoint is hashed and recorded."""
    entry = MODELS.get(model_id)
    if checkpoint is None:
        if entry.checkpoint_path is None:
            raise RobbenchError(
                f"model {model_id!r} has no committed checkpoint; train one with "
                f"`robbench train --model {model_id} --output PATH` (GPU recommended) and "
                f"pass --checkpoint PATH"
            )
        path, expected = entry.checkpoint_path, entry.checkpoint_sha256
    else:
        path, expected = Path(checkpoint), None
    ckpt = load_checkpoint(path, expected_sha256=expected)
    for key in ("architecture", "defense", "dataset"):
        found, wanted = ckpt.meta.get(key), getattr(entry, key)
        if found != wanted:
            raise RobbenchError(
                f"checkpoint {path} is for {key} {found!r}, but model {model_id!r} "
                f"uses {wanted!r}"
            )
    model = build_model(entry, ckpt.meta.get("defense_params", entry.defense_params))
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise RobbenchError(f"checkpoint {path} does not fit model {model_id!r}: {first}") from None
    model.eval().to(device)
    return LoadedModel(model=model, entry=entry, checkpoint_path=path, sha256=ckpt.sha256)


def checkpoint_meta(entry: ModelEntry, model: DefenseModel) -> dict[str, Any]:
    return {
        "architecture": entry.architecture,
        "defense": entry.defense,
        "dataset": entry.dataset,
        "feature_dim": entry.feature_dim,
        "defense_params": model.defense_params(),
        "model_id": entry.id,
    }
