"""Datasets by id. Importing this package registers every dataset module."""

from robbench.datasets.base import DATASETS, DatasetSpec, Split, load_split, resolve_data_root
from robbench.datasets import cifar, digits, mnist, svhn  # noqa: F401  (registers)

__all__ = ["DATASETS", "DatasetSpec", "Split", "load_split", "resolve_data_root"]
