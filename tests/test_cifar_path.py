"""The paper-scale CIFAR-10 path end to end, tiny: a CIFAR-10-layout dataset built from
digits (benchmarks.fake_cifar), `train --model clustr-cifar10` (ResNet-18) on a short
budget, a reference-style .pth of its weights brought back by import-checkpoint, and
an eval of the imported checkpoint; the imported weights equal the trained ones."""

import json

import torch
from safetensors.torch import load_file

from benchmarks.fake_cifar import build
from robbench.checkpoints import load_checkpoint
from robbench.cli import run
from robbench.datasets import load_split

BUDGET = ["--train-subset", "40", "--set", "warm_epochs=1", "--set", "epochs=1",
          "--set", "batch_size=20", "--set", "clusters_per_batch=4", "--set", "samples_per_cluster=5"]


def test_fake_cifar_is_read_as_cifar10_through_the_restricted_unpickler(tmp_path):
    assert build(tmp_path, source="digits", n_train=20, n_test=10) == {"train": 20, "test": 10}
    test = load_split("cifar10", "test", tmp_path)
    assert test.x.shape == (10, 3, 32, 32) and sorted(test.y.tolist()) == list(range(10))
    assert torch.equal(test.x[:, 0], test.x[:, 2])  # grey digits tiled to three channels


def test_clustr_cifar10_trains_imports_and_evaluates_on_the_cifar_layout(tmp_path, capsys):
    build(tmp_path, source="digits", n_train=40, n_test=4)
    ckpt = tmp_path / "clustr-cifar10.safetensors"
    assert run(["train", "--model", "clustr-cifar10", "--data-root", str(tmp_path),
                "--output", str(ckpt), *BUDGET]) == 0
    training = load_checkpoint(ckpt).meta["training"]
    assert training["train_subset"] == 40 and training["recipe_args"]["warm_epochs"] == 1

    reference = {"module." + k: v for k, v in load_file(str(ckpt)).items()}
    torch.save({"state_dict": reference}, tmp_path / "reference.pth")
    imported = tmp_path / "imported.safetensors"
    assert run(["import-checkpoint", "--model", "clustr-cifar10", "--from",
                str(tmp_path / "reference.pth"), "--out", str(imported)]) == 0
    capsys.readouterr()

    assert all(torch.equal(load_file(str(imported))[k], v) for k, v in load_file(str(ckpt)).items())
    assert run(["eval", "--model", "clustr-cifar10", "--checkpoint", str(imported),
                "--data-root", str(tmp_path), "--attacks", "fgsm", "--n-examples", "2",
                "--runs-dir", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "b.csv"),
                "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "cifar10" and summary["n_examples"] == 2
