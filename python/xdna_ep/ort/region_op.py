"""The region op: how ONNX Runtime calls a compiled region (docs/ARCHITECTURE.md,
key decision 2).

ONNX Runtime's Python wheels ship no C headers, so the region node runs as an
onnxruntime-extensions Python custom op. Three facts about that library shape
this module (read from its pyop/pyfunc.cc and _ocos.py):

1. Results: the C++ kernel calls one process-wide Python "invoker" with
   (op id, inputs, attrs) and expects (op id, shape0, data0, shape1, data1, ...).
   It casts each data item to a numpy array and memcpy's it into the ORT output.
   The stock invoker (`_ocos._on_pyop_invocation`) passes `arr.flatten().tolist()`
   as data: one Python object per element (tests/test_ort_region_op.py checks
   our path is the one in use). Our invoker
   passes the C-contiguous array itself (one memcpy, no Python objects per
   element). Calls of other libraries' Python ops are handed to the
   stock invoker unchanged.
2. Arity: an op type has a fixed number of inputs and outputs. One region op
   type per (inputs, outputs) count serves every region (`XDNARegion_<i>_<o>`);
   inputs are declared type-agnostic, outputs float32.
3. Registration: op definitions of one domain live in a C++ std::vector whose
   elements ORT sessions point at. Adding a definition later can reallocate that
   vector and crash every session created before (reproduced: segfault on the
   next run). So all region op types are registered in ONE batch, before the
   first session, and never again. And registering the library twice on the same
   SessionOptions also crashes; `register_library` remembers it in the options.

4. Errors: the library's kernel cannot report a failure. Any exception that
   crosses its Compute() (a Python exception, or a cast error from a malformed
   result) terminates the process (reproduced: abort). So our invoker never
   raises: it logs the error, records it in the session's table with the
   calling thread, hands back empty float32 outputs, and the xdna_ep session
   raises the recorded error from run() (ORT may fail first on the empty
   tensors; the session then replaces that message by the real cause). A
   region node whose session is gone can only log.

The op finds its program through its node attributes: `session` (a token of the
session that owns a ProgramTable) and `program` (a name in that table).
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lean_import import ortx_ocos as ocos
from ..rewrite.graph import DOMAIN, MAX_INPUTS, MAX_OUTPUTS, op_type_for
from .provider import LoadedRegion

log = logging.getLogger("xdna_ep")

# session config key marking SessionOptions that already have the library
_REGISTERED_KEY = "xdna_ep.custom_ops_library"
_ATTRS = ("program", "digest", "session", "region")


@dataclass
class OpStats:
    """Counters that make the result path observable (tests check the fast path
    is the one in use: every region call must come through `fast_calls`)."""

    body_calls: int = 0  # region bodies executed, through any invoker
    fast_calls: int = 0  # calls answered by our array-returning invoker
    delegated_calls: int = 0  # other libraries' ops passed to the stock invoker


STATS = OpStats()
_LOCK = threading.Lock()
_TABLES: dict[str, weakref.ReferenceType[ProgramTable]] = {}
_OUR_IDS: dict[int, int] = {}  # op id -> number of outputs
_OPDEFS: list[Any] = []
_STOCK_INVOKER: Any = None


class ProgramTable:
    """The loaded programs of one session, looked up by the region op.

    Owned by the session (strong reference); the op holds only a weak one, so a
    closed session's programs are released and a stale node fails clearly.
    """

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.entries: dict[str, LoadedRegion] = {}
        self.errors: list[tuple[int, str]] = []  # (thread, message) not yet reported
        self.active: dict[int, int] = {}  # threads inside the owner's run()
        with _LOCK:
            _TABLES[self.token] = weakref.ref(self, _forget(self.token))

    def add(self, ref: str, entry: LoadedRegion) -> None:
        self.entries[ref] = entry

    def begin_run(self) -> None:
        with _LOCK:
            self.active[threading.get_ident()] = self.active.get(threading.get_ident(), 0) + 1

    def end_run(self) -> str | None:
        """The first region failure of this thread's run (or of a thread ORT ran
        nodes on by itself), forgotten once returned."""
        me = threading.get_ident()
        with _LOCK:
            left = self.active.get(me, 1) - 1
            if left:
                self.active[me] = left
            else:
                self.active.pop(me, None)
            found: str | None = None
            keep: list[tuple[int, str]] = []
            for ident, msg in self.errors:
                if found is None and (ident == me or ident not in self.active):
                    found = msg
                elif ident != me:
                    keep.append((ident, msg))
            self.errors = keep
        return found


    def pop_thread_error(self) -> str | None:
        """The first failure recorded on the calling thread (run_async callbacks run
        on the ORT thread that executed the graph)."""
        me = threading.get_ident()
        with _LOCK:
            mine = [m for i, m in self.errors if i == me]
            self.errors = [(i, m) for i, m in self.errors if i != me]
        return mine[0] if mine else None


def _forget(token: str):
    def cb(_ref: object) -> None:
        with _LOCK:
            _TABLES.pop(token, None)
    return cb


def _lookup(session: str, program: str) -> LoadedRegion:
    ref = _TABLES.get(session)
    table = ref() if ref is not None else None
    if table is None:
        raise RuntimeError(
            f"XDNA region op: no live xdna_ep session {session!r} owns program {program!r}. "
            "Region nodes run only inside the session that compiled or loaded them "
            "(use xdna_ep.InferenceSession or providers=['XDNAExecutionProvider']).")
    try:
        return table.entries[program]
    except KeyError:
        raise RuntimeError(f"XDNA region op: program {program!r} is not loaded in session "
                           f"{session!r} (loaded: {sorted(table.entries)[:5]})") from None


def run_region(inputs: list[np.ndarray], attrs: Mapping[str, str]) -> tuple[np.ndarray, ...]:
    """Execute one region call: inputs in node order -> outputs in node order."""
    STATS.body_calls += 1
    entry = _lookup(attrs.get("session", ""), attrs.get("program", ""))
    if len(inputs) != len(entry.inputs):
        raise RuntimeError(f"XDNA region {entry.region}: got {len(inputs)} inputs, "
                           f"the program takes {len(entry.inputs)}")
    result = entry.loaded.run(dict(zip(entry.inputs, inputs, strict=True)))
    try:
        return tuple(np.ascontiguousarray(result[name], dtype=np.float32)
                     for name in entry.outputs)
    except KeyError as exc:
        raise RuntimeError(f"XDNA region {entry.region}: device returned no output "
                           f"{exc.args[0]!r}") from None


def _safe_run(feed: list[np.ndarray], attrs: Mapping[str, str], n_out: int
              ) -> tuple[np.ndarray, ...]:
    """run_region that never raises (see 4. in the module docstring)."""
    try:
        return run_region(feed, attrs)
    except BaseException as exc:  # noqa: BLE001 - must not cross into C++
        _record_error(attrs.get("session", ""), f"{type(exc).__name__}: {exc}")
        return tuple(np.zeros((0,), np.float32) for _ in range(n_out))


def _make_body(n_out: int):
    """The op body the stock invoker would call (it also must never raise)."""
    def body(*inputs: np.ndarray, **attrs: str) -> tuple[np.ndarray, ...]:
        return _safe_run(list(inputs), attrs, n_out)
    return body


def _invoker(k_id: int, feed: list[np.ndarray], attributes: dict[str, str]) -> tuple:
    """The process-wide Python op invoker: arrays for our ops, stock for others."""
    if k_id not in _OUR_IDS:
        STATS.delegated_calls += 1
        return _STOCK_INVOKER(k_id, feed, attributes)
    STATS.fast_calls += 1
    outs = _safe_run(list(feed), attributes, _OUR_IDS[k_id])
    res: list[Any] = [k_id]
    for arr in outs:
        res.append(arr.shape)
        res.append(arr)  # C-contiguous float32: the C++ side memcpy's it as is
    return tuple(res)


def _record_error(token: str, msg: str) -> None:
    log.error("XDNA region call failed: %s", msg)
    ref = _TABLES.get(token)
    table = ref() if ref is not None else None
    if table is not None:
        with _LOCK:
            table.errors.append((threading.get_ident(), msg))


def ensure_registered() -> None:
    """Register every region op type once per process and install the invoker."""
    global _STOCK_INVOKER
    _ocos = ocos()
    PyCustomOpDef = _ocos.PyCustomOpDef

    with _LOCK:
        if not _OPDEFS:
            attrs = {a: PyCustomOpDef.dt_string for a in _ATTRS}
            for n_in in range(1, MAX_INPUTS + 1):
                for n_out in range(1, MAX_OUTPUTS + 1):
                    opdef = _ocos.Opdef.create(
                        _make_body(n_out), op_type=f"{DOMAIN}::{op_type_for(n_in, n_out)}",
                        inputs=[PyCustomOpDef.undefined] * n_in,
                        outputs=[PyCustomOpDef.dt_float] * n_out, attrs=attrs)
                    _OPDEFS.append(opdef)
                    _OUR_IDS[opdef._nativedef.obj_id] = n_out
            _STOCK_INVOKER = _ocos._on_pyop_invocation
        # (re)install every time: another library may have installed its own
        PyCustomOpDef.install_hooker(_invoker)


def install_stock_invoker() -> None:
    """Put the library's list-returning invoker back (tests and the benchmark use
    it to show the difference; sessions re-install ours when created)."""
    _ocos = ocos()
    _ocos.PyCustomOpDef.install_hooker(_ocos._on_pyop_invocation)


def register_library(sess_options: Any) -> None:
    """Make the region ops known to `sess_options` (once per options object)."""
    ensure_registered()
    try:
        if sess_options.get_session_config_entry(_REGISTERED_KEY) == "1":
            return
    except RuntimeError:  # ORT raises for a key that was never set
        pass
    sess_options.register_custom_ops_library(ocos().get_library_path())
    sess_options.add_session_config_entry(_REGISTERED_KEY, "1")
