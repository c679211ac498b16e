"""FAKE pyxrt for tests. This is NOT XRT and touches no hardware.

It stands in for the `pyxrt` module so the xrt device's code path can be run
and checked on machines without an NPU. It

* records every call, in order, in `fake.calls` (name, details);
* models host vs device memory: `bo.write` changes host bytes, only
  `bo.sync(TO_DEVICE)` makes them visible to the "device", only
  `bo.sync(FROM_DEVICE)` brings device bytes back for `bo.read`;
* executes a launch on the FAKE hardware shared with the FAKE XRT C++ library
  (tests/fakes/fake_hardware.py: decodes the BOs through
  xdna_ep.runtime.layout and computes with the emulator kernels);
* injects faults on request (`Faults`): open or register failure, BO allocation
  failure, runs ending in an ERT error state or timing out (with garbage
  partially written to the output BO, as a crashed device might leave it),
  optionally at random with a seed (for soak tests).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from fakes.fake_hardware import (  # noqa: F401 - re-exported for the tests
    FAKE_XCLBIN_MAGIC,
    GROUP_BASE,
    PAD_BYTE,
    FakeHardware,
    FakeXrtError,
    Faults,
    _BoFlags,
    design_inputs,
    design_outputs,
    ert_cmd_state,
    write_fake_xclbin,
    write_instructions,
    xclBOSyncDirection,
)


def make_fake_pyxrt(faults: Faults | None = None) -> ModuleType:
    """A fresh FAKE pyxrt module object with its own call log and fault plan."""
    hub = _Hub(faults or Faults())
    mod = ModuleType("pyxrt")
    mod.__doc__ = "FAKE pyxrt (tests/fakes/fake_pyxrt.py); not XRT."
    mod.__version__ = "0.0-fake"
    mod.FAKE = True
    mod.hub = hub
    mod.calls = hub.calls
    mod.ert_cmd_state = ert_cmd_state
    mod.xclBOSyncDirection = xclBOSyncDirection
    mod.device = hub.make_device_cls()
    mod.xclbin = hub.make_xclbin_cls()
    mod.hw_context = hub.make_context_cls()
    mod.kernel = hub.make_kernel_cls()
    mod.bo = hub.make_bo_cls()
    return mod


class _Hub(FakeHardware):
    def __init__(self, faults: Faults) -> None:
        super().__init__(faults)
        self.registered: set[str] = set()
        self.xclbins: dict[str, Any] = {}                      # uuid -> loaded xclbin

    # -- classes bound to this hub ----------------------------------------------------
    def make_device_cls(self) -> type:
        hub = self

        class device:  # noqa: N801
            def __init__(self, index: int = 0) -> None:
                hub.record("device", index=index)
                if hub.faults.open_error is not None:
                    raise FakeXrtError(f"FAKE: {hub.faults.open_error}")
                self.index = index

            def register_xclbin(self, xclbin: Any) -> str:
                hub.record("register_xclbin", xclbin=xclbin.path)
                if hub.faults.register_error is not None:
                    raise FakeXrtError(f"FAKE: {hub.faults.register_error}")
                hub.registered.add(xclbin.get_uuid())
                return xclbin.get_uuid()

        return device

    def make_xclbin_cls(self) -> type:
        hub = self

        class xclbinkernel:  # noqa: N801
            def __init__(self, name: str) -> None:
                self._name = name

            def get_name(self) -> str:
                return self._name

        class xclbin:  # noqa: N801
            def __init__(self, path: str) -> None:
                hub.record("xclbin", path=path)
                self.path = path
                try:
                    raw = Path(path).read_bytes()
                    doc = json.loads(raw)
                except (OSError, ValueError) as exc:
                    raise FakeXrtError(f"FAKE: cannot load xclbin {path}: {exc}") from exc
                if doc.get("magic") != FAKE_XCLBIN_MAGIC:
                    raise FakeXrtError(f"FAKE: {path} is not a fake xclbin")
                self.design = doc["design"]
                self.kernel_names = list(doc["kernels"])
                self.uuid = hashlib.sha256(raw).hexdigest()[:32]
                hub.xclbins[self.uuid] = self

            def get_kernels(self) -> list[xclbinkernel]:
                hub.record("xclbin.get_kernels", xclbin=self.path)
                return [xclbinkernel(n) for n in self.kernel_names]

            def get_uuid(self) -> str:
                return self.uuid

        return xclbin

    def make_context_cls(self) -> type:
        hub = self

        class hw_context:  # noqa: N801
            def __init__(self, dev: Any, uuid: str) -> None:
                hub.record("hw_context", uuid=uuid)
                if uuid not in hub.registered:
                    raise FakeXrtError(f"FAKE: xclbin {uuid} was not registered")
                self.device = dev
                self.xclbin = hub.xclbins[uuid]

        return hw_context

    def make_kernel_cls(self) -> type:
        hub = self

        class run:  # noqa: N801
            def __init__(self, state: ert_cmd_state) -> None:
                self._state = state

            def wait(self, timeout_ms: int = 0) -> ert_cmd_state:
                hub.record("run.wait", timeout_ms=timeout_ms, state=self._state.name)
                return self._state

            def state(self) -> ert_cmd_state:
                return self._state

            def abort(self) -> None:
                hub.record("run.abort")

        class kernel:  # noqa: N801
            def __init__(self, ctx: Any, name: str) -> None:
                hub.record("kernel", name=name, xclbin=ctx.xclbin.path)
                if name not in ctx.xclbin.kernel_names:
                    raise FakeXrtError(f"FAKE: no kernel {name!r} in {ctx.xclbin.path}")
                self.ctx = ctx
                self.name = name

            def group_id(self, arg: int) -> int:
                hub.record("kernel.group_id", arg=arg)
                return GROUP_BASE + arg

            def __call__(self, *args: Any) -> run:
                hub.record("kernel.call", xclbin=self.ctx.xclbin.path, args=[
                    a.id if hasattr(a, "id") else a for a in args])
                return run(hub.launch(self, args))

        return kernel

    def make_bo_cls(self) -> type:
        hub = self

        class bo:  # noqa: N801
            flags = _BoFlags
            normal, cacheable = _BoFlags.normal, _BoFlags.cacheable
            device_only, host_only = _BoFlags.device_only, _BoFlags.host_only
            _next_id = 0

            def __init__(self, dev: Any, size: int, flags: Any, group: int) -> None:
                with hub.lock:
                    bo._next_id += 1
                    self.id = bo._next_id
                hub.record("bo", id=self.id, size=int(size), flags=_BoFlags(flags).name,
                           group=group)
                fault = hub.alloc_fault(size)
                if fault is not None:
                    raise FakeXrtError(fault)
                if size <= 0:
                    raise FakeXrtError("FAKE: BO size must be > 0")
                self.size_ = int(size)
                self.flags_ = _BoFlags(flags)
                self.group = group
                self.host = np.zeros(self.size_, dtype=np.uint8)
                self.dev = np.zeros(self.size_, dtype=np.uint8)
                self.generation = 0      # bumps when device bytes change by a sync

            def write(self, data: Any, seek: int) -> None:
                raw = np.frombuffer(memoryview(np.ascontiguousarray(data)).cast("B"),
                                    dtype=np.uint8)
                hub.record("bo.write", bo=self.id, nbytes=int(raw.size), seek=seek)
                if seek + raw.size > self.size_:
                    raise FakeXrtError(f"FAKE: write of {raw.size} bytes at {seek} overflows "
                                       f"BO {self.id} ({self.size_} bytes)")
                self.host[seek:seek + raw.size] = raw

            def sync(self, direction: xclBOSyncDirection, *_: Any) -> None:
                d = xclBOSyncDirection(direction)
                hub.record("bo.sync", bo=self.id, direction=d.name)
                if d is xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
                    self.dev[:] = self.host
                    self.generation += 1
                else:
                    self.host[:] = self.dev

            def read(self, size: int, skip: int) -> np.ndarray:
                hub.record("bo.read", bo=self.id, size=size, skip=skip)
                return self.host[skip:skip + size].view(np.int8).copy()

            def size(self) -> int:
                return self.size_

        return bo

