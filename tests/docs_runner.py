"""Runs every ```bash and ```python block of one markdown file, in document order, in
the current directory (tests/test_docs_examples.py gives it a scratch copy of the
committed store): python blocks share one namespace, as a reader pasting them into one
session would; `robbench ...` commands run in this process, everything else in bash.

A block runs as written except for the substitutions in `small()`: evaluations on a
few samples, training for one epoch, analyses with tiny attack budgets, and `robbench
check` against a row it measures first on those few samples. Each substitution keeps
the command's options and only shrinks its budget, so a renamed option or a wrong
model id still fails here. Usage: python -m tests.docs_runner FILE.md"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
N_SMALL = "4"
# commands that are not run, and why
NOT_RUN = {
    "python -m pytest tests": "the test suite itself; .ci/run runs it verbatim "
                              "(tests/test_packaging.py checks that)",
}
SHELL_OPERATORS = re.compile(r"[|<>;&$`*]")


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def commands(body: str) -> list[str]:
    """One string per shell command: continuation lines joined, comments kept for bash."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _set(argv: list[str], option: str, value: str) -> list[str]:
    if option in argv:
        argv = list(argv)
        argv[argv.index(option) + 1] = value
        return argv
    return [*argv, option, value]


def small(command: str) -> str | None:
    """The command as run here (None: not run; see NOT_RUN)."""
    if command.startswith("pip install"):
        # the package is installed where the tests run; run what follows the install
        if "&&" not in command:
            return None
        command = command.split("&&", 1)[1].strip()
    if command in NOT_RUN:
        return None
    if SHELL_OPERATORS.search(command.split("#")[0]):
        return command
    argv = shlex.split(command, comments=True)
    if argv[:2] == ["python", "-m"] and argv[2] == "benchmarks.fake_cifar":
        return shlex.join([*argv, "--source", "digits", "--n-train", "40", "--n-test", "4"])
    if not argv or argv[0] != "robbench" or len(argv) < 2:
        return shlex.join(argv)
    sub = argv[1]
    if sub == "eval":
        argv = _set(argv, "--n-examples", N_SMALL)
    elif sub == "leaderboard" and "--evaluate" in argv:
        argv = _set(argv, "--n-examples", N_SMALL)
    elif sub == "analyze":
        if "--synthetic" in argv:
            argv = _set(argv, "--epochs", "2")
        else:
            argv = _set(_set(_set(argv, "--n-examples", N_SMALL), "--steps", "2"), "--restarts", "1")
    elif sub == "train":
        assert "--output" in argv, f"a documented train without --output rewrites the zoo: {command}"
        if "--train-subset" in argv:
            argv = _set(argv, "--train-subset", "40")
            argv += ["--set", "batch_size=20"]
            model = argv[argv.index("--model") + 1]
            if model.startswith(("clustr", "magnet")):
                argv += ["--set", "clusters_per_batch=4", "--set", "samples_per_cluster=5"]
        else:
            argv = _set(argv, "--epochs", "1")
    elif sub == "check":
        # the row to re-measure: measured here on a few samples first
        model = argv[argv.index("--model") + 1]
        row = f"check-{model}.csv"
        # with the strong attacks the check adds, so the row is not one they refute
        prep = ["robbench", "eval", "--model", model, "--attacks", "pgd20,adaptive,aa",
                "--n-examples", N_SMALL,
                "--runs-dir", "check-runs", "--leaderboard", row]
        if "--checkpoint" in argv:
            prep += ["--checkpoint", argv[argv.index("--checkpoint") + 1]]
        return shlex.join(prep) + " && " + shlex.join(_set(argv, "--leaderboard", row))
    return shlex.join(argv)


def run_robbench(argv: list[str]) -> int:
    from robbench.cli import run

    return run(argv)


def run_command(command: str, env: dict[str, str]) -> None:
    for part in command.split(" && "):
        argv = None if SHELL_OPERATORS.search(part.split("#")[0]) else shlex.split(part, comments=True)
        print(f"$ {part}", flush=True)
        # Ray starts worker processes: keep it out of this one
        if argv and argv[0] == "robbench" and "--backend" not in argv:
            rc = run_robbench(argv[1:])
        else:
            rc = subprocess.run(["bash", "-c", part], env=env).returncode
        sys.stdout.flush()
        assert rc == 0, f"exit {rc}: {part}"


def main(path: str) -> None:
    doc = Path(path)
    skip_python = doc.name == "README.md" and doc.parent.name != "benchmarks"  # tests/test_readme_examples.py
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")) if p)}
    # `robbench` in bash blocks: this checkout's CLI, whatever is installed
    env["BASH_ENV"] = str(Path("robbench-function.sh").resolve())
    Path("robbench-function.sh").write_text('robbench() { python -m robbench "$@"; }\n')
    namespace: dict = {"__name__": "__main__"}
    for i, (lang, body) in enumerate(blocks(doc.read_text())):
        if lang == "python" and not skip_python:
            print(f"--- {doc.name} block {i}: python", flush=True)
            exec(compile(body, f"{doc.name}[block {i}]", "exec"), namespace)
        elif lang == "bash":
            print(f"--- {doc.name} block {i}: bash", flush=True)
            shown = []
            for command in commands(body):
                if small(command) is None:
                    print(f"(not run: {command})")
                else:
                    shown.append(small(command))
            if any(SHELL_OPERATORS.search(c.replace(" && ", " ").split("#")[0]) for c in shown):
                # shell state (variables, files piped) lives across the block: one script
                script = "set -euo pipefail\n" + "\n".join(shown) + "\n"
                print(script, flush=True)
                rc = subprocess.run(["bash", "-c", script], env=env).returncode
                assert rc == 0, f"exit {rc}: block {i}"
            else:
                for command in shown:
                    run_command(command, env)


if __name__ == "__main__":
    main(sys.argv[1])
