"""scikit-learn's 8x8 digits: embedded, so robbench runs offline everywhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from robbench.datasets.base import DatasetSpec, Split, register_dataset

TEST_SIZE = 450  # METHODS §1: stratified 1347 / 450, seed 0
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _splits() -> dict[str, Split]:
    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    idx = torch.arange(len(y)).numpy()
    train_idx, test_idx = train_test_split(
        idx, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y.numpy()
    )
    return {
        "train": Split(x[train_idx].contiguous(), y[train_idx].contiguous()),
        "test": Split(x[test_idx].contiguous(), y[test_idx].contiguous()),
    }


def _load(split: str, data_root: Path, download: bool) -> Split:
    return _splits()[split]


register_dataset(DatasetSpec(
    id="digits", num_classes=10, input_shape=(1, 8, 8),
    class_names=tuple(str(i) for i in range(10)), load=_load, embedded=True,
))
