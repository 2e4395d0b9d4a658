"""A package face that imports a name's module on first use (PEP 562's module
`__getattr__`), so that importing a package to read one name loads only what that name
needs: `import study` or `study.record.schema` loads no Ray Tune and no MLflow."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def face(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """The `__getattr__` of `package`, whose public `names` live in its modules
    ({name: module}); a submodule itself is imported the usual way."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
