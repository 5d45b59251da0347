"""Shared fixtures: the committed nominal-digits model and an isolated work dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from robbench.zoo.lookup import load_model
from robbench.datasets import load_split

REPO_ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One xdist worker per core (pyproject's `-n 2`): a second intra-op thread per worker,
    # or per CLI subprocess a test starts, would only compete for the other worker's core.
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def nominal_digits():
    return load_model("nominal-digits").model


@pytest.fixture(scope="session")
def digits_test():
    return load_split("digits", "test")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run from an empty directory so runs/ and leaderboards/ land in tmp."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def one_thread():
    """For modules of many tiny tensor ops: a second intra-op thread only adds
    overhead (and stalls badly when the other core is busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


def _committed_evidence() -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in ("runs", "leaderboards") for p in (REPO_ROOT / folder).rglob("*")
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="session", autouse=True)
def _committed_runs_and_leaderboards_stay_untouched():
    """No test may write into the repository's runs/ or leaderboards/: they are evidence."""
    before = _committed_evidence()
    yield
    after = _committed_evidence()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"tests changed committed evidence: {changed[:5]}"
