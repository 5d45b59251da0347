"""robbench: robustness evaluation for clustering- and prototype-based defenses.

The Python API, named by verbs, is imported from robbench._api on first use, so
`import robbench` does not import torch: `robbench.evaluate`, `robbench.load_model`,
`robbench.list_models`, `robbench.list_attacks`, `robbench.EvalResult`.

Packages, each layer importing only the ones below it (pyproject.toml [tool.importlinter]):
cli, _api > leaderboard > analysis > evaluation > attacks > zoo > datasets, defenses >
store > config, errors, registry, types."""

from typing import Any

from robbench.config import VERSION as __version__

_API = ("evaluate", "load_model", "list_models", "list_attacks", "EvalResult")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Lazy API names (PEP 562): the first use imports robbench._api (and torch)."""
    if name in _API:
        from robbench import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'robbench' has no attribute {name!r}")
