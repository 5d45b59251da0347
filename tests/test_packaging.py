"""The package installs what the README promises, on this machine and elsewhere."""

import tomllib

from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def requirements() -> dict[str, Requirement]:
    return {Requirement(r).name: Requirement(r) for r in PYPROJECT["project"]["dependencies"]}


def test_declares_every_dependency_of_the_field():
    wanted = {"torch", "torchvision", "foolbox", "pyautoattack", "pandas", "tabulate", "click",
              "scikit-learn", "safetensors", "matplotlib", "tqdm"}
    assert wanted <= set(requirements())


def test_torch_pins_admit_the_locally_stored_pair_and_not_a_newer_download():
    reqs = requirements()
    assert reqs["torch"].specifier.contains("2.14.1")
    assert reqs["torchvision"].specifier.contains("0.29.1")
    assert not reqs["torch"].specifier.contains("2.15.0")


def test_console_script_points_at_the_cli():
    assert PYPROJECT["project"]["scripts"]["robbench"] == "robbench.cli:main"


def test_requires_python_3_11():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO_ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("pip install")][:2]
    assert "robbench eval" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (REPO_ROOT / ".ci" / "run").read_text()
