"""The README's Python examples are tests: every ```python block of the README runs,
in order, from an empty directory (their runs_dir and leaderboard are relative)."""

import re
import runpy

from tests.conftest import REPO_ROOT


def readme_python_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_python_examples_run(workdir, monkeypatch):
    blocks = readme_python_blocks()
    assert blocks, "the README has no ```python example"
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # `examples/` is importable as in a checkout
    script = workdir / "readme_examples.py"
    script.write_text("\n".join(blocks).replace("examples/third_party_model.py",
                                                str(REPO_ROOT / "examples" / "third_party_model.py")))
    runpy.run_path(str(script), run_name="__main__")
    assert (workdir / "my-runs").is_dir()
