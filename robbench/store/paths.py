"""Checks on the paths that command-line options name, run before any expensive work so
that a bad path ends in one `error:` line naming the option, not in a traceback after
training or evaluating."""

from __future__ import annotations

import os
from pathlib import Path

from robbench.errors import RobbenchError


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists (the cwd for a relative name)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_dir(directory: Path, option: str, shown: str | os.PathLike) -> None:
    if not directory.is_dir():
        raise RobbenchError(f"{option} {shown}: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise RobbenchError(f"{option} {shown}: directory {directory} is not writable")


def check_output_file(path: str | os.PathLike, option: str, *, parent_must_exist: bool = False) -> None:
    """A file that will be written (replaced if it exists): not a directory, and in a
    writable directory. Missing parent directories are an error with
    `parent_must_exist`, else the nearest existing one must be writable (they get created)."""
    p = Path(path)
    if p.is_dir():
        raise RobbenchError(f"{option} {p} is a directory; give a file path")
    parent = Path(os.path.abspath(p)).parent
    if parent_must_exist and not parent.exists():
        raise RobbenchError(f"{option} {p}: directory {parent} does not exist")
    _writable_dir(_nearest_existing(parent), option, p)


def check_output_dir(path: str | os.PathLike, option: str) -> None:
    """A directory that will be written into, created (with its parents) if missing."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise RobbenchError(f"{option} {p} is a file, not a directory")
    _writable_dir(_nearest_existing(p), option, p)


def check_input_dir(path: str | os.PathLike, option: str) -> None:
    """A directory that must already exist (read from)."""
    p = Path(path)
    if not p.exists():
        raise RobbenchError(f"{option} {p} does not exist")
    if not p.is_dir():
        raise RobbenchError(f"{option} {p} is a file, not a directory")


def check_data_root(path: str | os.PathLike | None) -> None:
    """--data-root may be missing (the embedded datasets ignore it, --download creates
    it), but a file there is always a mistake."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise RobbenchError(f"--data-root {path} is a file, not a directory")


def check_input_file(path: str | os.PathLike | None, option: str) -> None:
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise RobbenchError(f"{option} {p} does not exist")
    if p.is_dir():
        raise RobbenchError(f"{option} {p} is a directory, not a file")
