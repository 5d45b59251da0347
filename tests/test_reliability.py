"""Issue 26: nothing but a full evaluation changes a published row, and every bad input
is a one-line error that leaves no file behind. One test (or a few) per defect found by
trying to break robbench."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import robbench
from robbench.zoo.lookup import MODELS, load_model
from robbench.cli import run
from robbench.errors import RobbenchError
from robbench.store.table import upsert_row
from robbench.leaderboard.builder import build
from robbench.store.records import read_csv_record, write_csv_record
from robbench.store.runs import ATTACK_SCHEMA, RunStore
from robbench.leaderboard.verification import verify
from tests.conftest import REPO_ROOT
from tests.stores import new_run, write_attack, write_clean
from tests.test_cli_errors import one_error_line

EVAL = ["eval", "--model", "nominal-digits", "--attacks", "fgsm"]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (locks aside) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


# --- 1. a scratch eval never rewrites the published leaderboard ----------------------------
def test_eval_into_another_runs_dir_writes_the_leaderboard_beside_that_store(workdir, capsys):
    assert run([*EVAL, "--n-examples", "6"]) == 0
    published = files(workdir / "leaderboards")
    assert run([*EVAL, "--n-examples", "3", "--runs-dir", "scratch"]) == 0
    assert files(workdir / "leaderboards") == published
    assert (workdir / "scratch" / "leaderboards" / "digits-Linf.csv").is_file()


def test_api_evaluate_into_another_runs_dir_writes_the_leaderboard_beside_that_store(workdir):
    result = robbench.evaluate("nominal-digits", attacks=["fgsm"], n_examples=3, runs_dir="scratch")
    assert result.provenance["leaderboard"] == str(Path("scratch", "leaderboards", "digits-Linf.csv"))
    assert not (workdir / "leaderboards").exists()


def test_eval_into_a_given_leaderboard_leaves_a_row_covering_more_samples(workdir, capsys):
    assert run([*EVAL, "--n-examples", "6"]) == 0
    published = files(workdir / "leaderboards")
    capsys.readouterr()
    assert run([*EVAL, "--n-examples", "3", "--runs-dir", "scratch",
                "--leaderboard", "leaderboards/digits-Linf.csv"]) == 0
    assert "left as it was: the row on record covers n=6, this run n=3" in capsys.readouterr().out
    assert files(workdir / "leaderboards") == published


def board_row(n: int, **attacks: float) -> dict:
    return {"model": "m", "threat_model": "Linf", "eps": 0.2, "seed": 0, "checkpoint_sha256": "a",
            "worst_case_acc": 50.0, "source": "measured", "n_examples": n, **attacks}


def test_an_upsert_never_replaces_a_row_with_one_lacking_an_attack_column(tmp_path):
    board = tmp_path / "b.csv"
    upsert_row(board, lambda: board_row(10, pgd20=60.0, fgsm=70.0))
    before = board.read_bytes()
    kept = upsert_row(board, lambda: board_row(10, fgsm=20.0))
    assert kept.kept_because == ("the row on record has attack column(s) pgd20, which this run "
                                 "lacks")
    assert board.read_bytes() == before


def test_an_upsert_replaces_a_row_with_one_covering_its_samples_and_attacks(tmp_path):
    board = tmp_path / "b.csv"
    upsert_row(board, lambda: board_row(10, fgsm=70.0))
    done = upsert_row(board, lambda: board_row(12, fgsm=65.0, pgd20=60.0))
    assert done.kept_because is None
    assert "65.0" in board.read_text() and "70.0" not in board.read_text()


# --- 3. a refused API call leaves nothing in the store ----------------------------------------
@pytest.mark.parametrize("bad", [{"seed": "x"}, {"eps": True}, {"n_examples": True}])
def test_a_refused_api_argument_leaves_no_run_directory(workdir, bad):
    with pytest.raises(RobbenchError):
        robbench.evaluate("nominal-digits", **{"attacks": ["fgsm"], "n_examples": 3, **bad})
    assert list(workdir.iterdir()) == []


# --- 8. Python API type errors are RobbenchError ---------------------------------------------
@pytest.mark.parametrize("bad, message", [
    ({"eps": "0.1"}, "eps must be a number"),
    ({"n_examples": 5.5}, "n_examples must be an integer"),
    ({"attacks": None}, "attacks must be a list of attack ids"),
    ({"runs_dir": 3}, "runs_dir must be a path"),
])
def test_an_api_argument_of_the_wrong_type_is_a_robbench_error(workdir, bad, message):
    with pytest.raises(RobbenchError, match=message):
        robbench.evaluate("nominal-digits", **{"attacks": ["fgsm"], "n_examples": 3, **bad})
    assert list(workdir.iterdir()) == []


def test_load_model_without_a_model_id_is_a_robbench_error():
    with pytest.raises(RobbenchError, match="takes a zoo model id"):
        robbench.load_model(None)


def test_a_module_on_the_meta_device_is_a_robbench_error(workdir):
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10, device="meta"))
    with pytest.raises(RobbenchError, match="1.weight is on the meta device"):
        robbench.evaluate(net, dataset="digits", attacks=["fgsm"], n_examples=3)
    assert list(workdir.iterdir()) == []


# --- 4. non-finite weights or logits are one error line before anything is written -----------
def nan_weights(tmp_path: Path) -> Path:
    """nominal-digits' state dict, one weight NaN, as a reference .pth."""
    state = {k: v.clone() for k, v in load_model("nominal-digits").model.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    return tmp_path / "nan.pth"


def test_import_checkpoint_refuses_nan_weights(tmp_path, capsys):
    out = tmp_path / "nan.safetensors"
    line = one_error_line(capsys, ["import-checkpoint", "--model", "nominal-digits", "--from",
                                   str(nan_weights(tmp_path)), "--out", str(out)])
    assert "hold NaN or infinite values" in line and "--allow-nonfinite" in line
    assert not out.exists()


def test_eval_refuses_a_checkpoint_with_nan_weights_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "nan.safetensors"
    assert run(["import-checkpoint", "--model", "nominal-digits", "--from",
                str(nan_weights(tmp_path)), "--out", str(out), "--allow-nonfinite"]) == 0
    capsys.readouterr()
    line = one_error_line(capsys, [*EVAL, "--n-examples", "3", "--checkpoint", str(out),
                                   "--runs-dir", str(tmp_path / "runs")])
    assert "holds NaN or infinite values" in line
    assert not (tmp_path / "runs").exists()


class InfiniteLogits(nn.Module):
    """Finite weights, infinite logits."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x.flatten(1)) + float("inf")


def test_eval_refuses_a_model_with_infinite_logits_and_writes_nothing(workdir):
    with pytest.raises(RobbenchError, match="NaN or infinite logits on clean test image 0"):
        robbench.evaluate(InfiniteLogits(), dataset="digits", attacks=["fgsm"], n_examples=3)
    assert list(workdir.iterdir()) == []


# --- 6. key maps are checked against their schema ----------------------------------------------
@pytest.mark.parametrize("key_map, message", [
    ({"prefix_rules": ["a"]}, "field 'prefix_rules' must be an object mapping old prefixes"),
    ({"fill": "abc"}, "field 'fill' must be an object mapping keys to numbers"),
    ({"strip_prefixes": "module."}, "field 'strip_prefixes' must be a list of strings"),
    ({"rename": [1, 2]}, "field 'rename' must be an object mapping old keys"),
    ({"select": 3}, "field 'select' must be a string"),
    ({"fill": {"body.normalize.mean": [[1], [1, 2]]}}, "is not a tensor constant"),
])
def test_a_key_map_field_of_the_wrong_type_is_one_error_line(tmp_path, capsys, key_map, message):
    state = load_model("nominal-digits").model.state_dict()
    del state["body.normalize.mean"]  # for fill to give
    torch.save(state, tmp_path / "ref.pth")
    (tmp_path / "map.json").write_text(json.dumps(key_map))
    out = tmp_path / "out.safetensors"
    line = one_error_line(capsys, ["import-checkpoint", "--model", "nominal-digits", "--from",
                                   str(tmp_path / "ref.pth"), "--key-map", str(tmp_path / "map.json"),
                                   "--out", str(out)])
    assert message in line and not out.exists()


# --- 9. import-checkpoint never replaces a zoo checkpoint, nor any file without --force --------
def test_import_checkpoint_never_replaces_a_zoo_checkpoint(tmp_path, capsys):
    zoo = MODELS.get("nominal-digits").checkpoint_path
    before = zoo.stat().st_mtime_ns
    torch.save(load_model("nominal-digits").model.state_dict(), tmp_path / "ref.pth")
    line = one_error_line(capsys, ["import-checkpoint", "--model", "nominal-digits", "--from",
                                   str(tmp_path / "ref.pth"), "--out", str(zoo), "--force"])
    assert "is the zoo's checkpoint of nominal-digits" in line
    assert zoo.stat().st_mtime_ns == before


def test_import_checkpoint_replaces_an_existing_file_only_with_force(tmp_path, capsys):
    torch.save(load_model("nominal-digits").model.state_dict(), tmp_path / "ref.pth")
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"mine")
    argv = ["import-checkpoint", "--model", "nominal-digits", "--from", str(tmp_path / "ref.pth"),
            "--out", str(out)]
    assert "exists; pass --force to replace it" in one_error_line(capsys, argv)
    assert out.read_bytes() == b"mine"
    assert run([*argv, "--force"]) == 0 and out.read_bytes() != b"mine"


# --- 10. a refused pickle payload prints the error line only -------------------------------------
class Payload:
    """Pickles as a call to os.system: unpickling it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refusing_a_raw_pickle_payload_prints_one_error_line_and_no_warning(tmp_path):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"weight": Payload(tmp_path / "ran")}, f, protocol=4)
    done = subprocess.run([sys.executable, "-m", "robbench", "import-checkpoint", "--model",
                           "nominal-digits", "--from", "evil.pth", "--out", "o.safetensors"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 1 and done.stderr.startswith("error: --from evil.pth: refused")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pth"]


# --- 7. a forward that modifies its input in place --------------------------------------------
class ScalesItsInput(nn.Module):
    """Normalises in place, as some reference code does."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2.0).sub_(1.0)
        return self.lin(x.flatten(1))


def test_a_forward_modifying_its_input_in_place_is_evaluated_on_a_copy(tmp_path):
    from robbench.datasets import load_split

    images = load_split("digits", "test").x[:4].clone()
    result = robbench.evaluate(ScalesItsInput(), dataset="digits", attacks=["fgsm"], n_examples=4,
                               runs_dir=tmp_path / "runs", leaderboard=tmp_path / "b.csv")
    assert result.provenance["n_examples"] == 4
    assert torch.equal(load_split("digits", "test").x[:4], images)  # the cached split is intact


# --- 5. records are checked for what they claim, not only for their hash ----------------------
def rewrite_rows(store: RunStore, attack_id: str, index: int, success: bool, norm: float) -> None:
    """Edits one row and re-hashes the record, as the README says a hand check works."""
    path = store.attack_path(attack_id)
    frame, meta = read_csv_record(path, ATTACK_SCHEMA)
    frame.loc[frame["index"] == index, ["success", "norm"]] = [success, norm]
    write_csv_record(path, ATTACK_SCHEMA, frame, meta)


def fixed_budget_run(runs: Path) -> RunStore:
    store = new_run(runs, "nominal-digits")
    write_clean(store, [0, 1, 2], [0, 1, 2])
    write_attack(store, "pgd20", [False, True, False], norm=[0.2, 0.1, 0.2])
    return store


def test_verify_refuses_a_rehashed_success_beyond_eps_naming_file_and_sample(tmp_path):
    store = fixed_budget_run(tmp_path / "runs")
    assert verify(tmp_path / "runs", None).problems == []
    rewrite_rows(store, "pgd20", 2, True, 0.9)
    assert verify(tmp_path / "runs", None).problems == [
        f"{store.attack_path('pgd20')}: sample 2: a success with norm 0.9, beyond eps 0.2 "
        f"(outside the threat model)"]


def test_leaderboard_build_refuses_a_rehashed_success_beyond_eps(tmp_path):
    store = fixed_budget_run(tmp_path / "runs")
    rewrite_rows(store, "pgd20", 0, True, 0.9)
    with pytest.raises(RobbenchError, match="pgd20.csv: sample 0: a success with norm 0.9"):
        build(out=tmp_path / "boards", runs_dir=tmp_path / "runs", paper_results=None)
    assert not (tmp_path / "boards").exists()


def test_verify_refuses_a_minimum_norm_robust_verdict_with_a_norm_within_eps(tmp_path):
    store = new_run(tmp_path / "runs", "nominal-digits", norm="L2", eps=1.0)
    write_clean(store, [0, 1], [0, 1])
    write_attack(store, "cw", [False, True], norm=[1.5, 0.5])
    rewrite_rows(store, "cw", 0, False, 0.5)
    assert verify(tmp_path / "runs", None).problems == [
        f"{store.attack_path('cw')}: sample 0: counted robust, but this minimum-norm attack found "
        f"an adversarial at norm 0.5, within eps 1"]


# --- 2. two different forwards never share a run --------------------------------------------------
class Wrap(nn.Module):
    """The same weights (none in `post`), with or without a squashing last layer."""

    def __init__(self, post: nn.Module | None = None, scale: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.post = post
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scale * self.net(x)
        return self.post(out) if self.post is not None else out


def evaluate_wrap(tmp_path: Path, model: nn.Module) -> robbench._api.EvalResult:
    return robbench.evaluate(model, dataset="digits", attacks=["fgsm"], n_examples=3,
                             runs_dir=tmp_path / "runs", leaderboard=tmp_path / "b.csv")


def test_models_differing_only_in_a_weightless_layer_get_their_own_runs_and_checks(tmp_path):
    plain = evaluate_wrap(tmp_path, Wrap())
    squashed = evaluate_wrap(tmp_path, Wrap(post=nn.Softmax(dim=1)))
    assert plain.provenance["run_dir"] != squashed.provenance["run_dir"]
    assert "probabilities" in {f["check"] for f in squashed.unreliable}


def test_models_differing_only_in_a_plain_attribute_get_their_own_runs(tmp_path):
    one, two = evaluate_wrap(tmp_path, Wrap()), evaluate_wrap(tmp_path, Wrap(scale=2.0))
    assert one.provenance["run_dir"] != two.provenance["run_dir"]


def test_the_same_model_evaluated_again_resumes_its_run(tmp_path):
    first = evaluate_wrap(tmp_path, Wrap())
    assert evaluate_wrap(tmp_path, Wrap()).provenance["run_dir"] == first.provenance["run_dir"]


def test_a_model_whose_source_cannot_be_read_never_reuses_an_earlier_run(tmp_path):
    code = ("import robbench, torch\n"
            "class Net(torch.nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__(); torch.manual_seed(0); self.lin = torch.nn.Linear(64, 10)\n"
            "    def forward(self, x):\n"
            "        return self.lin(x.flatten(1))\n"
            "for _ in range(2):\n"
            "    robbench.evaluate(Net(), dataset='digits', attacks=['fgsm'], n_examples=3,\n"
            "                      runs_dir='runs', leaderboard='b.csv')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 1
    assert "RobbenchError: the source of __main__:Net cannot be read" in done.stderr


FACTORY = """import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(64, 10)
    def forward(self, x):
        return {logits}
def make():
    return Net()
"""


def test_a_factory_file_whose_code_changed_gets_its_own_run(tmp_path, capsys):
    runs = []
    for logits in ("self.lin(x.flatten(1))", "self.lin(x.flatten(1)).softmax(1)"):
        (tmp_path / "net.py").write_text(FACTORY.format(logits=logits))
        assert run(["eval", "--model", f"{tmp_path / 'net.py'}:make", "--dataset", "digits",
                    "--attacks", "fgsm", "--n-examples", "3", "--runs-dir", str(tmp_path / "runs"),
                    "--json"]) == 0
        runs.append(json.loads(capsys.readouterr().out)["run_dir"])
    assert runs[0] != runs[1]
