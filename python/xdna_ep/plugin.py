"""The native plugin library (libxdna_ep_provider.so): where it is, and its
registration with ONNX Runtime.

The library implements ONNX Runtime's plugin execution-provider C API
(provider/ in the repository). After ``register()``, ``ort.get_ep_devices()``
lists XDNAExecutionProvider on the host CPU (metadata backend=emulator) and a
session selects it with ``SessionOptions.add_provider_for_devices``; it runs
EPContext models written by ``xdna-ep compile`` (docs/EPCONTEXT.md).
"""

from __future__ import annotations

import threading
from pathlib import Path

EP_NAME = "XDNAExecutionProvider"
LIBRARY_NAME = "libxdna_ep_provider.so"

_lock = threading.Lock()


def get_library_path() -> str:
    """Absolute path of libxdna_ep_provider.so, installed beside this module."""
    path = Path(__file__).resolve().parent / LIBRARY_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{LIBRARY_NAME} is not built: install the package with `pip install .` (or "
            f"`pip install -e .`); CMake builds it beside xdna_ep._emulator (it needs ONNX "
            f"Runtime's headers, fetched with npm at build time, or ORT_INCLUDE_DIR)")
    return str(path)


def is_registered() -> bool:
    """Whether ONNX Runtime already lists an XDNAExecutionProvider device."""
    import onnxruntime as ort

    return any(d.ep_name == EP_NAME for d in ort.get_ep_devices())


def register() -> str:
    """Registers the plugin library with ONNX Runtime once per process
    (idempotent: a second call, or a library someone else registered under
    our EP name, is left as it is). Returns the library path."""
    import onnxruntime as ort

    path = get_library_path()
    with _lock:
        if not is_registered():
            ort.register_execution_provider_library(EP_NAME, path)
    return path


def get_plugin_ep_devices() -> list:
    """ONNX Runtime's OrtEpDevice objects of XDNAExecutionProvider (registers first)."""
    import onnxruntime as ort

    register()
    return [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
