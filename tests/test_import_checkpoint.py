"""`robbench import-checkpoint`: a reference .pth state dict becomes a zoo checkpoint,
read with torch.load(weights_only=True) only, with its keys mapped and its provenance
in the safetensors header."""

import json
import os

import pytest
import torch

from robbench.zoo.lookup import load_model
from robbench.zoo.checkpoints import load_checkpoint
from robbench.cli import run
from robbench.evaluation.checkpoint_import import map_key
from tests.test_cli_errors import one_error_line


class Payload:
    """Pickles as a call to os.system: unpickling it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def reference_state():
    """clustr-digits' weights as a reference implementation would save them:
    DataParallel's `module.` prefix, its own trunk name, no BatchNorm counters, an extra head."""
    state = load_model("clustr-digits").model.state_dict()
    renamed = {"module." + k.replace("body.trunk.", "features."): v for k, v in state.items()}
    renamed["module.head.weight"] = torch.zeros(10, 32)
    return state, renamed


def write_reference(tmp_path, renamed, wrap=True):
    path = tmp_path / "reference.pth"
    torch.save({"state_dict": renamed, "epoch": 7} if wrap else renamed, path)
    (tmp_path / "map.json").write_text(json.dumps(
        {"strip_prefixes": ["module."], "prefix_rules": {"features.": "body.trunk."}}))
    return path


def test_a_mapped_reference_state_dict_loads_through_the_zoo_path_with_equal_weights(
        tmp_path, capsys, reference_state):
    state, renamed = reference_state
    source = write_reference(tmp_path, renamed)
    out = tmp_path / "imported.safetensors"
    assert run(["import-checkpoint", "--model", "clustr-digits", "--from", str(source),
                "--key-map", str(tmp_path / "map.json"), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unmatched"] == ["module.head.weight"]
    loaded = load_model("clustr-digits", out).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())  # centres and σ² included


def test_the_import_provenance_is_in_the_safetensors_header(tmp_path, capsys, reference_state):
    source = write_reference(tmp_path, reference_state[1])
    out = tmp_path / "imported.safetensors"
    run(["import-checkpoint", "--model", "clustr-digits", "--from", str(source),
         "--key-map", str(tmp_path / "map.json"), "--out", str(out)])
    record = load_checkpoint(out).meta["import"]
    assert record["source_sha256"] in capsys.readouterr().out
    assert record["key_map"]["prefix_rules"] == {"features.": "body.trunk."}
    assert {"date", "versions", "weights_sha256", "unmatched"} <= set(record)


def test_a_pickled_payload_is_refused_and_never_runs(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    torch.save({"weight": torch.zeros(2), "evil": Payload(marker)}, tmp_path / "evil.pth")
    line = one_error_line(capsys, ["import-checkpoint", "--model", "clustr-digits", "--from",
                                   str(tmp_path / "evil.pth"), "--out", str(tmp_path / "o.safetensors")])
    assert "refused" in line and "posix.system" in line
    assert not marker.exists() and not (tmp_path / "o.safetensors").exists()


def test_keys_left_missing_after_mapping_are_refused_and_named(tmp_path, capsys, reference_state):
    source = write_reference(tmp_path, reference_state[1])  # no key map: features.* stay unmapped
    line = one_error_line(capsys, ["import-checkpoint", "--model", "clustr-digits", "--from",
                                   str(source), "--out", str(tmp_path / "o.safetensors")])
    assert "body.trunk.0.weight" in line and "unmatched source keys: module.features.0.weight" in line


def test_a_shape_mismatch_is_refused(tmp_path, capsys, reference_state):
    renamed = dict(reference_state[1])
    renamed["module.centres"] = torch.zeros(10, 3, 32)  # 3 clusters per class, the zoo has 2
    source = write_reference(tmp_path, renamed, wrap=False)
    line = one_error_line(capsys, ["import-checkpoint", "--model", "clustr-digits", "--from",
                                   str(source), "--key-map", str(tmp_path / "map.json"),
                                   "--out", str(tmp_path / "o.safetensors")])
    assert "shape mismatch" in line and "centres" in line


def test_key_map_strips_then_renames_exactly_before_prefix_rules():
    key_map = {"strip_prefixes": ["module."], "rename": {"mu": "centres"},
               "prefix_rules": {"features.": "body.trunk.", "f": "x"}}
    assert map_key("module.mu", key_map) == "centres"
    assert map_key("module.features.0.weight", key_map) == "body.trunk.0.weight"
    assert map_key("sigma2", key_map) == "sigma2"
