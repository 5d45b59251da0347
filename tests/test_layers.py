"""Dependencies run one way: the import-linter contracts in pyproject.toml hold, the
package has no import cycle, and the store loads without the attack libraries."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def test_lint_imports_keeps_every_contract():
    if shutil.which("lint-imports") is None:
        pytest.skip("import-linter is not installed (pip install -e .[test])")
    proc = subprocess.run(["lint-imports", "--no-cache"], cwd=REPO_ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout and "layers" in proc.stdout


def test_robbench_has_no_import_cycle():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("robbench")
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if module == "robbench" or imported == "robbench":
                continue  # the package root only re-exports the API, lazily
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            assert chain is None, f"import cycle: {module} -> {' -> '.join(chain)}"


def test_importing_the_store_imports_no_attack_library():
    code = ("import sys, robbench.store.runs, robbench.store.records, robbench.store.table, "
            "robbench.store.verification; "
            "found = {'foolbox', 'pyautoattack', 'torchattacks'} & set(sys.modules); "
            "assert not found, found")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, env=ENV, timeout=120)
