"""Bad paths and empty options end in one `error:` line and exit 1 before any expensive
work (no training, no evaluation); `python -m robbench` and `python -m robbench.cli`
run the same command line as the `robbench` script."""

import json
import os
import subprocess
import sys

import pytest

from robbench.zoo.lookup import MODELS, build_model, checkpoint_meta
from robbench.zoo import checkpoints
from robbench.zoo.checkpoints import save_checkpoint
from robbench.cli import run
from robbench.errors import RobbenchError
from tests.conftest import REPO_ROOT


def one_error_line(capsys, argv: list[str]) -> str:
    """Runs the CLI, asserts exit 1 and exactly one stderr line (so no training or
    evaluation log got printed first), and returns that line."""
    code = run(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --- train --output --------------------------------------------------------------------------
def test_train_output_that_is_a_directory_fails_before_training_and_leaves_no_tmp(tmp_path, capsys):
    target = tmp_path / "existing"
    target.mkdir()
    line = one_error_line(capsys, ["train", "--model", "nominal-digits", "--output", str(target)])
    assert "--output" in line and "is a directory" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]


def test_train_output_in_a_missing_directory_fails_before_training(tmp_path, capsys):
    line = one_error_line(capsys, ["train", "--model", "nominal-digits", "--output",
                                   str(tmp_path / "nowhere" / "m.safetensors")])
    assert "--output" in line and "does not exist" in line
    assert not (tmp_path / "nowhere").exists()


def test_train_without_output_for_a_model_without_zoo_checkpoint_fails_before_training(capsys):
    assert MODELS.get("clustr-cifar10").checkpoint is None
    line = one_error_line(capsys, ["train", "--model", "clustr-cifar10"])
    assert "--output PATH" in line


def test_failed_checkpoint_save_leaves_no_tmp_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.os, "replace", failing_replace)
    with pytest.raises(RobbenchError, match="cannot write checkpoint .*No space left"):
        save_checkpoint({}, {}, path)
    assert os.listdir(tmp_path) == ["m.safetensors"] and path.read_bytes() == b"old"


def test_interrupted_checkpoint_save_leaves_no_tmp(tmp_path, monkeypatch):
    def interrupted_save(tensors, filename, metadata=None):
        open(filename, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save_file", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({}, {}, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []


# --- python -m ------------------------------------------------------------------------------
def python_m(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("module", ["robbench", "robbench.cli"])
def test_python_m_runs_the_cli(module):
    proc = python_m(module, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "nominal-digits" in {row["id"] for row in json.loads(proc.stdout)}
    assert proc.stderr == ""


@pytest.mark.parametrize("module", ["robbench", "robbench.cli"])
def test_python_m_exits_1_on_bad_input_and_2_on_a_usage_error(module):
    bad = python_m(module, "analyze", "--what", "radius")
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "error: --model is required (or --synthetic moons|circles with --what radius)")
    usage = python_m(module, "no-such-command")
    assert usage.returncode == 2 and "No such command" in usage.stderr
    assert "Usage: robbench" in usage.stderr


# --- analyze --checkpoint ----------------------------------------------------------------------
def test_analyze_checkpoint_option_analyses_that_checkpoint(tmp_path, capsys):
    """A freshly initialised nominal-digits checkpoint gives other feature distances than
    the zoo's trained one."""
    entry = MODELS.get("nominal-digits")
    model = build_model(entry)
    ckpt = tmp_path / "init.safetensors"
    save_checkpoint(model.state_dict(), checkpoint_meta(entry, model), ckpt)
    argv = ["analyze", "--model", "nominal-digits", "--what", "feature-dist", "--n-examples", "50",
            "--json"]
    assert run(argv) == 0
    zoo = json.loads(capsys.readouterr().out)["F"]
    assert run(argv + ["--checkpoint", str(ckpt)]) == 0
    other = json.loads(capsys.readouterr().out)["F"]
    assert other != zoo


def test_analyze_checkpoint_of_another_model_is_one_error_line(tmp_path, capsys):
    entry = MODELS.get("nominal-digits")
    model = build_model(entry)
    ckpt = tmp_path / "nominal.safetensors"
    save_checkpoint(model.state_dict(), checkpoint_meta(entry, model), ckpt)
    line = one_error_line(capsys, ["analyze", "--model", "clustr-digits", "--what", "weight-corr",
                                   "--checkpoint", str(ckpt)])
    assert "is for defense 'nominal'" in line


def test_analyze_checkpoint_with_several_models_is_one_error_line(capsys):
    line = one_error_line(capsys, ["analyze", "--model", "clustr-digits,nominal-digits", "--what",
                                   "curve", "--checkpoint", "x.safetensors"])
    assert "--checkpoint goes with one --model" in line


# --- leaderboard build ---------------------------------------------------------------------------
def test_leaderboard_build_empty_attacks_is_one_error_line(tmp_path, capsys):
    line = one_error_line(capsys, ["leaderboard", "build", "--evaluate", "--attacks", "",
                                   "--out", str(tmp_path / "lb"), "--runs-dir", str(tmp_path / "runs")])
    assert "--attacks is empty" in line
    assert list(tmp_path.iterdir()) == []


def test_leaderboard_build_out_that_is_a_file_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "board"
    out.write_text("x")
    line = one_error_line(capsys, ["leaderboard", "build", "--out", str(out), "--runs-dir", str(tmp_path)])
    assert line == f"error: --out {out} is a file, not a directory"


def test_leaderboard_build_runs_dir_that_is_a_file_is_one_error_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.write_text("x")
    line = one_error_line(capsys, ["leaderboard", "build", "--out", str(tmp_path / "lb"),
                                   "--runs-dir", str(runs)])
    assert line == f"error: --runs-dir {runs} is a file, not a directory"
    assert not (tmp_path / "lb").exists()


def test_leaderboard_build_missing_runs_dir_is_one_error_line(tmp_path, capsys):
    line = one_error_line(capsys, ["leaderboard", "build", "--out", str(tmp_path / "lb"),
                                   "--runs-dir", str(tmp_path / "runs")])
    assert f"--runs-dir {tmp_path / 'runs'} does not exist" in line
    assert not (tmp_path / "lb").exists()


# --- other path options ------------------------------------------------------------------------
@pytest.mark.parametrize("argv, pattern", [
    (["analyze", "--model", "clustr-digits", "--what", "radius", "--plot", "{file}/r.png"],
     "--plot {file}/r.png: {file} is not a directory"),
    (["analyze", "--model", "clustr-digits", "--what", "radius", "--data-root", "{file}"],
     "--data-root {file} is a file, not a directory"),
    (["analyze", "--model", "clustr-digits", "--what", "radius", "--checkpoint", "{dir}"],
     "--checkpoint {dir} is a directory, not a file"),
    (["train", "--model", "nominal-digits", "--output", "{dir}/m.safetensors", "--data-root", "{file}"],
     "--data-root {file} is a file, not a directory"),
    (["leaderboard", "build", "--out", "{dir}/lb", "--runs-dir", "{dir}", "--paper-results", "{dir}"],
     "--paper-results {dir} is a directory, not a file"),
    (["leaderboard", "build", "--out", "{dir}/lb", "--runs-dir", "{dir}", "--evaluate",
      "--data-root", "{file}"], "--data-root {file} is a file, not a directory"),
])
def test_path_option_naming_the_wrong_kind_of_path_is_one_error_line(tmp_path, capsys, argv, pattern):
    names = {"file": str(tmp_path / "a-file"), "dir": str(tmp_path)}
    (tmp_path / "a-file").write_text("x")
    line = one_error_line(capsys, [a.format(**names) for a in argv])
    assert pattern.format(**names) in line
