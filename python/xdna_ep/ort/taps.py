"""Region taps: every region call of a plugin session, seen from Python.

xdna-ep's own measuring tools need each region's inputs and outputs while the
region runs in the plugin library (libxdna_ep_provider.so): `bench accuracy`
records every region's outputs, the self-test replays every call on a second
device. The library exports XdnaEpTapRegister/XdnaEpTapUnregister (provider/tap.h);
a session whose provider options carry `tap=<token>` (internal,
docs/PROVIDER_OPTIONS.md) calls the registered callback after each region compute.

ctypes.CDLL on the path ONNX Runtime loaded returns the same library handle, so
the registry is the one the sessions use. ORT's Python run releases the GIL; a
CFUNCTYPE callback takes it itself. An exception in the Python callback must not
cross into C++: it is recorded here, the callback returns non-zero, the library
fails that run, and the session raises XDNARegionError with the recorded error.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import EP_NAME

# ONNXTensorElementDataType -> numpy dtype (the element types a program has)
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64}


class _Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("elem_type", ctypes.c_int32),
                ("rank", ctypes.c_size_t), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("data", ctypes.c_void_p)]


_TAP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                           ctypes.POINTER(_Tensor), ctypes.c_size_t, ctypes.POINTER(_Tensor))


@dataclass(frozen=True)
class RegionCall:
    """One region compute: its EPContext node name and copies of its inputs and
    outputs by program tensor name (program order)."""

    region: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def _library() -> ctypes.CDLL:
    from ..plugin import get_library_path

    lib = ctypes.CDLL(get_library_path())
    lib.XdnaEpTapRegister.restype = ctypes.c_uint64
    lib.XdnaEpTapRegister.argtypes = [_TAP_FN, ctypes.c_void_p]
    lib.XdnaEpTapUnregister.restype = ctypes.c_int
    lib.XdnaEpTapUnregister.argtypes = [ctypes.c_uint64]
    lib.XdnaEpNpuFallbacks.restype = ctypes.c_uint64
    lib.XdnaEpNpuFallbacks.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib


def _arrays(n: int, tensors: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for i in range(n):
        t = tensors[i]
        dtype = np.dtype(_DTYPES[t.elem_type])
        shape = tuple(int(t.shape[k]) for k in range(t.rank))
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0 or not t.data:
            arr = np.zeros(shape, dtype)
        else:
            raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(t.data)
            arr = np.frombuffer(raw, dtype).reshape(shape).copy()
        out[t.name.decode()] = arr
    return out


class RegionTap:
    """A registered tap calling `on_call` with every region call of the sessions
    whose options carry its token; close() unregisters it (also on deletion)."""

    def __init__(self, on_call: Callable[[RegionCall], None]) -> None:
        self._on_call = on_call
        self._lib = _library()
        self._errors = threading.local()
        self._first_error: BaseException | None = None
        self._fn = _TAP_FN(self._called)  # kept alive as long as the tap
        token = int(self._lib.XdnaEpTapRegister(self._fn, None))
        if token == 0:
            raise RuntimeError(f"{EP_NAME}: XdnaEpTapRegister refused the tap")
        self.token = token

    def _called(self, _user: int, region: bytes, n_in: int, ins: Any, n_out: int,
                outs: Any) -> int:
        try:
            self._on_call(RegionCall(region.decode(), _arrays(n_in, ins), _arrays(n_out, outs)))
        except BaseException as exc:  # noqa: BLE001 - must not cross into C++
            self._errors.error = exc
            if self._first_error is None:
                self._first_error = exc
            return 1
        return 0

    def take_error(self) -> BaseException | None:
        """The exception the callback raised in this thread's last failed run, once."""
        exc = getattr(self._errors, "error", None)
        self._errors.error = None
        return exc

    def close(self) -> None:
        if getattr(self, "token", 0):
            self._lib.XdnaEpTapUnregister(self.token)
            self.token = 0

    def __del__(self) -> None:
        self.close()


def npu_fallbacks() -> tuple[int, str]:
    """(regions of this process that fell back from the NPU to the emulator so far,
    the latest reason) from the plugin library (0, "" before any)."""
    lib = _library()
    buf = ctypes.create_string_buffer(2048)
    n = int(lib.XdnaEpNpuFallbacks(buf, len(buf)))
    return n, buf.value.decode(errors="replace")
