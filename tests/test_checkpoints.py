import os
import pickle

import pytest
import torch

from robbench.zoo.lookup import MODELS, build_model, checkpoint_meta, load_model
from robbench.zoo.checkpoints import load_checkpoint, save_checkpoint, sha256_file
from robbench.errors import RobbenchError


def save_nominal(path, **meta_overrides) -> str:
    entry = MODELS.get("nominal-digits")
    model = build_model(entry)
    meta = {**checkpoint_meta(entry, model), **meta_overrides}
    return save_checkpoint(model.state_dict(), meta, path)


def test_checkpoint_round_trips_weights_and_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    sha = save_nominal(path)
    ckpt = load_checkpoint(path, expected_sha256=sha)
    assert ckpt.meta["architecture"] == "small-cnn" and ckpt.sha256 == sha == sha256_file(path)
    loaded = load_model("nominal-digits", checkpoint=path).model
    reference = build_model(MODELS.get("nominal-digits"))
    reference.load_state_dict(ckpt.state_dict)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(loaded(x), reference.eval()(x))


def test_sha256_mismatch_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_nominal(path)
    with pytest.raises(RobbenchError, match="sha256"):
        load_checkpoint(path, expected_sha256="0" * 64)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_nominal(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RobbenchError, match="unreadable|truncated"):
        load_model("nominal-digits", checkpoint=path)


def test_checkpoint_for_another_architecture_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_nominal(path, architecture="mnist-cnn")
    with pytest.raises(RobbenchError, match="architecture 'mnist-cnn'"):
        load_model("nominal-digits", checkpoint=path)


def test_checkpoint_with_wrong_tensor_shapes_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    entry = MODELS.get("nominal-digits")
    model = build_model(entry)
    state = model.state_dict()
    state["head.weight"] = torch.zeros(3, 128)
    save_checkpoint(state, checkpoint_meta(entry, model), path)
    with pytest.raises(RobbenchError, match="does not fit"):
        load_model("nominal-digits", checkpoint=path)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_at_a_checkpoint_path_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": Exploit(marker)}))
    with pytest.raises(RobbenchError):
        load_model("nominal-digits", checkpoint=path)
    assert not marker.exists()
    torch_zip = tmp_path / "evil.pt"  # the torch.save zip format is refused too
    torch.save({"x": Exploit(marker)}, torch_zip)
    with pytest.raises(RobbenchError):
        load_model("nominal-digits", checkpoint=torch_zip)
    assert not marker.exists()


def test_missing_checkpoint_file_is_one_clear_error(tmp_path):
    with pytest.raises(RobbenchError, match="does not exist"):
        load_model("nominal-digits", checkpoint=tmp_path / "nope.safetensors")


def test_every_committed_zoo_checkpoint_matches_its_manifest_hash():
    committed = [e for _, e in MODELS.items() if e.checkpoint]
    assert committed
    for entry in committed:
        assert sha256_file(entry.checkpoint_path) == entry.checkpoint_sha256, entry.id
