"""The native plugin library (libxdna_ep_provider.so): where it is, and its
registration with ONNX Runtime.

The library implements ONNX Runtime's plugin execution-provider C API
(provider/ in the repository). After ``register()``, ``ort.get_ep_devices()``
lists XDNAExecutionProvider on the host CPU (metadata backend=emulator) and, where
an amdxdna NPU and the NPU backend library are usable, on the NPU (metadata
backend=npu); a session selects them with ``SessionOptions.add_provider_for_devices``
or a selection policy (PREFER_NPU picks the NPU entry); it runs EPContext models
written by ``xdna-ep compile`` (docs/EPCONTEXT.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

EP_NAME = "XDNAExecutionProvider"
LIBRARY_NAME = "libxdna_ep_provider.so"

_lock = threading.Lock()


def library_path() -> Path:
    """Where libxdna_ep_provider.so belongs: beside this module (it may be missing)."""
    return Path(__file__).resolve().parent / LIBRARY_NAME


def get_library_path() -> str:
    """Absolute path of libxdna_ep_provider.so, installed beside this module."""
    path = library_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is not built: install the package with `pip install .` (or "
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


def get_plugin_ep_devices(backend: str | None = None) -> list:
    """ONNX Runtime's OrtEpDevice objects of XDNAExecutionProvider (registers first);
    with `backend` ("npu" or "emulator"), only the entries whose ep_metadata says so."""
    import onnxruntime as ort

    register()
    return [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME
            and (backend is None or d.ep_metadata.get("backend") == backend)]


@dataclass(frozen=True)
class PluginDevice:
    """One of the library's OrtEpDevices, in plain values (for `xdna-ep devices`)."""

    backend: str                 # ep_metadata "backend": "npu" or "emulator"
    device_type: str             # ONNX Runtime's hardware device type: "NPU" or "CPU"
    vendor_id: int
    device_id: int
    ep_metadata: dict[str, str] = field(default_factory=dict)
    hw_metadata: dict[str, str] = field(default_factory=dict)


def plugin_devices() -> list[PluginDevice]:
    """The library's entries in ``ort.get_ep_devices()`` (registers first)."""
    return [PluginDevice(d.ep_metadata.get("backend", "?"), str(d.device.type).rsplit(".", 1)[-1],
                         int(d.device.vendor_id), int(d.device.device_id), dict(d.ep_metadata),
                         dict(d.device.metadata))
            for d in get_plugin_ep_devices()]


@dataclass(frozen=True)
class NpuProbe:
    """The library's own NPU check (provider/npu_probe.h), as its device list saw it."""

    listed: bool     # whether the library lists an NPU entry
    detail: str      # the NPU's device node when listed, else why not


def npu_probe() -> NpuProbe:
    """Asks the library why it does or does not list an NPU entry (ONNX Runtime only
    logs that, at info level). Reads the same files and environment as registration."""
    import ctypes

    lib = ctypes.CDLL(get_library_path())
    lib.XdnaEpNpuProbe.restype = ctypes.c_int
    lib.XdnaEpNpuProbe.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    buf = ctypes.create_string_buffer(2048)
    rc = lib.XdnaEpNpuProbe(buf, len(buf))
    if rc < 0:
        raise RuntimeError(f"{EP_NAME}: the NPU probe failed: {buf.value.decode()}")
    return NpuProbe(rc == 1, buf.value.decode())


def npu_backend_opens() -> tuple[bool, str]:
    """(whether the library's native NPU backend loads and opens a device, why not):
    what a plugin session with device=npu|auto finds at its first region. The
    device is closed again at once."""
    import ctypes

    lib = ctypes.CDLL(get_library_path())
    lib.XdnaEpNpuBackendOpens.restype = ctypes.c_int
    lib.XdnaEpNpuBackendOpens.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    buf = ctypes.create_string_buffer(2048)
    rc = lib.XdnaEpNpuBackendOpens(buf, len(buf))
    return rc == 1, buf.value.decode(errors="replace")


class DirectProgram:
    """One EPContext payload run by the plugin library's C++ runner without ONNX
    Runtime (the library's XdnaEpProgram* C entry points, through ctypes).

    The baseline of `xdna-ep bench session`'s region-call overhead: the same
    program, same library, no ORT session around it. float32 inputs and outputs.
    """

    def __init__(self, payload: bytes) -> None:
        import ctypes

        lib = ctypes.CDLL(get_library_path())
        lib.XdnaEpProgramLoad.restype = ctypes.c_void_p
        lib.XdnaEpProgramLoad.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                          ctypes.c_size_t]
        lib.XdnaEpProgramRunF32.restype = ctypes.c_int
        lib.XdnaEpProgramRunF32.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t,
            ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_double), ctypes.c_char_p,
            ctypes.c_size_t]
        lib.XdnaEpProgramFree.argtypes = [ctypes.c_void_p]
        self._ct, self._lib = ctypes, lib
        self._err = ctypes.create_string_buffer(512)
        self._seconds = ctypes.c_double(0.0)
        # the last run's program time measured inside the library (no call overhead)
        self.last_run_s = 0.0
        self._payload = payload
        handle = lib.XdnaEpProgramLoad(payload, len(payload), self._err, len(self._err))
        if not handle:
            raise ValueError(f"payload rejected: {self._err.value.decode()}")
        self._handle = handle

    def run(self, inputs: list, out_shape: tuple[int, ...], out_index: int = 0):
        """Output `out_index` (of shape `out_shape`) for float32 `inputs` in program order."""
        import numpy as np

        ct = self._ct
        arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
        shapes = [np.asarray(a.shape, dtype=np.int64) for a in arrays]
        n = len(arrays)
        data = (ct.c_void_p * n)(*[a.ctypes.data for a in arrays])
        shp = (ct.c_void_p * n)(*[s.ctypes.data for s in shapes])
        ranks = (ct.c_size_t * n)(*[a.ndim for a in arrays])
        out = np.empty(out_shape, np.float32)
        rc = self._lib.XdnaEpProgramRunF32(self._handle, n, data, shp, ranks, out_index,
                                           out.ctypes.data, out.size, ct.byref(self._seconds),
                                           self._err, len(self._err))
        if rc != 0:
            raise RuntimeError(f"{EP_NAME} program failed: {self._err.value.decode()}")
        self.last_run_s = self._seconds.value
        return out

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.XdnaEpProgramFree(handle)
            self._handle = None
