"""XrtDevice: runs programs on a Phoenix (npu1) NPU through pyxrt.

The protocol is the one MLIR-AIE designs are driven with today:

    device  = pyxrt.device(index)
    xclbin  = pyxrt.xclbin(path); device.register_xclbin(xclbin)
    context = pyxrt.hw_context(device, xclbin.get_uuid())
    kernel  = pyxrt.kernel(context, "MLIR_AIE")
    bo_instr = pyxrt.bo(device, 4*n, bo.flags.cacheable, kernel.group_id(1))
    data BOs = pyxrt.bo(device, size, bo.flags.host_only, kernel.group_id(arg))
    run = kernel(3, bo_instr, n, bo_in, bo_out, bo_weights, bo_params)
    state = run.wait(timeout_ms)   # must be ERT_CMD_STATE_COMPLETED

Per design (xclbin), the context, kernel and instruction BO are created once
per device and shared by every program; per launch, the weights BO is written
once at load; per run only IN, PARAMS (in) and OUT (back) move. The BO
contents follow runtime.layout, the same module the fake pyxrt decodes.

NOT YET VALIDATED ON HARDWARE: this path is exercised only through the fake
pyxrt in tests/fakes (no NPU on the development machines).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..compile.program import Launch, Program
from ..kernel_specs import registry
from .device import check_inputs, collect_outputs
from .errors import DeviceUnavailableError, XdnaDeviceError
from .layout import (
    ARG_IN,
    ARG_INSTR,
    ARG_OUT,
    ARG_PARAMS,
    ARG_WEIGHTS,
    OPCODE,
    LaunchIO,
    WeightsPlan,
    check_scale_flags,
    has_private_scratch,
    launch_io,
    launch_refusal,
    plan_launch,
    plan_weights,
    stage_consts,
)
from .shapes import BufferSpec
from .xclbins import DesignFiles, find_designs, launch_entry_names, read_instructions

DEFAULT_TIMEOUT_MS = 10_000
TIMEOUT_ENV = "XDNA_EP_NPU_TIMEOUT_MS"   # the plugin's backend reads the same variable


def command_timeout_ms() -> int:
    """$XDNA_EP_NPU_TIMEOUT_MS (milliseconds, 1 .. 3600000) when set, else
    DEFAULT_TIMEOUT_MS. Why a variable: a first launch on a cold device, or a large
    fused design, may need longer than 10 s, and the setting is per machine."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_MS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 3_600_000:
        raise ValueError(f"${TIMEOUT_ENV}={raw!r} is not a command timeout in milliseconds "
                         "(an integer 1 .. 3600000)")
    return value
_BO_GRANULE = 4096
_STILL_RUNNING = ("ERT_CMD_STATE_NEW", "ERT_CMD_STATE_QUEUED", "ERT_CMD_STATE_SUBMITTED",
                  "ERT_CMD_STATE_RUNNING")


def _state_name(state: Any) -> str:
    return str(getattr(state, "name", state))


def _flag(xrt: ModuleType, name: str) -> Any:
    flags = getattr(xrt.bo, "flags", None)
    return getattr(flags, name) if flags is not None and hasattr(flags, name) \
        else getattr(xrt.bo, name)


@dataclass
class _Design:
    """One registered xclbin: context, kernel and instruction BO (created once)."""

    files: DesignFiles
    xclbin: Any
    context: Any
    kernel: Any
    instr: np.ndarray
    bo_instr: Any


@dataclass
class _LaunchState:
    index: int
    launch: Launch
    io: LaunchIO
    design: _Design
    specs: list[Any]
    consts: list[dict[str, np.ndarray]]
    weights: WeightsPlan
    bo_weights: Any
    bos: dict[int, tuple[Any, int]] = field(default_factory=dict)   # arg -> (bo, capacity)

    @property
    def kernels(self) -> tuple[str, ...]:
        return tuple(st.kernel for st in self.launch.stages)


class XrtDevice:
    """The NPU through pyxrt (pass `pyxrt=` to inject a module, e.g. the test fake)."""

    name = "npu"

    def __init__(self, pyxrt: ModuleType | None = None, *, index: int = 0,
                 timeout_ms: int | None = None,
                 manifest: Mapping[str, Any] | None = None,
                 xclbin_dirs: Sequence[Path] | None = None) -> None:
        if timeout_ms is None:
            timeout_ms = command_timeout_ms()
        if timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be > 0, got {timeout_ms}")
        if pyxrt is None:
            try:
                pyxrt = importlib.import_module("pyxrt")
            except ImportError as exc:
                raise DeviceUnavailableError(f"XrtDevice needs pyxrt (XRT's Python bindings): "
                                             f"{exc}", missing="pyxrt") from exc
        self.xrt = pyxrt
        self.index = index
        self.timeout_ms = int(timeout_ms)
        self._manifest = manifest
        self._dirs = xclbin_dirs
        self._device: Any = None
        self._designs: dict[str, _Design] = {}
        self._lock = threading.RLock()

    # -- once per device / design ------------------------------------------------------
    def _open(self) -> Any:
        if self._device is None:
            try:
                self._device = self.xrt.device(self.index)
            except Exception as exc:
                raise XdnaDeviceError(f"cannot open NPU device {self.index} through pyxrt: "
                                      f"{exc}", phase="load") from exc
        return self._device

    def _design(self, files: DesignFiles) -> _Design:
        name = files.entry.name
        if name in self._designs:
            return self._designs[name]
        xrt, dev, kname = self.xrt, self._open(), files.entry.kernel

        def fail(what: str, exc: BaseException | None = None) -> XdnaDeviceError:
            msg = f"design {name!r} ({files.xclbin}): {what}" + (f": {exc}" if exc else "")
            return XdnaDeviceError(msg, phase="load", design=name)

        try:
            xclbin = xrt.xclbin(str(files.xclbin))
        except Exception as exc:
            raise fail("cannot read xclbin", exc) from exc
        try:
            names = [k.get_name() for k in xclbin.get_kernels()]
        except Exception as exc:
            raise fail("cannot list the xclbin's kernels", exc) from exc
        if kname not in names:
            raise fail(f"kernel {kname!r} not found in xclbin (it has {names})")
        try:
            dev.register_xclbin(xclbin)
        except Exception as exc:
            raise fail("register_xclbin failed", exc) from exc
        try:
            context = xrt.hw_context(dev, xclbin.get_uuid())
        except Exception as exc:
            raise fail("cannot create a hardware context", exc) from exc
        try:
            kernel = xrt.kernel(context, kname)
        except Exception as exc:
            raise fail(f"cannot open kernel {kname!r}", exc) from exc
        try:
            instr = read_instructions(files.insts)
        except (OSError, ValueError) as exc:
            raise fail("cannot read instruction file", exc) from exc
        bo_instr = self._alloc(kernel, instr.nbytes, ARG_INSTR, "cacheable", name, ())
        self._upload(bo_instr, instr.view(np.uint8), name, (), phase="load")
        d = _Design(files, xclbin, context, kernel, instr, bo_instr)
        self._designs[name] = d
        return d

    def _alloc(self, kernel: Any, nbytes: int, arg: int, flag: str, design: str,
               kernels: tuple[str, ...]) -> Any:
        try:
            return self.xrt.bo(self._device, int(nbytes), _flag(self.xrt, flag),
                               kernel.group_id(arg))
        except Exception as exc:
            raise XdnaDeviceError(
                f"design {design!r} (kernels {list(kernels)}): cannot allocate a {nbytes}-byte "
                f"buffer for kernel argument {arg}: {exc}", phase="alloc", design=design,
                kernels=kernels) from exc

    def _upload(self, bo: Any, data: np.ndarray, design: str, kernels: tuple[str, ...],
                phase: str = "run") -> None:
        try:
            bo.write(data, 0)
            bo.sync(self.xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
        except Exception as exc:
            raise XdnaDeviceError(f"design {design!r} (kernels {list(kernels)}): buffer upload "
                                  f"failed: {exc}", phase=phase, design=design,
                                  kernels=kernels) from exc

    # -- programs -------------------------------------------------------------------------
    def load(self, program: Program) -> XrtProgram:
        program.validate()
        specs = [[registry.get(st.kernel) for st in ln.stages] for ln in program.launches]
        names = launch_entry_names(program.launches, self._manifest)
        needed = list(dict.fromkeys(names))
        with self._lock:
            lookup = find_designs(needed, manifest=self._manifest, dirs=self._dirs)
            if lookup.missing:
                name, why = next(iter(lookup.missing.items()))
                kernels = tuple(st.kernel for ln, n in zip(program.launches, names, strict=True)
                                if n == name for st in ln.stages)
                raise XdnaDeviceError(f"program {program.name!r}: missing xclbin for design "
                                      f"{name!r} (kernels {list(kernels)}): {why}",
                                      phase="load", design=name, kernels=kernels)
            launches = []
            for i, (ln, io, lspecs, name) in enumerate(zip(program.launches, launch_io(program),
                                                           specs, names, strict=True)):
                kernels = tuple(st.kernel for st in ln.stages)
                try:
                    design = self._design(lookup.found[name])
                except XdnaDeviceError as exc:
                    raise XdnaDeviceError(f"program {program.name!r}, launch {i} (kernels "
                                          f"{list(kernels)}): {exc}", phase=exc.phase,
                                          design=ln.design, kernels=kernels) from exc
                consts = [stage_consts(program, st) for st in ln.stages]
                weights = plan_weights(ln, lspecs, consts)
                bo_w = self._alloc(design.kernel, weights.layout.size, ARG_WEIGHTS,
                                   "host_only", ln.design, kernels)
                self._upload(bo_w, weights.data, ln.design, kernels, phase="load")
                launches.append(_LaunchState(i, ln, io, design, lspecs, consts, weights, bo_w))
        return XrtProgram(program, self, launches)

    def close(self) -> None:
        with self._lock:
            self._designs.clear()
            self._device = None


@dataclass
class XrtProgram:
    """A program resident on the NPU; runs are serialised (one command queue)."""

    program: Program
    device: XrtDevice
    launches: list[_LaunchState]
    runs: int = 0
    broken: str = ""          # set after a failed command: the hardware state is unknown
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _bo(self, ls: _LaunchState, arg: int, nbytes: int) -> Any:
        bo, cap = ls.bos.get(arg, (None, 0))
        if bo is None or cap < nbytes:
            cap = (nbytes + _BO_GRANULE - 1) // _BO_GRANULE * _BO_GRANULE
            try:
                bo = self.device._alloc(ls.design.kernel, cap, arg, "host_only",
                                        ls.launch.design, ls.kernels)
            except XdnaDeviceError as exc:
                # a run that failed half way (earlier launches already ran) leaves
                # the program as unusable as a failed command does: every later run
                # raises, none silently succeeds after a failure
                self.broken = f"launch {ls.index} of program {self.program.name!r}: {exc}"
                raise
            if arg == ARG_OUT and has_private_scratch(ls.launch.design):
                # a fused design's private scratch (conv_frontend's h rows) has zero
                # borders the design reads but never writes: start OUT zeroed
                self.device._upload(bo, np.zeros(cap, dtype=np.uint8), ls.launch.design,
                                    ls.kernels, phase="alloc")
            ls.bos[arg] = (bo, cap)
        return bo

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = dict(check_inputs(self.program, inputs))
        with self._lock:
            if self.closed:
                raise XdnaDeviceError(f"program {self.program.name!r} was closed on the NPU",
                                      phase="run")
            if self.broken:
                raise XdnaDeviceError(f"program {self.program.name!r} is unusable after an "
                                      f"earlier NPU failure: {self.broken}", phase="run")
            for ls in self.launches:
                env.update(self._run_launch(ls, env))
            self.runs += 1
        return collect_outputs(self.program, env)

    def _run_launch(self, ls: _LaunchState, env: Mapping[str, np.ndarray]
                    ) -> dict[str, np.ndarray]:
        xrt, dev = self.device.xrt, self.device
        design, kernels = ls.launch.design, ls.kernels
        _refuse_launch(ls)
        params = plan_launch(ls.launch, ls.io, ls.specs, ls.consts, ls.weights,
                             {b: BufferSpec.of(env[b]) for b in ls.io.inputs})
        in_bytes = params.inputs.pack({b: env[b] for b in ls.io.inputs})
        p_bytes = params.encode()
        bo_in = self._bo(ls, ARG_IN, in_bytes.size)
        bo_out = self._bo(ls, ARG_OUT, params.outputs.size)
        bo_params = self._bo(ls, ARG_PARAMS, p_bytes.size)
        dev._upload(bo_in, in_bytes, design, kernels)
        dev._upload(bo_params, p_bytes, design, kernels)
        d = ls.design
        where = (f"launch {ls.index} of program {self.program.name!r} (design {design!r}, "
                 f"kernels {list(kernels)}, xrt kernel {d.files.entry.kernel!r})")
        try:
            run = d.kernel(OPCODE, d.bo_instr, int(d.instr.size), bo_in, bo_out,
                           ls.bo_weights, bo_params)
            state = run.wait(dev.timeout_ms)
        except NotImplementedError:
            raise            # a missing feature, never a device fault to fall back from
        except Exception as exc:
            self.broken = f"{where}: command failed: {exc}"
            raise XdnaDeviceError(self.broken, phase="run", design=design, kernels=kernels,
                                  state="EXCEPTION") from exc
        completed = xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED
        if state != completed:
            name = _state_name(state)
            if name in _STILL_RUNNING:   # some bindings return the live state on timeout
                name = f"ERT_CMD_STATE_TIMEOUT (still {name})"
            abort = getattr(run, "abort", None)
            if "TIMEOUT" in name and callable(abort):
                with contextlib.suppress(Exception):   # the timeout is what we report
                    abort()
            detail = f" after {dev.timeout_ms} ms" if "TIMEOUT" in name else ""
            self.broken = f"{where} ended in {name}{detail}"
            raise XdnaDeviceError(self.broken, phase="run", design=design, kernels=kernels,
                                  state=name)
        try:
            bo_out.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
            raw = bo_out.read(params.outputs.size, 0)
        except Exception as exc:
            raise XdnaDeviceError(f"{where}: reading outputs failed: {exc}", phase="run",
                                  design=design, kernels=kernels) from exc
        outputs = params.outputs.unpack(np.asarray(raw))
        check_scale_flags(design, ls.launch.stages, outputs)
        return outputs

    def close(self) -> None:
        with self._lock:
            for ls in self.launches:
                ls.bos.clear()
                ls.bo_weights = None
            self.closed = True


def _refuse_launch(ls: _LaunchState) -> None:
    """A launch the NPU must not run (layout.launch_refusal) is refused as a device
    error before anything is submitted: with fallback=allow the program runs on the
    emulator, announced (runtime/fallback.py); never a wrong number."""
    why = launch_refusal(ls.launch)
    if why:
        raise XdnaDeviceError(why, phase="run", design=ls.launch.design, kernels=ls.kernels)
