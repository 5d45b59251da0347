"""The Python API (robbench._api): the eval code path of the CLI, returning objects."""

import subprocess
import sys

import pandas as pd
import pytest
import torch

import robbench
from robbench.errors import RobbenchError
from tests.conftest import REPO_ROOT


def test_importing_robbench_does_not_import_torch():
    code = "import sys, robbench; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_models_and_attacks_list_ids_with_their_details():
    assert {"id": "clustr-digits", "dataset": "digits"}.items() <= \
        next(m for m in robbench.list_models() if m["id"] == "clustr-digits").items()
    assert next(a for a in robbench.list_attacks() if a["id"] == "pgd100")["steps"] == 100


def test_evaluate_returns_accuracies_per_sample_frame_and_provenance(tmp_path):
    result = robbench.evaluate("nominal-digits", attacks=["fgsm"], n_examples=8,
                               runs_dir=tmp_path / "runs", leaderboard=tmp_path / "b.csv")
    frame = result.per_sample
    assert isinstance(frame, pd.DataFrame) and list(frame["index"]) == list(range(8))
    assert result.worst_case_acc == pytest.approx(100 * frame["robust"].mean())
    assert result.robust_acc["fgsm"] == pytest.approx(100 * (frame["correct"] & ~frame["fgsm"]).mean())
    assert result.provenance["seed"] == 0 and result.provenance["n_examples"] == 8
    assert len(result.provenance["checkpoint_sha256"]) == 64 and "torch" in result.provenance["versions"]


def test_a_loaded_zoo_model_is_recorded_as_the_zoo_model_while_unchanged(tmp_path):
    model = robbench.load_model("nominal-digits")
    kwargs = dict(attacks=["fgsm"], n_examples=4, runs_dir=tmp_path / "runs", leaderboard=tmp_path / "b.csv")
    assert robbench.evaluate(model, **kwargs).provenance["leaderboard_model"] == "nominal-digits"
    with torch.no_grad():
        next(model.parameters()).mul_(0.5)
    changed = robbench.evaluate(model, **kwargs).provenance
    assert changed["checkpoint_source"] == "state_dict"
    assert changed["leaderboard_model"] == f"nominal-digits@{changed['checkpoint_sha256'][:12]}"


def test_an_nn_module_without_a_dataset_is_refused():
    with pytest.raises(RobbenchError, match="dataset"):
        robbench.evaluate(torch.nn.Linear(64, 10), attacks=["fgsm"])


def test_the_api_functions_stay_functions_after_every_module_is_imported():
    import pkgutil
    import types

    import robbench.attacks  # noqa: F401  (binds the package on robbench)
    import robbench.evaluation.evaluator  # noqa: F401

    modules = {m.name.rpartition(".")[2] for m in pkgutil.walk_packages(robbench.__path__, "robbench.")}
    for name in ("evaluate", "load_model", "list_models", "list_attacks"):
        assert isinstance(getattr(robbench, name), types.FunctionType), name
        assert name not in modules, f"robbench.{name} is also a module"
    assert isinstance(robbench.attacks, types.ModuleType)
    assert isinstance(robbench.list_attacks(), list)
