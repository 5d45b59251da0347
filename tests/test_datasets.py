"""Dataset loaders, each on a tiny fixture written here in the dataset's native on-disk format."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from robbench.datasets import DATASETS, load_split, mnist, resolve_data_root
from robbench.datasets import cifar
from robbench.datasets.mnist import read_idx
from robbench.errors import RobbenchError
from tests.fixtures import RNG, cifar_batch, write_idx, write_mnist, write_pickle

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def assert_images(split, n: int, shape: tuple[int, int, int]) -> None:
    assert split.x.shape == (n, *shape)
    assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
    assert split.x.min() >= 0.0 and split.x.max() <= 1.0


# ---------------------------------------------------------------- IDX / MNIST

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_parses_header_and_finds_gz_without_suffix(tmp_path: Path, gz: bool) -> None:
    array = RNG.integers(0, 256, size=(3, 5, 7), dtype=np.uint8)
    write_idx(tmp_path / "a-idx3-ubyte", array, gz)
    out = read_idx(tmp_path / "a-idx3-ubyte")
    assert out.shape == (3, 5, 7) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, array)


def test_read_idx_truncated_file_raises_robbench_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "a-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(RobbenchError, match=r"cannot read .*a-idx3-ubyte"):
        read_idx(path)


def test_read_idx_truncated_gz_raises_robbench_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "a-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), gz=True)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(RobbenchError, match="cannot read"):
        read_idx(tmp_path / "a-idx3-ubyte")


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist_loads_native_idx_files_exactly(tmp_path: Path, gz: bool) -> None:
    images, labels = write_mnist(tmp_path, "train", 20, gz)
    write_mnist(tmp_path, "t10k", 10, gz)
    train = load_split("mnist", "train", tmp_path)
    assert_images(train, 20, (1, 28, 28))
    assert torch.equal(train.x, torch.from_numpy(images).float().unsqueeze(1) / 255.0)
    assert torch.equal(train.y, torch.from_numpy(labels.astype(np.int64)))
    assert len(load_split("mnist", "test", tmp_path)) == 10


def test_mnist_t10k_split_is_8000_2000_stratified_and_deterministic(tmp_path: Path) -> None:
    images, labels = write_mnist(tmp_path, "t10k", 10000, gz=False)
    train = load_split("mnist-t10k", "train", tmp_path)
    test = load_split("mnist-t10k", "test", tmp_path)
    assert_images(train, 8000, (1, 28, 28))
    assert_images(test, 2000, (1, 28, 28))
    assert torch.equal(test.y.bincount(minlength=10), torch.full((10,), 200))  # 1000 per class
    # every image lands in exactly one side
    all_x = torch.cat([train.x, test.x]).mul(255).round().to(torch.uint8).flatten(1)
    assert torch.equal(all_x.sort(0).values, torch.from_numpy(images).flatten(1).sort(0).values)
    mnist._t10k_splits.cache_clear()
    again = load_split("mnist-t10k", "test", tmp_path)
    assert torch.equal(again.x, test.x) and torch.equal(again.y, test.y)


def test_mnist_download_goes_through_torchvision_when_files_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []

    def fake_mnist(root: str, train: bool, download: bool) -> None:
        calls.append((root, train))
        write_mnist(Path(root), "train" if train else "t10k", 5, gz=True)

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=fake_mnist))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    assert len(load_split("mnist", "train", tmp_path, download=True)) == 5
    assert calls == [(str(tmp_path), True)]


def test_mnist_failed_download_is_one_line_robbench_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(root: str, train: bool, download: bool) -> None:
        raise OSError("<urlopen error [Errno -3]\nTemporary failure in name resolution>")

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(MNIST=offline))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    with pytest.raises(RobbenchError, match="downloading 'mnist'") as info:
        load_split("mnist", "test", tmp_path, download=True)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- CIFAR

@pytest.mark.parametrize("protocol", [4, 5])
def test_cifar10_loads_native_pickle_batches_exactly(tmp_path: Path, protocol: int) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    train_batches = [cifar_batch(4, b"labels", 10) for _ in range(5)]
    for i, batch in enumerate(train_batches, start=1):
        write_pickle(folder / f"data_batch_{i}", batch, protocol)
    test_batch = cifar_batch(20, b"labels", 10)
    write_pickle(folder / "test_batch", test_batch, protocol)

    test = load_split("cifar10", "test", tmp_path)
    assert_images(test, 20, (3, 32, 32))
    expected = torch.from_numpy(test_batch[b"data"].reshape(20, 3, 32, 32)).float() / 255.0
    assert torch.equal(test.x, expected)
    assert test.y.tolist() == test_batch[b"labels"]
    train = load_split("cifar10", "train", tmp_path)
    assert len(train) == 20
    assert train.y.tolist() == sum((b[b"labels"] for b in train_batches), [])


def test_cifar10_class_names_come_from_batches_meta_or_fixed_list(tmp_path: Path) -> None:
    assert cifar.class_names("cifar10", tmp_path) == DATASETS.get("cifar10").class_names
    assert DATASETS.get("cifar10").class_names[0] == "airplane"
    names = [f"c{i}".encode() for i in range(10)]
    write_pickle(tmp_path / "cifar-10-batches-py" / "batches.meta",
                 {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072})
    assert cifar.class_names("cifar10", tmp_path) == tuple(f"c{i}" for i in range(10))


def test_cifar100_loads_fine_labels_and_meta_names(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    batch = cifar_batch(20, b"fine_labels", 100)
    write_pickle(folder / "train", batch)
    write_pickle(folder / "test", cifar_batch(6, b"fine_labels", 100))
    write_pickle(folder / "meta", {b"fine_label_names": [f"n{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [b"x"] * 20})
    train = load_split("cifar100", "train", tmp_path)
    assert_images(train, 20, (3, 32, 32))
    assert train.y.tolist() == batch[b"fine_labels"]
    assert len(load_split("cifar100", "test", tmp_path)) == 6
    assert cifar.class_names("cifar100", tmp_path)[99] == "n99"
    assert DATASETS.get("cifar100").class_names == tuple(str(i) for i in range(100))


class _Exploit:
    """Unpickling this would create `marker` (a stand-in for running any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_cifar_malicious_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = cifar_batch(2, b"labels", 10)
    batch[b"labels"] = _Exploit(marker)
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", batch)
    with pytest.raises(RobbenchError, match=r"refusing to unpickle (builtins|io)\.open from .*test_batch"):
        load_split("cifar10", "test", tmp_path)
    assert not marker.exists()


def test_cifar_truncated_batch_raises_robbench_error(tmp_path: Path) -> None:
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    write_pickle(path, cifar_batch(20, b"labels", 10))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(RobbenchError, match=r"cannot read .*test_batch"):
        load_split("cifar10", "test", tmp_path)


def test_cifar_download_fetches_archive_without_torchvision_unpickling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    def fake_download(url: str, root: str, filename: str, md5: str) -> None:
        assert filename == "cifar-10-python.tar.gz" and md5
        write_pickle(Path(root) / "cifar-10-batches-py" / "test_batch", cifar_batch(3, b"labels", 10))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake_download)
    assert len(load_split("cifar10", "test", tmp_path, download=True)) == 3


# ---------------------------------------------------------------- SVHN

def test_svhn_loads_mat_exactly_and_maps_label_10_to_0(tmp_path: Path) -> None:
    x = RNG.integers(0, 256, size=(32, 32, 3, 12), dtype=np.uint8)
    y = (np.arange(12) % 10 + 1).astype(np.uint8).reshape(-1, 1)  # 1..10, 10 means digit 0
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    split = load_split("svhn", "test", tmp_path)
    assert_images(split, 12, (3, 32, 32))
    assert split.y.tolist() == [int(v) % 10 for v in y.ravel()]
    assert torch.equal(split.x, torch.from_numpy(x.transpose(3, 2, 0, 1).copy()).float() / 255.0)


def test_svhn_corrupt_mat_raises_robbench_error(tmp_path: Path) -> None:
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    with pytest.raises(RobbenchError, match=r"cannot read .*train_32x32\.mat"):
        load_split("svhn", "train", tmp_path)


# ---------------------------------------------------------------- shared behaviour

@pytest.mark.parametrize("dataset_id", ["mnist", "mnist-t10k", "cifar10", "cifar100", "svhn"])
def test_missing_dataset_error_names_path_and_fixing_flags(tmp_path: Path, dataset_id: str) -> None:
    with pytest.raises(RobbenchError) as info:
        load_split(dataset_id, "test", tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message and "--data-root" in message and "--download" in message


def test_digits_split_is_1347_450_stratified_and_deterministic() -> None:
    train, test = load_split("digits", "train"), load_split("digits", "test")
    assert (len(train), len(test)) == (1347, 450)
    total = torch.cat([train.y, test.y]).bincount(minlength=10)
    assert (test.y.bincount(minlength=10) - total * 450 / 1797).abs().max() <= 1
    from robbench.datasets import digits
    digits._splits.cache_clear()
    assert torch.equal(load_split("digits", "test").x, test.x)


def test_resolve_data_root_honours_env_and_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBBENCH_DATA", "/somewhere/data")
    assert resolve_data_root(None) == Path("/somewhere/data")
    assert resolve_data_root("/flag") == Path("/flag")
    monkeypatch.delenv("ROBBENCH_DATA")
    assert resolve_data_root(None) == Path("data")


def test_mnist_t10k_from_official_shared_files() -> None:
    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"official MNIST t10k files not present at {SHARED_DATA}/MNIST/raw")
    train = load_split("mnist-t10k", "train", SHARED_DATA)
    test = load_split("mnist-t10k", "test", SHARED_DATA)
    assert (len(train), len(test)) == (8000, 2000)
    assert set(train.y.tolist()) == set(test.y.tolist()) == set(range(10))
    assert_images(test, 2000, (1, 28, 28))
