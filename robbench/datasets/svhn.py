"""SVHN (cropped digits) from torchvision's layout: `<root>/{train,test}_32x32.mat`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from robbench.datasets.base import DatasetSpec, Split, missing_data_error, register_dataset
from robbench.errors import RobbenchError


def _unreadable(path: Path, reason: object) -> RobbenchError:
    detail = " ".join(str(reason).split()) or type(reason).__name__
    return RobbenchError(f"cannot read {path}: {detail}")


def _download(data_root: Path, split: str) -> None:
    """torchvision fetches and md5-checks the .mat file into `data_root` (no pickle involved)."""
    import torchvision

    try:
        torchvision.datasets.SVHN(root=str(data_root), split=split, download=True)
    except (OSError, RuntimeError) as exc:
        raise RobbenchError(f"downloading 'svhn' into {data_root} failed: "
                            f"{' '.join(str(exc).split())}") from None


def _load(split: str, data_root: Path, download: bool) -> Split:
    path = data_root / f"{split}_32x32.mat"
    if not path.is_file() and download:
        _download(data_root, split)
    if not path.is_file():
        raise missing_data_error("svhn", path)
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
        images, labels = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    except KeyError as exc:
        raise _unreadable(path, f"no variable {exc} in the .mat file") from None
    except Exception as exc:  # loadmat raises many types on garbage (ValueError, TypeError, ...)
        raise _unreadable(path, exc) from None
    if images.dtype != np.uint8 or images.shape[:3] != (32, 32, 3) or images.ndim != 4 \
            or labels.shape != images.shape[3:]:
        raise _unreadable(path, f"expected 'X' 32x32x3xN uint8 and N labels in 'y', "
                                f"got {images.dtype} {images.shape} and {labels.shape}")
    if ((labels < 0) | (labels > 10)).any():
        raise _unreadable(path, "labels outside 0..10")
    labels[labels == 10] = 0  # SVHN stores digit 0 as label 10
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(3, 2, 0, 1))).float().div_(255.0)
    return Split(x, torch.from_numpy(labels))


register_dataset(DatasetSpec(
    id="svhn", num_classes=10, input_shape=(3, 32, 32),
    class_names=tuple(str(i) for i in range(10)), load=_load,
))
