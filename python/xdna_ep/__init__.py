"""xdna-ep: an ONNX Runtime execution provider for AMD XDNA NPUs.

The pipeline (one sub-package per stage):

    capability -> regions -> quantize -> compile -> rewrite -> report
    runtime/ (xrt device through pyxrt, host emulator device) beside it.

Public entry points are imported lazily so that ``import xdna_ep`` stays cheap
and never pulls in torch or the Whisper stack.
"""

from __future__ import annotations

__version__ = "0.1.0"

EP_NAME = "XDNAExecutionProvider"


def get_ep_name() -> str:
    """The provider name users put in ONNX Runtime's providers list."""
    return EP_NAME


def __getattr__(name: str):  # lazy public API (PEP 562)
    if name in {"register", "get_library_path", "get_plugin_ep_devices"}:
        from . import plugin

        return getattr(plugin, name)
    if name in {"install", "uninstall", "InferenceSession", "get_ep_devices"}:
        from . import ort

        return getattr(ort, name)
    raise AttributeError(f"module 'xdna_ep' has no attribute {name!r}")
