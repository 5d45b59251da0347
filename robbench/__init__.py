"""robbench: robustness evaluation for clustering- and prototype-based defenses.

The Python API (robbench.api) is imported on first use, so `import robbench` does
not import torch: `robbench.load_model`, `robbench.evaluate`, `robbench.models`,
`robbench.attacks`, `robbench.EvalResult`."""

from typing import Any

__version__ = "0.1.0"

_API = ("load_model", "evaluate", "models", "attacks", "EvalResult")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Lazy API names. `robbench.evaluate` and `robbench.attacks` are also a module and
    a package (importing them binds the name here); both are callable modules that
    forward to robbench.api (robbench/_callable.py), so either binding works."""
    if name in ("evaluate", "attacks"):
        import importlib

        return importlib.import_module(f"robbench.{name}")
    if name in _API:
        from robbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'robbench' has no attribute {name!r}")
