"""Every ```bash and ```python block of README.md and docs/*.md runs (tests/docs_runner.py
says how: on a scratch copy of the committed store, with budgets shrunk to seconds),
every fenced block says what it is, the README stays short, and every benchmark that
benchmarks/README.md names exists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tests.docs_runner import FENCE, blocks, small

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LANGUAGES = {"bash", "python", "text"}  # text: illustrative, and the prose says why


def test_the_readme_is_at_most_150_lines():
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 150


def test_the_docs_named_by_the_issue_exist_and_the_readme_links_each():
    readme = (REPO_ROOT / "README.md").read_text()
    for name in ("methods", "results-store", "attacks", "diagnostics-and-gate",
                 "third-party-models", "adding-a-defense", "adding-an-attack"):
        assert (REPO_ROOT / "docs" / f"{name}.md").is_file()
        assert f"(docs/{name}.md)" in readme
    assert "(benchmarks/README.md)" in readme


@pytest.mark.parametrize("doc", [*DOCS, REPO_ROOT / "benchmarks" / "README.md"], ids=lambda p: p.name)
def test_every_fenced_block_names_its_language(doc):
    for match in FENCE.finditer(doc.read_text()):
        assert match.group(1) in LANGUAGES, f"{doc.name}: a block tagged {match.group(1)!r}"


def test_relative_links_in_the_docs_resolve():
    for doc in [*DOCS, REPO_ROOT / "benchmarks" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to a missing {target}"


def test_every_benchmark_named_in_benchmarks_readme_exists():
    text = (REPO_ROOT / "benchmarks" / "README.md").read_text()
    modules = set(re.findall(r"python -m benchmarks\.([a-z_0-9]+)", text))
    assert modules
    for module in modules:
        assert (REPO_ROOT / "benchmarks" / f"{module}.py").is_file(), module


def test_the_substitutions_only_shrink_budgets():
    assert small("pip install -e . && robbench eval --model m --attacks a") == \
        "robbench eval --model m --attacks a --n-examples 4"
    assert small("robbench eval --model m --attacks a --n-examples 200 --eps 0.5") == \
        "robbench eval --model m --attacks a --n-examples 4 --eps 0.5"
    assert small('pip install -e ".[test]" && python -m pytest tests') is None
    assert small("robbench verify") == "robbench verify"


@pytest.mark.slow  # about 2 minutes in all: CI runs it after the main suite (.ci/run)
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_code_blocks_run(doc, tmp_path):
    if not any(lang in ("bash", "python") for lang, _ in blocks(doc.read_text())):
        pytest.skip("no runnable block")
    for folder in ("runs", "leaderboards"):  # written by the blocks: a copy
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    for folder in ("examples", "model_zoo", "benchmarks"):  # only read
        (tmp_path / folder).symlink_to(REPO_ROOT / folder)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.docs_runner", str(doc)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{doc.name}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"


def test_the_methods_threat_table_is_the_protocol_in_config():
    from robbench.config import THREAT_DEFAULTS

    text = (REPO_ROOT / "docs" / "methods.md").read_text()
    shown = {"8/255": 8 / 255}
    for row in re.findall(r"^\| (`[^|]+) \| [^|]+ \| ([^|]+) \| ([^|]+) \|", text, flags=re.M):
        linf, l2 = (shown.get(v.strip(), None) or float(v) for v in row[1:])
        for dataset in re.findall(r"`([^`]+)`", row[0]):
            assert (THREAT_DEFAULTS[dataset].linf_eps, THREAT_DEFAULTS[dataset].l2_eps) == (linf, l2)
            shown.setdefault(dataset, 0)
    assert set(THREAT_DEFAULTS) <= set(shown), "a dataset missing from methods.md's table"


def test_the_presets_in_attacks_md_are_the_ones_in_config():
    from robbench.config import STANDARD_ATTACKS

    text = re.sub(r"\s+", " ", (REPO_ROOT / "docs" / "attacks.md").read_text())
    for preset, members in STANDARD_ATTACKS.items():
        listed = ", ".join(f"`{m}`" for m in members[:-1]) + f", `{members[-1]}`"
        assert f"`{preset}`{' (L∞)' if preset == 'standard' else ''} is {listed}" in text, preset
        table = text.split(f"`{preset}`", 1)[1]
        for member in members:
            assert f"`{member}`" in table, member
