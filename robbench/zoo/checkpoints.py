"""Checkpoints as safetensors: tensors in the body, non-tensor parameters as JSON in
the header metadata. Nothing is ever unpickled, so a checkpoint cannot run code."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from robbench.errors import RobbenchError

FORMAT_VERSION = 1
META_KEY = "robbench"


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]  # architecture, defense, dataset, feature_dim, defense_params
    sha256: str


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(state_dict: dict[str, torch.Tensor], meta: dict[str, Any],
                    path: str | os.PathLike) -> str:
    """Writes atomically (a temporary file in the same directory, then a rename) and
    returns the file's sha256. A failed or interrupted write leaves no temporary file
    and the previous file, if any, untouched."""
    path = Path(path)
    if path.is_dir():
        raise RobbenchError(f"cannot write checkpoint {path}: it is a directory")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    header = {META_KEY: json.dumps({"format": FORMAT_VERSION, **meta}, sort_keys=True)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RobbenchError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt included: never leave the .tmp behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, (OSError, SafetensorError)):
            reason = getattr(exc, "strerror", None) or exc
            raise RobbenchError(f"cannot write checkpoint {path}: {reason}") from None
        raise
    return sha256_file(path)


def _read_meta(path: Path) -> dict[str, Any]:
    """Parses the safetensors JSON header ourselves: 8-byte length, then JSON."""
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise RobbenchError(f"checkpoint {path} is truncated or not a safetensors file")
        length = int.from_bytes(prefix, "little")
        if length > 100 * 1024 * 1024:
            raise RobbenchError(f"checkpoint {path} is not a safetensors file (bad header)")
        raw = fh.read(length)
    try:
        header = json.loads(raw)
        return json.loads(header["__metadata__"][META_KEY])
    except (ValueError, KeyError, TypeError):
        raise RobbenchError(
            f"checkpoint {path} is not a robbench safetensors checkpoint (no readable metadata)"
        ) from None


def load_checkpoint(path: str | os.PathLike, expected_sha256: str | None = None) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise RobbenchError(f"checkpoint {path} does not exist")
    sha = sha256_file(path)
    if expected_sha256 is not None and sha != expected_sha256:
        raise RobbenchError(
            f"checkpoint {path} has sha256 {sha[:16]}…, the manifest expects "
            f"{expected_sha256[:16]}…; the file is corrupt or from another training run"
        )
    meta = _read_meta(path)
    try:
        state_dict = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RobbenchError(f"checkpoint {path} is unreadable ({exc})") from None
    return Checkpoint(state_dict=state_dict, meta=meta, sha256=sha)
