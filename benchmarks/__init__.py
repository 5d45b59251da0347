"""Measurements too long for the test suite."""

from __future__ import annotations

from collections.abc import Callable

from robbench.errors import DataNotFound, RobbenchError


def run_main(main: Callable[[], None]) -> None:
    """Runs a benchmark's `main` as `python -m benchmarks.<name>` does: bad input that
    robbench reports (a dataset not found, an unknown model id) ends as one `error:` line
    and exit status 1, as under the `robbench` command, not as a traceback. A missing
    dataset's message leaves out its --download suggestion: no benchmark has that flag."""
    try:
        main()
    except DataNotFound as exc:
        raise SystemExit(f"error: {exc.without_download}") from None
    except RobbenchError as exc:
        raise SystemExit(f"error: {exc}") from None
