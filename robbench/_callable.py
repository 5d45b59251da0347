"""`robbench.evaluate(...)` and `robbench.attacks()` are API functions, but
`robbench.evaluate` and `robbench.attacks` are also a module and a package, and
importing a submodule binds its name on the parent package. So rather than fight over
the name, those two modules are made callable: calling one calls the API function
(robbench.api), and their attributes stay reachable as before."""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str, api_function: str) -> None:
    """Gives sys.modules[module_name] a __call__ that forwards to robbench.api.<api_function>."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            from robbench import api

            return getattr(api, api_function)(*args, **kwargs)

    CallableModule.__call__.__doc__ = f"robbench.api.{api_function}"
    sys.modules[module_name].__class__ = CallableModule
