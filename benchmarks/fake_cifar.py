"""A CIFAR-10-layout dataset built from data that is here, to run the paper-scale
(ResNet-18, cifar10) pipeline end to end without CIFAR-10 and without a download.

    python -m benchmarks.fake_cifar OUT_DIR [--source mnist-t10k|digits] [--n-train N] [--n-test N]

writes OUT_DIR/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} in the
python-pickle layout of the official archive (dicts with b"data": N x 3072 uint8,
channel planes R, G, B of 32x32 row-major; b"labels": list of int), which
robbench.datasets.cifar reads with its restricted unpickler. Images: mnist-t10k digits
(its fixed 8000/2000 split, `--data-root` or $ROBBENCH_DATA) padded 28→32, or
scikit-learn's 8x8 digits upsampled x4 (embedded, for tests); grey, tiled to 3
channels. The numbers measured on it are of the pipeline, not of CIFAR-10."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks import run_main


FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = 5


def to_cifar_rows(x: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) floats in [0, 1] → (N, 3072) uint8: 32x32, three equal planes."""
    if x.shape[-1] == 8:
        x = F.interpolate(x, scale_factor=4, mode="nearest")
    elif x.shape[-1] == 28:
        x = F.pad(x, (2, 2, 2, 2))
    if tuple(x.shape[1:]) != (1, 32, 32):
        raise ValueError(f"cannot map images of shape {tuple(x.shape[1:])} to 32x32")
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1)
    return pixels.reshape(len(x), 3072).numpy()


def _stratified_prefix(y: torch.Tensor, n: int | None) -> torch.Tensor:
    """Indices of n samples taken round-robin over the classes (every class present
    even in a tiny prefix, which k-means per class needs)."""
    order = torch.arange(len(y))
    if n is None or n >= len(y):
        return order
    per_class = [order[y == c].tolist() for c in range(int(y.max()) + 1)]
    chosen: list[int] = []
    while len(chosen) < n:
        for members in per_class:
            if members and len(chosen) < n:
                chosen.append(members.pop(0))
    return torch.tensor(chosen)


def _write(path: Path, obj: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)  # 2 would pickle bytes via _codecs, which the reader refuses
    tmp.replace(path)


def build(out: Path, source: str = "mnist-t10k", data_root: str | None = None,
          n_train: int | None = None, n_test: int | None = None) -> dict[str, int]:
    """Writes the layout under `out`; returns the number of train and test images."""
    from robbench.datasets import load_split

    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = load_split(source, split, data_root)
        keep = _stratified_prefix(data.y, n)
        rows, labels = to_cifar_rows(data.x[keep]), data.y[keep].tolist()
        counts[split] = len(labels)
        if split == "test":
            parts = [("test_batch", rows, labels)]
        else:
            bounds = np.linspace(0, len(labels), TRAIN_BATCHES + 1).astype(int)
            parts = [(f"data_batch_{i + 1}", rows[a:b], labels[a:b])
                     for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
        for name, part_rows, part_labels in parts:
            _write(folder / name, {
                b"batch_label": f"{name} ({source} digits as CIFAR-10 layout)".encode(),
                b"data": part_rows, b"labels": [int(v) for v in part_labels],
                b"filenames": [f"{source}_{split}_{i}.png".encode() for i in range(len(part_labels))]})
    _write(folder / "batches.meta", {b"label_names": [str(i).encode() for i in range(10)],
                                     b"num_cases_per_batch": max(1, counts["train"] // TRAIN_BATCHES),
                                     b"num_vis": 3072})
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--source", choices=["mnist-t10k", "digits"], default="mnist-t10k")
    parser.add_argument("--data-root", default=None, help="for mnist-t10k ($ROBBENCH_DATA)")
    parser.add_argument("--n-train", type=int, default=None, help="default: all")
    parser.add_argument("--n-test", type=int, default=None, help="default: all")
    args = parser.parse_args()
    counts = build(args.out, args.source, args.data_root, args.n_train, args.n_test)
    print(f"wrote {args.out / FOLDER}: {counts['train']} train, {counts['test']} test images "
          f"from {args.source}")


if __name__ == "__main__":
    run_main(main)
