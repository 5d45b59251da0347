"""Writers of tiny datasets in their native on-disk formats (never a download)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(0)


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """IDX as on yann.lecun.com: 0x0000, type 0x08 (ubyte), ndim, big-endian dims, data."""
    payload = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes() \
        + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload, compresslevel=1))
    else:
        path.write_bytes(payload)
    return path


def write_mnist(root: Path, prefix: str, n: int, gz: bool) -> tuple[np.ndarray, np.ndarray]:
    images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    RNG.shuffle(labels)
    raw = root / "MNIST" / "raw"
    write_idx(raw / f"{prefix}-images-idx3-ubyte", images, gz)
    write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return images, labels


def write_pickle(path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def cifar_batch(n: int, label_key: bytes, num_classes: int) -> dict[bytes, object]:
    """Same keys and types as the official batches (labels are a list of ints)."""
    batch: dict[bytes, object] = {
        b"batch_label": b"testing batch 1 of 1",
        b"data": RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key: [int(v) for v in RNG.integers(0, num_classes, size=n)],
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [0] * n
    return batch
