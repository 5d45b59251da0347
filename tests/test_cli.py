import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from robbench.zoo.lookup import MODELS, ModelEntry, build_model, checkpoint_meta
from robbench.zoo.checkpoints import load_checkpoint, save_checkpoint, sha256_file
from robbench.cli import run
from robbench.store.records import read_csv_record
from robbench.store.runs import ATTACK_SCHEMA


def fails_with_one_line(capsys, argv: list[str], pattern: str) -> None:
    code = run(argv)
    captured = capsys.readouterr()
    assert code != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert pattern in lines[0], lines[0]


EVAL = ["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "5"]


@pytest.mark.parametrize("argv, pattern", [
    (["eval", "--model", "nominal-digts", "--attacks", "fgsm"], "did you mean nominal-digits"),
    (["eval", "--model", "nominal-digits", "--attacks", "pgd200"], "did you mean pgd20"),
    (EVAL + ["--eps", "0"], "--eps must be a positive number"),
    (EVAL + ["--eps", "-0.1"], "--eps must be a positive number"),
    (EVAL + ["--eps", "1.5"], "exceeds the input range"),
    (["eval", "--model", "nominal-digits", "--attacks", "pgd20-l2", "--eps", "9"], "exceeds the input range"),
    (["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "0"], "--n-examples must be positive"),
    (["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "451"], "exceeds the 450 test images"),
    (["eval", "--model", "nominal-digits", "--attacks", "fgsm,pgd20-l2"], "different threat models"),
    (EVAL + ["--checkpoint", "/nonexistent/model.safetensors"], "does not exist"),
    (EVAL + ["--batch-size", "0"], "--batch-size must be positive"),
])
def test_bad_eval_input_is_one_error_line_and_a_nonzero_exit(workdir, capsys, argv, pattern):
    fails_with_one_line(capsys, argv, pattern)


def test_unreadable_checkpoint_is_one_error_line(workdir, capsys):
    bad = workdir / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    fails_with_one_line(capsys, EVAL + ["--checkpoint", str(bad)], "truncated")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_one_error_line(workdir, capsys):
    fails_with_one_line(capsys, EVAL + ["--device", "cuda"], "CUDA is not available")


def test_missing_data_root_names_the_path_and_the_flag(workdir, capsys, monkeypatch):
    entry = ModelEntry(id="tiny-mnist-t10k", dataset="mnist-t10k", architecture="mnist-cnn",
                       defense="nominal", recipe="nominal", checkpoint=None, checkpoint_sha256=None,
                       seed=0, command="", reference="")
    monkeypatch.setitem(MODELS._entries, entry.id, entry)
    ckpt = workdir / "tiny.safetensors"
    model = build_model(entry)
    save_checkpoint(model.state_dict(), checkpoint_meta(entry, model), ckpt)
    fails_with_one_line(capsys, ["eval", "--model", entry.id, "--attacks", "fgsm", "--checkpoint",
                                 str(ckpt), "--data-root", str(workdir / "nowhere")],
                        "--data-root")


def test_models_lists_the_zoo_as_json(capsys):
    assert run(["models", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["nominal-digits"]["dataset"] == "digits"


def test_attacks_lists_every_first_attack_with_its_parameters(capsys):
    assert run(["attacks", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"fgsm", "pgd20", "pgd100", "pgd20-l2", "pgd100-l2"} <= set(rows)
    assert rows["pgd100"]["steps"] == 100 and rows["pgd100"]["restarts"] == 10
    assert rows["pgd100-l2"]["norm"] == "L2"


def test_train_writes_a_loadable_checkpoint_and_logs_every_epoch(tmp_path, capsys):
    manifest_sha = MODELS.get("nominal-digits").checkpoint_sha256
    out = tmp_path / "nominal.safetensors"
    assert run(["train", "--model", "nominal-digits", "--epochs", "2", "--output", str(out)]) == 0
    log = capsys.readouterr().err
    assert "epoch 1/2" in log and "epoch 2/2" in log and "test acc" in log
    assert load_checkpoint(out).meta["model_id"] == "nominal-digits"
    assert sha256_file(MODELS.get("nominal-digits").checkpoint_path) == manifest_sha


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_eval_keeps_leaderboard_intact_and_finished_results(tmp_path, sig):
    board = tmp_path / "board.csv"
    board.write_text("model,threat_model,eps,clean_acc,worst_case_acc,source\n"
                     "other-model,Linf,0.2,50.0,10.0,measured\n")
    before = board.read_bytes()
    # a small eps keeps most samples robust, so pgd100 runs long enough to be interrupted
    cmd = [sys.executable, "-c", "from robbench.cli import main; main()", "eval", "--model",
           "nominal-digits", "--attacks", "pgd100", "--eps", "0.03", "--batch-size", "16",
           "--leaderboard", str(board), "--runs-dir", str(tmp_path / "runs")]
    # SIGINT at its default in the child: a suite started as a background job inherits it
    # ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300  # generous: on a loaded machine the first batch can take minutes
    rows = None
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "runs").rglob("pgd100.csv"))
        if found and len(read_csv_record(found[0], ATTACK_SCHEMA)[0]) > 0:
            rows = found[0]
            break
        time.sleep(0.2)
    assert rows is not None, "no batch finished in time"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "interrupted" in err
    assert board.read_bytes() == before
    finished = read_csv_record(rows, ATTACK_SCHEMA)[0]
    assert 0 < len(finished) < 450 and finished["index"].is_unique


# --- robbench attacks: readable in 100 columns ------------------------------------------------
def test_attacks_table_fits_100_columns_with_one_line_per_attack(capsys):
    from robbench.attacks import ATTACKS

    assert run(["attacks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == ["attack", "norm", "kind", "description"]
    ids = list(dict(ATTACKS.items()))
    assert [line.split()[0] for line in lines[2:2 + len(ids)]] == ids
    pgd100 = next(line for line in lines if line.startswith("pgd100 "))
    assert pgd100.split()[1:3] == ["Linf", "gradient"] and "100 steps" in pgd100


def test_attacks_lists_the_presets_with_what_they_expand_to(capsys):
    from robbench.config import STANDARD_ATTACKS

    assert run(["attacks"]) == 0
    out = capsys.readouterr().out
    presets = out.split("presets")[1]
    flat = " ".join(presets.split())
    for preset, ids in STANDARD_ATTACKS.items():
        assert f"{preset} {'L2' if preset.endswith('l2') else 'Linf'} {', '.join(ids)}" in flat
    assert "standard-cascade Linf apgd-ce, apgd-dlr" in flat


def test_attacks_id_shows_its_full_parameters(capsys):
    assert run(["attacks", "pgd100"]) == 0
    out = capsys.readouterr().out
    assert "steps: 100" in out and "restarts: 10" in out and "step_fraction: 0.25" in out
    assert run(["attacks", "l2-suite", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["id"] == "l2-suite" and "apgd_steps" in row
    assert run(["attacks", "standard-l2"]) == 0
    assert "apgd-t-l2" in capsys.readouterr().out
    assert run(["attacks", "pgd10"]) == 1
    assert "did you mean pgd100" in capsys.readouterr().err
