"""Dataset specs and the registry that knows every dataset id."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from robbench.config import DATA_ROOT_ENV
from robbench.errors import DataNotFound
from robbench.registry import Registry


@dataclass(frozen=True)
class Split:
    """Images as float32 in [0, 1] with shape (N, C, H, W); labels as int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


# (split, data_root, download) -> Split; split is "train" or "test".
Loader = Callable[[str, Path, bool], Split]


@dataclass(frozen=True)
class DatasetSpec:
    id: str
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    load: Loader
    embedded: bool = False  # True when no data root is needed (scikit-learn's digits)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.id, spec)
    return spec


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    """--data-root, else $ROBBENCH_DATA, else ./data."""
    if data_root is not None:
        return Path(data_root)
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def load_split(dataset_id: str, split: str, data_root: str | os.PathLike | None = None,
               download: bool = False) -> Split:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    spec = DATASETS.get(dataset_id)
    return spec.load(split, resolve_data_root(data_root), download)


def missing_data_error(dataset_id: str, looked_at: Path) -> DataNotFound:
    return DataNotFound(
        f"dataset {dataset_id!r} not found at {looked_at}; pass --data-root DIR "
        f"(or set ${DATA_ROOT_ENV}) pointing at its torchvision layout",
        "or add --download to fetch it",
    )
