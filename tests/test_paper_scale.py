"""Paper-scale models (ResNet-18 on CIFAR) ship no checkpoint, but their code path is
real: evaluated here on a random checkpoint and a tiny native-format CIFAR-10."""

import json

import numpy as np
import pandas as pd
import torch

from robbench.zoo.lookup import MODELS, build_model, checkpoint_meta
from robbench.zoo.checkpoints import save_checkpoint
from robbench.cli import run
from tests.fixtures import cifar_batch, write_pickle

PAPER_IDS = ["clustr-cifar10", "clustr-qtrades-cifar10", "magnet-cifar10", "mat-cifar10",
             "mmc-cifar10", "drp-cifar10", "atc-cifar10", "trades-cifar10", "at-cifar10",
             "nominal-cifar10"]


def test_paper_scale_models_are_in_the_manifest_without_checkpoints():
    for model_id in PAPER_IDS:
        entry = MODELS.get(model_id)
        assert entry.architecture == "resnet18" and entry.checkpoint is None
        assert entry.command == f"robbench train --model {model_id}"


def test_missing_paper_checkpoint_error_says_how_to_get_one(capsys):
    assert run(["eval", "--model", "clustr-cifar10", "--attacks", "pgd100"]) == 1
    err = capsys.readouterr().err
    assert "robbench train --model clustr-cifar10" in err and "GPU" in err


def test_clustr_cifar10_evaluates_a_random_resnet18_on_native_cifar10(tmp_path, capsys):
    torch.manual_seed(0)
    entry = MODELS.get("clustr-cifar10")
    model = build_model(entry).eval()
    batch = cifar_batch(6, b"labels", 10)
    x = torch.tensor(np.asarray(batch[b"data"]), dtype=torch.float32).view(6, 3, 32, 32) / 255
    with torch.no_grad():
        # A random ResNet maps every input to nearly the same feature; centres at the
        # features of random images, and σ² at their spread, give an input-sensitive
        # classifier as training would (random centres make it constant, and PGD
        # would spend all 1000 steps on a sample it cannot move)
        anchors = model.features(torch.rand(20, 3, 32, 32))
        model.centres.copy_(anchors.view(10, 2, -1))
        model.sigma2.fill_(model.cluster_distances(model.features(x)).mean())
        pred = model(x).argmax(1)
    ckpt = tmp_path / "clustr-cifar10.safetensors"
    save_checkpoint(model.state_dict(), checkpoint_meta(entry, model), ckpt)
    # one image labelled as the random net predicts it, the rest not: PGD-20 then has
    # exactly one clean-correct image to attack, which keeps the test fast on a CPU (at
    # most 10 x 20 ResNet-18 steps; PGD-100's 1000 took 9 s)
    batch[b"labels"] = [int(pred[0])] + [int(p + 1) % 10 for p in pred[1:]]
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", batch)
    code = run(["eval", "--model", "clustr-cifar10", "--attacks", "pgd20", "--checkpoint", str(ckpt),
                "--data-root", str(tmp_path), "--json", "--runs-dir", str(tmp_path / "runs"),
                "--leaderboard", str(tmp_path / "board.csv")])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads(out)
    assert summary["dataset"] == "cifar10" and abs(summary["eps"] - 8 / 255) < 1e-9
    assert summary["n_examples"] == 6 and abs(summary["clean_acc"] - 100 / 6) < 1e-6
    # the per-sample record: PGD-20 spent passes on the one clean-correct image only, and
    # the summary's robust accuracy is what that image's outcome says
    record = pd.read_csv(next((tmp_path / "runs").rglob("attacks/pgd20.csv")), comment="#")
    assert record["index"].tolist() == list(range(6))
    assert record["n_forward"].iloc[0] > 0 and (record["n_forward"].iloc[1:] == 0).all()
    attacked = bool(record["success"].iloc[0])
    assert summary["attacks"]["pgd20"]["robust_acc"] == (0.0 if attacked else summary["clean_acc"])
