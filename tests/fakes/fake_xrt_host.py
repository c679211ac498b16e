"""The Python side of the FAKE XRT C++ library (tests/fakes/fake_xrt). NOT XRT.

libfake_xrt.so calls these functions through the test process's interpreter:
`call` for every API call (recorded in `HARDWARE.calls`; a configured fault
raises, and the C++ call then throws as XRT would), `load_xclbin` to read a FAKE
xclbin, `group_id`, and `launch` to execute a started run on the FAKE hardware
(fake_hardware.FakeHardware, the same code the FAKE pyxrt runs).

Tests call `reset(Faults(...))` to get a fresh hardware with a fault plan.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakes.fake_hardware import (
    FAKE_XCLBIN_MAGIC,
    GROUP_BASE,
    FakeHardware,
    FakeXrtError,
    Faults,
    _BoFlags,
)

# xrt::bo::flags values of XRT's xrt_mem.h (fake_xrt/include/xrt/xrt_bo.h) -> FAKE names
_CXX_FLAGS = {0: _BoFlags.normal, 1 << 24: _BoFlags.cacheable, 1 << 28: _BoFlags.device_only,
              1 << 29: _BoFlags.host_only}

HARDWARE = FakeHardware()


def reset(faults: Faults | None = None) -> FakeHardware:
    """A fresh FAKE hardware (empty call log, no uploads) with this fault plan."""
    global HARDWARE
    HARDWARE = FakeHardware(faults)
    return HARDWARE


def call(name: str, details: dict[str, Any]) -> None:
    """Records one API call; raises the fault configured for it, if any."""
    hw = HARDWARE
    if name == "bo":
        details = {**details, "flags": _CXX_FLAGS.get(details["flags"], details["flags"])}
        details["flags"] = getattr(details["flags"], "name", details["flags"])
    hw.record(name, **details)
    f = hw.faults
    if name == "device" and f.open_error is not None:
        raise FakeXrtError(f"FAKE: {f.open_error}")
    if name == "register_xclbin" and f.register_error is not None:
        raise FakeXrtError(f"FAKE: {f.register_error}")
    if name == "bo":
        fault = hw.alloc_fault(details["size"])
        if fault is not None:
            raise FakeXrtError(fault)


def load_xclbin(path: str) -> tuple[str, str, list[str]]:
    """(uuid, design, kernel names) of a FAKE xclbin (fake_hardware.write_fake_xclbin)."""
    HARDWARE.record("xclbin", path=path)
    try:
        raw = Path(path).read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise FakeXrtError(f"FAKE: cannot load xclbin {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("magic") != FAKE_XCLBIN_MAGIC:
        raise FakeXrtError(f"FAKE: {path} is not a fake xclbin")
    return hashlib.sha256(raw).hexdigest()[:32], str(doc["design"]), list(doc["kernels"])


def group_id(arg: int) -> int:
    return GROUP_BASE + arg


@dataclass
class _Bo:
    """A BO as the FAKE hardware reads it (the attributes fake_pyxrt's bo has)."""

    id: int
    group: int
    flags_: Any
    size_: int
    generation: int
    dev: np.ndarray


@dataclass
class _Xclbin:
    design: str
    path: str


@dataclass
class _Ctx:
    xclbin: _Xclbin


@dataclass
class _Kernel:
    ctx: _Ctx


def launch(xclbin: str, design: str, args: list[Any]) -> int:
    """Executes one started run; returns the ERT state (an int)."""
    hw = HARDWARE
    values: list[Any] = []
    for a in args:
        if a is None or "value" in a:
            values.append(None if a is None else int(a["value"]))
        else:
            values.append(_Bo(a["id"], a["group"], _CXX_FLAGS.get(a["flags"]),
                              a["size"], a["generation"],
                              np.frombuffer(a["dev"], dtype=np.uint8)))
    hw.record("kernel.call", xclbin=xclbin,
              args=[v.id if isinstance(v, _Bo) else v for v in values])
    return int(hw.launch(_Kernel(_Ctx(_Xclbin(design, xclbin))), tuple(values)))
