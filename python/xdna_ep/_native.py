"""Loads the native emulator module with an error that says how to fix a miss."""

from __future__ import annotations

try:
    from . import _emulator as emulator  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise ImportError(
        "xdna_ep._emulator (the host build of the NPU kernels) is not built. "
        "Install the package with `pip install .` (or `pip install -e .`), which "
        "builds it with CMake and a C++17 compiler."
    ) from exc

__all__ = ["emulator"]
