"""The paper-scale CIFAR-10 path end to end, tiny: a CIFAR-10-layout dataset built from
digits (benchmarks.fake_cifar), `train --model clustr-cifar10` (ResNet-18) on a short
budget, a reference-style .pth of its weights brought back by import-checkpoint, and
an eval of the imported checkpoint; the imported weights equal the trained ones."""

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from benchmarks.fake_cifar import build
from robbench.zoo.checkpoints import load_checkpoint, sha256_file
from robbench.cli import run
from robbench.datasets import load_split

BUDGET = ["--train-subset", "40", "--set", "warm_epochs=1", "--set", "epochs=1",
          "--set", "batch_size=20", "--set", "clusters_per_batch=4", "--set", "samples_per_cluster=5"]


def test_fake_cifar_is_read_as_cifar10_through_the_restricted_unpickler(tmp_path):
    assert build(tmp_path, source="digits", n_train=20, n_test=10) == {"train": 20, "test": 10}
    test = load_split("cifar10", "test", tmp_path)
    assert test.x.shape == (10, 3, 32, 32) and sorted(test.y.tolist()) == list(range(10))
    assert torch.equal(test.x[:, 0], test.x[:, 2])  # grey digits tiled to three channels


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, checkpoint): clustr-cifar10 trained on the fake layout, once per module."""
    root = tmp_path_factory.mktemp("cifar")
    build(root, source="digits", n_train=40, n_test=4)
    ckpt = root / "clustr-cifar10.safetensors"
    assert run(["train", "--model", "clustr-cifar10", "--data-root", str(root),
                "--output", str(ckpt), *BUDGET]) == 0
    return root, ckpt


def test_clustr_cifar10_trains_imports_and_evaluates_on_the_cifar_layout(trained, tmp_path, capsys):
    root, ckpt = trained
    training = load_checkpoint(ckpt).meta["training"]
    assert training["train_subset"] == 40 and training["recipe_args"]["warm_epochs"] == 1

    reference = {"module." + k: v for k, v in load_file(str(ckpt)).items()}
    torch.save({"state_dict": reference}, tmp_path / "reference.pth")
    imported = tmp_path / "imported.safetensors"
    assert run(["import-checkpoint", "--model", "clustr-cifar10", "--from",
                str(tmp_path / "reference.pth"), "--out", str(imported)]) == 0
    capsys.readouterr()
    assert all(torch.equal(load_file(str(imported))[k], v) for k, v in load_file(str(ckpt)).items())

    def evaluate(path: Path, name: str) -> dict:
        assert run(["eval", "--model", "clustr-cifar10", "--checkpoint", str(path),
                    "--data-root", str(root), "--attacks", "fgsm", "--n-examples", "2",
                    "--runs-dir", str(tmp_path / name), "--leaderboard", str(tmp_path / f"{name}.csv"),
                    "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    summary, original = evaluate(imported, "imported"), evaluate(ckpt, "trained")
    assert summary["dataset"] == "cifar10" and summary["n_examples"] == 2
    assert summary["checkpoint_sha256"] == sha256_file(imported)  # the imported file was evaluated
    # the same weights through the same code and arithmetic: the same numbers
    assert (summary["clean_acc"], summary["attacks"]["fgsm"]["robust_acc"]) == (
        original["clean_acc"], original["attacks"]["fgsm"]["robust_acc"])


def test_the_cifar_path_benchmark_gets_the_same_numbers_three_ways(trained, tmp_path, monkeypatch):
    """benchmarks.cifar_path's main on 2 samples and FGSM: CLI, API and imported checkpoint
    give the same numbers (the same weights through the same code). Its `python -m
    robbench` subprocesses run in this process here (each would start Python and torch
    again); test_benchmark_smoke runs the module's own entry point with --help."""
    from benchmarks import cifar_path

    def in_process(*args: str) -> tuple[dict, float]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert run([*args, "--json"]) == 0
        return json.loads(out.getvalue()), 0.0

    root, ckpt = trained
    out = tmp_path / "cifar-path.json"
    monkeypatch.setattr(cifar_path, "cli", in_process)
    monkeypatch.setattr(sys, "argv", ["benchmarks/cifar_path.py", "--data-root", str(root),
                                      "--checkpoint", str(ckpt), "--attacks", "fgsm",
                                      "--n-examples", "2", "--json", str(out)])
    cifar_path.main()
    results = json.loads(out.read_text())
    assert results["same_numbers_three_ways"] is True
    assert results["cli"]["n_examples"] == results["api"]["n_examples"] == 2
    assert results["import"]["mapped"] > 0 and not results["import"]["unmatched"]
