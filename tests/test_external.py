"""Third-party models: `robbench eval --model FILE.py:FACTORY --dataset ID` (and
PKG.MODULE:FACTORY) runs any nn.Module returning logits through the eval code path,
under an id no zoo model can take."""

import json
import textwrap

import pytest
import torch

from robbench.zoo.lookup import MODELS
from robbench.cli import run
from robbench.evaluation.external import ExternalModel, external_id, state_dict_sha256
from robbench.store.table import read_table
from robbench.leaderboard.builder import build
from robbench.leaderboard.verification import verify
from tests.conftest import REPO_ROOT
from tests.test_cli_errors import one_error_line

EXAMPLE = str(REPO_ROOT / "examples" / "third_party_model.py")


def eval_json(capsys, tmp_path, model, *extra, attacks="fgsm", n="12"):
    code = run(["eval", "--model", model, "--dataset", "digits", "--attacks", attacks,
                "--n-examples", n, "--runs-dir", str(tmp_path / "runs"),
                "--leaderboard", str(tmp_path / "board.csv"), "--json", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_a_factory_in_a_file_is_evaluated_under_an_ext_id_with_its_weights_digest(tmp_path, capsys):
    summary = eval_json(capsys, tmp_path, f"{EXAMPLE}:softmax_net")
    assert summary["model"] == "ext:third_party_model:softmax_net"
    assert summary["checkpoint_source"] == "state_dict" and summary["clean_acc"] > 80
    assert summary["leaderboard_model"] == f"ext:third_party_model:softmax_net@{summary['checkpoint_sha256'][:12]}"


def test_no_zoo_id_has_a_colon_so_ext_ids_cannot_collide():
    assert not any(":" in model_id for model_id in MODELS)
    assert external_id("my pkg/net", "make").startswith("ext:") and " " not in external_id("a b", "c")


def test_adaptive_attacks_the_training_loss_and_features_a_model_exposes(tmp_path, capsys):
    summary = eval_json(capsys, tmp_path, f"{EXAMPLE}:prototype_net", attacks="adaptive", n="6")
    flags = summary["attacks"]["adaptive"]["flags"]
    assert any(f.startswith("adaptive:adaptive-own-loss:") for f in flags)
    assert "adaptive:fallback" not in flags and not summary["notes"]


def test_adaptive_without_loss_or_features_falls_back_and_flags_the_output_and_row(tmp_path, capsys):
    code = run(["eval", "--model", f"{EXAMPLE}:softmax_net", "--dataset", "digits", "--attacks",
                "adaptive", "--n-examples", "6", "--runs-dir", str(tmp_path / "runs"),
                "--leaderboard", str(tmp_path / "board.csv")])
    out = capsys.readouterr().out
    assert code == 0 and "unreliable: adaptive fell back to CE, DLR and margin PGD" in out
    assert "fell back" in read_table(tmp_path / "board.csv")["unreliable"].iloc[0]


def test_a_checkpoint_file_for_a_third_party_model_is_hashed_as_a_file(tmp_path, capsys):
    from safetensors.torch import save_file

    from robbench.evaluation.external import load_external

    weights = load_external(f"{EXAMPLE}:softmax_net", "digits").model.body.state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    summary = eval_json(capsys, tmp_path, f"{EXAMPLE}:softmax_net", "--checkpoint",
                        str(tmp_path / "w.safetensors"))
    assert summary["checkpoint_source"] == "file"


def test_the_weights_digest_is_deterministic_and_changes_with_any_weight():
    net = torch.nn.Linear(3, 2)
    before = state_dict_sha256(net)
    assert state_dict_sha256(net) == before
    with torch.no_grad():
        net.bias[0] += 1e-6
    assert state_dict_sha256(net) != before


def test_third_party_runs_go_to_their_own_store_and_leaderboard_by_default(workdir, capsys):
    assert run(["eval", "--model", f"{EXAMPLE}:softmax_net", "--dataset", "digits",
                "--attacks", "fgsm", "--n-examples", "4"]) == 0
    assert (workdir / "runs-external").is_dir() and (workdir / "leaderboards-external" / "digits-Linf.csv").is_file()
    assert not (workdir / "runs").exists() and not (workdir / "leaderboards").exists()


def test_leaderboard_build_and_verify_pass_on_a_store_holding_a_third_party_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    for model in ("nominal-digits", f"{EXAMPLE}:softmax_net"):
        assert run(["eval", "--model", model, "--dataset", "digits", "--attacks", "fgsm",
                    "--n-examples", "4", "--runs-dir", str(runs),
                    "--leaderboard", str(tmp_path / "scratch.csv")]) == 0
    report = build(out=tmp_path / "boards", runs_dir=runs, paper_results=None)
    assert any("ext:third_party_model:softmax_net" in w and "not a zoo model" in w
               for w in report.warnings)
    assert verify(runs, tmp_path / "boards").problems == []


BAD_MODULE = textwrap.dedent("""
    import torch
    def not_a_module():
        return 42
    def three_classes():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    def crashes():
        raise ValueError("no weights here")
    class Disagrees(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        def forward(self, x):
            return self.lin(x)
        def decision_rule(self, x):
            return self.lin(x).argmin(1)
""")


@pytest.mark.parametrize("spec, dataset, expected", [
    ("no_such_pkg.nets:make", "digits", "no module named 'no_such_pkg'"),
    ("{file}:missing", "digits", "has no callable 'missing'"),
    ("{file}:not_a_module", "digits", "not a torch.nn.Module"),
    ("{file}:three_classes", "digits", "expected logits of shape (2, 10)"),
    ("{file}:crashes", "digits", "crashes() failed: ValueError: no weights here"),
    ("{file}:Disagrees", "digits", "disagree with its decision_rule"),
    ("{file}:three_classes", None, "pass --dataset"),
    ("missing_file.py:make", "digits", "does not exist"),
])
def test_bad_third_party_models_end_in_one_error_line(tmp_path, capsys, spec, dataset, expected):
    path = tmp_path / "bad_models.py"
    path.write_text(BAD_MODULE)
    argv = ["eval", "--model", spec.format(file=path), "--attacks", "fgsm", "--n-examples", "4",
            "--runs-dir", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "b.csv")]
    line = one_error_line(capsys, argv + (["--dataset", dataset] if dataset else []))
    assert expected in line


def test_the_wrapper_uses_the_models_own_features_when_it_has_them():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tp_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.PrototypeNet()
    wrapped = ExternalModel(net, 10)
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(wrapped.features(x), net.features(x)) and torch.equal(wrapped(x), net(x))
