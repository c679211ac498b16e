"""Import one submodule of a package without running the package's __init__.

A package on xdna-ep's run path has an __init__ that imports far more than we
use, and through it torch (seconds on every process start):
`onnxruntime.tools`: its __init__ imports `pytorch_export_helpers`, hence
torch, whenever torch is installed; capability needs only
`symbolic_shape_infer`.

`submodule(package, name)` puts a bare package module under the real name into
sys.modules (real __path__, __init__ not run) and imports the submodule into
it. The bare module answers any attribute it lacks by running the real __init__
into itself then (module `__getattr__`, PEP 562), so code that later does
`from onnxruntime.tools import pytorch_export_helpers` still gets the full
package and simply pays the import at that moment. importlib's LazyLoader does
not fit: importing a submodule reads the parent's __path__, which makes
LazyLoader execute the whole package first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

_LOCK = threading.RLock()


def _bare_package(package: str, install_hint: str) -> types.ModuleType:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"xdna-ep needs the PyPI package {install_hint} "
                          f"(pip install {install_hint})")
    module = importlib.util.module_from_spec(spec)
    state = {"complete": False}

    def complete(name: str) -> Any:
        # PEP 562 hook: called only for attributes the bare module lacks
        if name.startswith("__") or state["complete"]:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        state["complete"] = True
        assert spec.loader is not None
        with _LOCK:
            spec.loader.exec_module(module)  # the real __init__, into the same module
        return getattr(module, name)

    module.__getattr__ = complete  # type: ignore[attr-defined]
    return module


def submodule(package: str, name: str, install_hint: str | None = None) -> types.ModuleType:
    """`package.name`, running `package`'s __init__ only if it was imported already."""
    with _LOCK:
        if package not in sys.modules:
            parent, _, _ = package.rpartition(".")
            if parent:
                importlib.import_module(parent)
            sys.modules[package] = _bare_package(package, install_hint or package)
        return importlib.import_module(f"{package}.{name}")
