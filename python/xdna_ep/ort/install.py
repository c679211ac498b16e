"""install() / uninstall(): make onnxruntime accept "XDNAExecutionProvider".

ORT's Python wheels cannot load a third-party EP library without C headers to
build one (docs/ARCHITECTURE.md, "ONNX Runtime integration"), so install() swaps
two attributes of the onnxruntime module: `InferenceSession` becomes xdna_ep's
subclass (identical behaviour unless the providers list names XDNA) and `get_available_providers` also lists
XDNA. Nothing else changes; uninstall() puts the originals back. Code that
bound `onnxruntime.InferenceSession` to a name *before* install() keeps the
original class. Optimum does exactly that (`from onnxruntime import
InferenceSession` in optimum.onnxruntime.*), so install() also rebinds that name
in already-imported `optimum.` modules that hold the original class, and
uninstall() puts those back too. Modules imported after install() get ours.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import Any

import onnxruntime as ort

from .. import EP_NAME
from .session import _ORT_SESSION, InferenceSession

_LOCK = threading.Lock()
_SAVED: dict[str, Any] = {}
_REBOUND: list[ModuleType] = []
# packages known to bind onnxruntime.InferenceSession at import time
_REBIND_PREFIXES = ("optimum.",)


def _available_providers() -> list[str]:
    names = list(_SAVED["get_available_providers"]())
    return [EP_NAME, *[n for n in names if n != EP_NAME]]


def is_installed() -> bool:
    return ort.InferenceSession is InferenceSession


def install() -> None:
    """Register XDNAExecutionProvider with onnxruntime's Python API (idempotent)."""
    with _LOCK:
        if _SAVED:
            return
        if ort.InferenceSession is not _ORT_SESSION:
            raise RuntimeError("onnxruntime.InferenceSession was replaced by another package; "
                               "xdna_ep.install() will not stack on top of it (use "
                               "xdna_ep.InferenceSession directly)")
        _SAVED["InferenceSession"] = ort.InferenceSession
        _SAVED["get_available_providers"] = ort.get_available_providers
        ort.InferenceSession = InferenceSession
        ort.get_available_providers = _available_providers
        for name, mod in list(sys.modules.items()):
            if (name.startswith(_REBIND_PREFIXES) and mod is not None
                    and getattr(mod, "InferenceSession", None) is _ORT_SESSION):
                mod.InferenceSession = InferenceSession
                _REBOUND.append(mod)


def uninstall() -> None:
    """Restore onnxruntime's own InferenceSession and provider list."""
    with _LOCK:
        if not _SAVED:
            return
        ort.InferenceSession = _SAVED.pop("InferenceSession")
        ort.get_available_providers = _SAVED.pop("get_available_providers")
        for mod in _REBOUND:
            if getattr(mod, "InferenceSession", None) is InferenceSession:
                mod.InferenceSession = _ORT_SESSION
        _REBOUND.clear()
