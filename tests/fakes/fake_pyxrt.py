"""FAKE pyxrt for tests. This is NOT XRT and touches no hardware.

It stands in for the `pyxrt` module so the xrt device's code path can be run
and checked on machines without an NPU. It

* records every call, in order, in `fake.calls` (name, details);
* models host vs device memory: `bo.write` changes host bytes, only
  `bo.sync(TO_DEVICE)` makes them visible to the "device", only
  `bo.sync(FROM_DEVICE)` brings device bytes back for `bo.read`;
* executes a launch from what real hardware would have, nothing else: the
  xclbin file it was given (a small JSON file naming the design and its
  kernels, written by `write_fake_xclbin`), the instruction words in the
  instruction BO, and the device bytes of the data BOs, decoded through
  xdna_ep.runtime.layout and computed with the emulator kernels;
* injects faults on request (`Faults`): register failure, BO allocation
  failure, runs ending in an ERT error state or timing out (with garbage
  partially written to the output BO, as a crashed device might leave it),
  optionally at random with a seed (for soak tests).
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from xdna_ep._kernels.fused import scratch
from xdna_ep.compile.program import Stage
from xdna_ep.kernel_specs import registry
from xdna_ep.runtime.emulator import execute_stages
from xdna_ep.runtime.layout import (
    ARG_IN,
    ARG_INSTR,
    ARG_OUT,
    ARG_PARAMS,
    ARG_WEIGHTS,
    OPCODE,
    LaunchParams,
    RegionLayout,
    Slot,
)

FAKE_XCLBIN_MAGIC = "FAKE-XCLBIN-FOR-TESTS"
GROUP_BASE = 100          # group_id(arg) = GROUP_BASE + arg, so a wrong group is visible


def write_fake_xclbin(path: Path, design: str, kernels: Sequence[str] = ("MLIR_AIE",)) -> Path:
    """A FAKE xclbin: JSON naming the design (real xclbins are AXLF binaries)."""
    path.write_text(json.dumps({"magic": FAKE_XCLBIN_MAGIC, "design": design,
                                "kernels": list(kernels)}))
    return path


def write_instructions(path: Path, words: Sequence[int]) -> Path:
    """Instruction words as `.txt` (hex per line) or binary little-endian uint32."""
    arr = np.asarray(words, dtype=np.uint32)
    if path.suffix == ".txt":
        path.write_text("".join(f"{int(w):08x}\n" for w in arr))
    else:
        path.write_bytes(arr.astype("<u4").tobytes())
    return path


@dataclass
class Faults:
    """What to break. Counters are 1-based and count calls of that kind."""

    register_error: str | None = None           # register_xclbin raises this
    fail_alloc_at: int | None = None            # the n-th bo() allocation raises
    run_states: dict[int, str] = field(default_factory=dict)  # n-th launch -> final state
    random_rate: float = 0.0                    # chance a launch fails (error or timeout)
    random_alloc_rate: float = 0.0              # chance an allocation fails
    seed: int = 0


class ert_cmd_state(enum.IntEnum):  # noqa: N801 - the name pyxrt uses
    ERT_CMD_STATE_NEW = 1
    ERT_CMD_STATE_QUEUED = 2
    ERT_CMD_STATE_RUNNING = 3
    ERT_CMD_STATE_COMPLETED = 4
    ERT_CMD_STATE_ERROR = 5
    ERT_CMD_STATE_ABORT = 6
    ERT_CMD_STATE_SUBMITTED = 7
    ERT_CMD_STATE_TIMEOUT = 8
    ERT_CMD_STATE_NORESPONSE = 9
    ERT_CMD_STATE_SKERROR = 10
    ERT_CMD_STATE_SKCRASHED = 11


class xclBOSyncDirection(enum.IntEnum):  # noqa: N801
    XCL_BO_SYNC_BO_TO_DEVICE = 0
    XCL_BO_SYNC_BO_FROM_DEVICE = 1


class _BoFlags(enum.IntEnum):
    normal = 0
    cacheable = 1 << 24
    device_only = 1 << 25
    host_only = 1 << 26


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


class FakeXrtError(RuntimeError):
    """What the FAKE raises where XRT would raise (its message says it is the fake)."""


class _Hub:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.RLock()
        self.rng = random.Random(faults.seed)
        self.n_alloc = 0
        self.n_launch = 0
        self.registered: set[str] = set()
        self.prepared: dict[tuple[int, int, int], Any] = {}   # (weights bo, gen, stage)
        self.xclbins: dict[str, Any] = {}                      # uuid -> loaded xclbin

    def record(self, call: str, /, **details: Any) -> None:
        with self.lock:
            self.calls.append((call, details))

    # -- classes bound to this hub ----------------------------------------------------
    def make_device_cls(self) -> type:
        hub = self

        class device:  # noqa: N801
            def __init__(self, index: int = 0) -> None:
                hub.record("device", index=index)
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
                    hub.n_alloc += 1
                    n = hub.n_alloc
                    bo._next_id += 1
                    self.id = bo._next_id
                f = hub.faults
                hub.record("bo", id=self.id, size=int(size), flags=_BoFlags(flags).name,
                           group=group)
                if (f.fail_alloc_at == n) or (f.random_alloc_rate and
                                              hub.rng.random() < f.random_alloc_rate):
                    raise FakeXrtError(f"FAKE: cannot allocate BO of {size} bytes "
                                       "(injected allocation failure)")
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

    # -- the "hardware" ---------------------------------------------------------------
    def _fault_state(self) -> ert_cmd_state | None:
        f = self.faults
        with self.lock:
            self.n_launch += 1
            n = self.n_launch
        if n in f.run_states:
            return ert_cmd_state[f.run_states[n]]
        if f.random_rate and self.rng.random() < f.random_rate:
            return self.rng.choice([ert_cmd_state.ERT_CMD_STATE_ERROR,
                                    ert_cmd_state.ERT_CMD_STATE_TIMEOUT])
        return None

    def launch(self, k: Any, args: tuple[Any, ...]) -> ert_cmd_state:
        """Executes one command, reading only device-visible bytes."""
        err = ert_cmd_state.ERT_CMD_STATE_ERROR
        if len(args) != 7 or args[0] != OPCODE:
            self.record("device.reject", reason=f"bad argument list {len(args)} / {args[:1]}")
            return err
        _, bo_instr, n_words, bo_in, bo_out, bo_w, bo_params = args
        for arg, b in ((ARG_INSTR, bo_instr), (ARG_IN, bo_in), (ARG_OUT, bo_out),
                       (ARG_WEIGHTS, bo_w), (ARG_PARAMS, bo_params)):
            if b.group != GROUP_BASE + arg:
                self.record("device.reject", reason=f"arg {arg}: BO in group {b.group}")
                return err
        if bo_instr.flags_ is not _BoFlags.cacheable or n_words * 4 > bo_instr.size_:
            self.record("device.reject", reason="instruction BO flags/size")
            return err
        words = bo_instr.dev[:n_words * 4].view("<u4")
        self.record("device.instructions", n_words=int(n_words),
                    sha256=hashlib.sha256(words.tobytes()).hexdigest())
        if not words.any():
            self.record("device.reject", reason="instruction stream is all zero (not synced?)")
            return err
        fault = self._fault_state()
        if fault is not None:
            # a failed command may leave a half-written output behind
            bo_out.dev[: bo_out.size_ // 2] = 0xAA
            self.record("device.fault", state=fault.name)
            return fault
        try:
            return self._execute(k, bo_in, bo_out, bo_w, bo_params)
        except NotImplementedError:
            raise        # a limit of this FAKE, not a device state: surface it as such
        except Exception as exc:  # noqa: BLE001 - a device reports failure as a state
            self.record("device.error", error=f"{type(exc).__name__}: {exc}")
            return err

    def _execute(self, k: Any, bo_in: Any, bo_out: Any, bo_w: Any,
                 bo_params: Any) -> ert_cmd_state:
        params = LaunchParams.decode(bo_params.dev)
        if params.design != k.ctx.xclbin.design:
            raise ValueError(f"params name design {params.design!r}, xclbin holds "
                             f"{k.ctx.xclbin.design!r}")
        env = design_inputs(params, bo_in.dev)
        weights = params.weights.unpack(bo_w.dev)
        stages, specs, states = [], [], []
        for i, st in enumerate(params.stages):
            stage = Stage(st["kernel"], tuple(st["inputs"]), tuple(st["outputs"]), {},
                          st["attrs"])
            spec = registry.get(stage.kernel)
            key = (bo_w.id, bo_w.generation, i)
            with self.lock:
                state = self.prepared.get(key)
            if state is None:
                blobs = {k2: weights[slot] for k2, slot in st["consts"].items()}
                if st["raw"]:
                    state = spec.prepare(blobs, stage.attrs)
                else:
                    prep = getattr(spec, "prepare_device", None)
                    if prep is None:
                        raise NotImplementedError(
                            f"FAKE: kernel {stage.kernel!r} packs its device constants "
                            "but has no prepare_device(blobs, attrs) to run from them")
                    state = prep([blobs[f"#{j}"] for j in range(len(blobs))], stage.attrs)
                with self.lock:
                    self.prepared[key] = state
            stages.append(stage)
            specs.append(spec)
            states.append(state)
        execute_stages(stages, specs, states, env)
        out = design_outputs(params, env)
        if out.size > bo_out.size_:
            raise ValueError(f"outputs need {out.size} bytes, OUT BO has {bo_out.size_}")
        bo_out.dev[:out.size] = out
        self.record("device.completed", design=params.design)
        return ert_cmd_state.ERT_CMD_STATE_COMPLETED


# -- what a fused design reads and writes, modelled from ITS side -----------------------
# The host packs IN and unpacks OUT through the slots in PARAMS; these read and write
# the bytes where the design's DMA does (kernels/fused/scratch.py geometry, the
# design's docstring), so a host layout that disagrees with a design gives wrong
# bytes here rather than agreeing with itself.
PAD_BYTE = 0x5A   # what the FAKE writes into a design's padding rows (never zero)


def _slot(region: RegionLayout, name: str) -> Slot:
    return next(s for s in region.slots if s.name == name)


def _conv_dims(params: LaunchParams) -> tuple[str, str, Any]:
    mel, y = params.stages[0]["inputs"][0], params.stages[-1]["outputs"][0]
    _, mels, frames = _slot(params.inputs, mel).shape
    d = _slot(params.outputs, y).shape[-1]
    return mel, y, scratch.conv_frontend_dims(mels, d, frames)


def _padding(shape: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    n = int(np.prod(shape)) * dt.itemsize
    return np.full(n, PAD_BYTE, np.uint8).view(dt).reshape(shape)


def design_inputs(params: LaunchParams, dev: np.ndarray) -> dict[str, np.ndarray]:
    """IN as the design reads it: conv_frontend's mel from zero-bordered rows
    [B, mels, t1 + 2] (mel[b, m, t] at [b, m, 1 + t]); the rest by the slots."""
    raw = np.ascontiguousarray(dev).reshape(-1).view(np.uint8)
    plain, env = list(params.inputs.slots), {}
    if params.design == "conv_frontend":
        mel, _, dims = _conv_dims(params)
        s = _slot(params.inputs, mel)
        b, mels, frames = s.shape
        rows = raw[s.offset:s.offset + dims.in_bytes(b, mels)].view(np.float32) \
            .reshape(b, mels, dims.tp1)
        border = rows.copy()
        border[:, :, 1:1 + frames] = 0
        if border.any():
            raise ValueError("conv_frontend IN: the mel rows' borders (conv1's zero "
                             "padding) are not zero")
        env[mel] = rows[:, :, 1:1 + frames].copy()
        plain.remove(s)
    env.update(RegionLayout(tuple(plain), params.inputs.size).unpack(raw))
    return env


def design_outputs(params: LaunchParams, env: dict[str, np.ndarray]) -> np.ndarray:
    """OUT bytes as the design writes them: conv_frontend's y at t2 rows per batch;
    a `whole` entry's split matmul outputs as one [rows_p, sum N] matrix (column
    blocks); padding rows hold PAD_BYTE. Private scratch (SCRATCH_PREFIX slots) has
    no emulator buffer: the FAKE leaves it zero."""
    lay, modelled = params.outputs, {}
    if params.design == "conv_frontend":
        _, y, dims = _conv_dims(params)
        b, t, d = env[y].shape
        full = _padding((b, dims.t2, d), np.dtype(np.float32))
        full[:, :t] = env[y]
        modelled[y] = full
    for e in scratch.OUT_ENTRIES.get(params.design, ()):
        if not e.whole:
            continue
        kernel, occ, _ = e.stage
        st = [s for s in params.stages if s["kernel"] == kernel][occ]
        outs = st["outputs"]
        if len(outs) < 2:
            continue
        blocks = [env[o].reshape(-1, env[o].shape[-1]) for o in outs]
        rows, dt = blocks[0].shape[0], blocks[0].dtype
        full = _padding((scratch.padded_rows(params.design, rows),
                         sum(x.shape[1] for x in blocks)), dt)
        full[:rows] = np.concatenate(blocks, axis=1)
        modelled[outs[0]] = full
        modelled.update({o: None for o in outs[1:]})
    rest = RegionLayout(tuple(s for s in lay.slots if s.name not in modelled), lay.size)
    out = rest.pack({s.name: env[s.name] if s.name in env else np.zeros(s.shape, s.dtype)
                     for s in rest.slots})
    for name, full in modelled.items():
        if full is not None:
            at = _slot(lay, name).offset
            out[at:at + full.nbytes] = full.reshape(-1).view(np.uint8)
    return out
