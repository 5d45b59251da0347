"""CIFAR-10 / CIFAR-100 from torchvision's python-pickle layout, read without unpickling code.

The batches are pickles; a plain `pickle.load` on a user-supplied path can run
arbitrary code, so `_SafeUnpickler` only resolves numpy's array-rebuilding globals.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray, numeric as _numeric  # type: ignore[no-redef]

from robbench.datasets.base import DatasetSpec, Loader, Split, missing_data_error, register_dataset
from robbench.errors import RobbenchError

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")
CIFAR100_NAMES = tuple(str(i) for i in range(100))  # generic unless a `meta` file names them

# The only globals an ndarray pickle needs: numpy<2 names (the official files),
# numpy>=2 names, and `_frombuffer` for pickle protocol 5.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy array reconstruction."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RobbenchError(f"refusing to unpickle {module}.{name} from {self._path}") from None


def safe_unpickle(path: Path) -> Any:
    """Load a CIFAR pickle; corrupt files and forbidden globals become RobbenchError."""
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, path).load()
    except RobbenchError:
        raise
    except Exception as exc:  # pickle raises many types on garbage: EOFError, KeyError, ...
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise RobbenchError(f"cannot read {path}: {detail}") from None


def _batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(N x 3072 uint8 pixels, N int64 labels) from one batch file, checked."""
    obj = safe_unpickle(path)
    try:
        data, labels = obj[b"data"], np.asarray(obj[label_key], dtype=np.int64)
        ok = (isinstance(data, np.ndarray) and data.dtype == np.uint8
              and data.shape[1:] == (3072,) and labels.shape == data.shape[:1])
    except (TypeError, KeyError, ValueError, IndexError):
        ok = False
    if not ok:
        raise RobbenchError(f"cannot read {path}: expected a dict with b'data' (N x 3072 uint8) "
                            f"and N {label_key!r}")
    return data, labels


def _class_names(meta: Path, key: bytes, fallback: tuple[str, ...]) -> tuple[str, ...]:
    if not meta.is_file():
        return fallback
    obj = safe_unpickle(meta)
    names = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(names, list) or len(names) != len(fallback):
        return fallback
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _make_loader(dataset_id: str, folder: str, files: dict[str, list[str]], label_key: bytes,
                 num_classes: int, tv_name: str) -> Loader:
    """One loader per CIFAR variant: same format, different folder, files and label key."""
    def load(split: str, data_root: Path, download: bool) -> Split:
        paths = [data_root / folder / name for name in files[split]]
        if download and not all(p.is_file() for p in paths):
            _download(dataset_id, tv_name, data_root)
        for p in paths:
            if not p.is_file():
                raise missing_data_error(dataset_id, p)
        parts = [_batch(p, label_key) for p in paths]
        data = np.concatenate([d for d, _ in parts])
        labels = np.concatenate([lab for _, lab in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise RobbenchError(f"cannot read {paths[0].parent}: labels outside 0..{num_classes - 1}")
        x = torch.from_numpy(data.reshape(-1, 3, 32, 32)).float().div_(255.0)
        return Split(x, torch.from_numpy(labels))

    return load


def _download(dataset_id: str, tv_name: str, data_root: Path) -> None:
    """Fetch and check (md5) torchvision's archive; torchvision's own loader is skipped
    because it unpickles with plain `pickle`."""
    import torchvision
    from torchvision.datasets.utils import download_and_extract_archive

    cls = getattr(torchvision.datasets, tv_name)
    try:
        download_and_extract_archive(cls.url, str(data_root), filename=cls.filename, md5=cls.tgz_md5)
    except (OSError, RuntimeError) as exc:
        raise RobbenchError(f"downloading {dataset_id!r} into {data_root} failed: "
                            f"{' '.join(str(exc).split())}") from None


def class_names(dataset_id: str, data_root: Path) -> tuple[str, ...]:
    """Names from batches.meta / meta under `data_root` when present, else the spec's fixed list
    (the spec is built before any data root is known)."""
    if dataset_id == "cifar10":
        return _class_names(data_root / "cifar-10-batches-py" / "batches.meta", b"label_names",
                            CIFAR10_NAMES)
    if dataset_id == "cifar100":
        return _class_names(data_root / "cifar-100-python" / "meta", b"fine_label_names",
                            CIFAR100_NAMES)
    raise ValueError(f"not a CIFAR dataset: {dataset_id!r}")


CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR100_FILES = {"train": ["train"], "test": ["test"]}

register_dataset(DatasetSpec(
    id="cifar10", num_classes=10, input_shape=(3, 32, 32), class_names=CIFAR10_NAMES,
    load=_make_loader("cifar10", "cifar-10-batches-py", CIFAR10_FILES, b"labels", 10, "CIFAR10"),
))
register_dataset(DatasetSpec(
    id="cifar100", num_classes=100, input_shape=(3, 32, 32),
    class_names=CIFAR100_NAMES,
    load=_make_loader("cifar100", "cifar-100-python", CIFAR100_FILES, b"fine_labels", 100, "CIFAR100"),
))
