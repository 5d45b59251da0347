"""MNIST from torchvision's raw IDX layout, read by our own parser (no torchvision needed to read).

`mnist` is the official 60k/10k split. `mnist-t10k` re-splits only the official
10k test set 8000/2000 (METHODS §1), because that is all the shared machines hold.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from robbench.datasets.base import DatasetSpec, Split, missing_data_error, register_dataset
from robbench.errors import RobbenchError

T10K_TEST_SIZE = 2000  # METHODS §1: 8000 train / 2000 test, seed 0, stratified
T10K_SPLIT_SEED = 0
CLASS_NAMES = tuple(str(i) for i in range(10))

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_PREFIX = {"train": "train", "test": "t10k"}


def _unreadable(path: Path, reason: object) -> RobbenchError:
    """One-line error for a corrupt or truncated file."""
    detail = " ".join(str(reason).split()) or type(reason).__name__
    return RobbenchError(f"cannot read {path}: {detail}")


def find_idx(path: Path) -> Path | None:
    """`path` if present, else `path.gz`, else None."""
    for candidate in (path, path.with_name(path.name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzipped; `path` may omit the `.gz`)."""
    found = find_idx(Path(path))
    if found is None:
        raise FileNotFoundError(path)
    try:
        if found.suffix == ".gz":
            with gzip.open(found, "rb") as f:
                raw = f.read()
        else:
            raw = found.read_bytes()
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
        raise _unreadable(found, exc) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise _unreadable(found, "not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _unreadable(found, "truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise _unreadable(found, f"IDX payload is {len(raw) - header} bytes, header says {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _raw_dir(data_root: Path) -> Path:
    return data_root / "MNIST" / "raw"


def _files(data_root: Path, split: str) -> tuple[Path, Path]:
    prefix = _PREFIX[split]
    raw = _raw_dir(data_root)
    return raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"


def _download(dataset_id: str, data_root: Path, split: str) -> None:
    """Fetch through torchvision (it writes the same raw layout we read)."""
    import torchvision

    try:
        torchvision.datasets.MNIST(root=str(data_root), train=split == "train", download=True)
    except (OSError, RuntimeError) as exc:
        raise RobbenchError(f"downloading {dataset_id!r} into {data_root} failed: "
                            f"{' '.join(str(exc).split())}") from None


def _read_split(dataset_id: str, data_root: Path, split: str, download: bool) -> Split:
    images_path, labels_path = _files(data_root, split)
    missing = [p for p in (images_path, labels_path) if find_idx(p) is None]
    if missing and download:
        _download(dataset_id, data_root, split)
        missing = [p for p in (images_path, labels_path) if find_idx(p) is None]
    if missing:
        raise missing_data_error(dataset_id, missing[0])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise _unreadable(images_path, f"expected uint8 images N x 28 x 28, got {images.dtype} {images.shape}")
    if labels.shape != images.shape[:1] or ((labels < 0) | (labels > 9)).any():
        raise _unreadable(labels_path, f"expected {len(images)} labels in 0..9")
    x = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def _load_mnist(split: str, data_root: Path, download: bool) -> Split:
    return _read_split("mnist", data_root, split, download)


@lru_cache(maxsize=4)
def _t10k_splits(resolved_root: str) -> dict[str, Split]:
    """Fixed stratified 8000/2000 re-split of the official test set, cached per data root."""
    full = _read_split("mnist-t10k", Path(resolved_root), "test", download=False)
    idx = np.arange(len(full))
    try:
        train_idx, test_idx = train_test_split(
            idx, test_size=T10K_TEST_SIZE, random_state=T10K_SPLIT_SEED, stratify=full.y.numpy()
        )
    except ValueError as exc:  # too few images or a class with a single image
        raise RobbenchError(f"cannot split 'mnist-t10k' at {resolved_root}: {exc}") from None
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return {
        "train": Split(full.x[train_idx].contiguous(), full.y[train_idx].contiguous()),
        "test": Split(full.x[test_idx].contiguous(), full.y[test_idx].contiguous()),
    }


def _load_t10k(split: str, data_root: Path, download: bool) -> Split:
    if download and any(find_idx(p) is None for p in _files(data_root, "test")):
        _download("mnist-t10k", data_root, "test")
    return _t10k_splits(str(data_root.resolve()))[split]


register_dataset(DatasetSpec(
    id="mnist", num_classes=10, input_shape=(1, 28, 28), class_names=CLASS_NAMES, load=_load_mnist,
))
register_dataset(DatasetSpec(
    id="mnist-t10k", num_classes=10, input_shape=(1, 28, 28), class_names=CLASS_NAMES, load=_load_t10k,
))
