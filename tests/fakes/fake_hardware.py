"""The FAKE NPU hardware shared by the two FAKE XRT front ends of the tests.

This is NOT XRT and touches no hardware. Both fakes play the device with this one
module, so they agree by construction:

* tests/fakes/fake_pyxrt.py, a FAKE `pyxrt` module (the Python XrtDevice path);
* tests/fakes/fake_xrt/, a FAKE XRT C++ library (the plugin's native NPU backend),
  which calls `FakeHardware.launch` through the host process's Python interpreter
  (tests/fakes/fake_xrt_host.py).

A launch is executed from what real hardware would have, nothing else: the
xclbin (a small JSON file naming the design and its kernels, written by
`write_fake_xclbin`), the instruction words in the instruction BO, and the device
bytes of the data BOs, decoded through xdna_ep.runtime.layout and computed with
the emulator kernels. Faults are injected on request (`Faults`). Every launch's
device-visible IN / WEIGHTS / PARAMS bytes are kept in `uploads`, so a test can
compare what two front ends sent.
"""

from __future__ import annotations

import enum
import hashlib
import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from xdna_ep._kernels.add import geometry as add_geometry
from xdna_ep._kernels.fused import scratch
from xdna_ep._native import emulator as native
from xdna_ep.compile.program import Stage
from xdna_ep.kernel_specs import attention as att
from xdna_ep.kernel_specs import quantize as qz
from xdna_ep.kernel_specs import registry
from xdna_ep.kernel_specs.softmax import logit_requant
from xdna_ep.runtime.emulator import execute_stages
from xdna_ep.runtime.layout import (
    ARG_IN,
    ARG_INSTR,
    ARG_OUT,
    ARG_PARAMS,
    ARG_WEIGHTS,
    OPCODE,
    WORD_DESIGNS,
    LaunchParams,
    RegionLayout,
    Slot,
    scales_slot,
)

FAKE_XCLBIN_MAGIC = "FAKE-XCLBIN-FOR-TESTS"
GROUP_BASE = 100          # group_id(arg) = GROUP_BASE + arg, so a wrong group is visible


def write_fake_xclbin(path: Path, design: str, kernels: Sequence[str] = ("MLIR_AIE",)) -> Path:
    """A FAKE xclbin: JSON naming the design (real xclbins are AXLF binaries)."""
    path.write_text(json.dumps({"magic": FAKE_XCLBIN_MAGIC, "design": design,
                                "kernels": list(kernels)}))
    return path


def write_fake_designs_for(folder: Path, designs: Sequence[str]) -> dict[str, Any]:
    """A FAKE xclbin and instruction file per design name in `folder` (created), and
    the manifest document naming them: the smallest kit an XrtDevice needs to load
    programs whose launches use exactly these designs."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"designs": {}}
    for name in sorted(set(designs)):
        write_fake_xclbin(folder / f"{name}.xclbin", name)
        write_instructions(folder / f"{name}.insts.bin", [0x06030100, 0x1])
        manifest["designs"][name] = {"xclbin": f"{name}.xclbin", "insts": f"{name}.insts.bin"}
    return manifest


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

    open_error: str | None = None               # opening the device raises this
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


class FakeXrtError(RuntimeError):
    """What the FAKE raises where XRT would raise (its message says it is the fake)."""


@dataclass(frozen=True)
class LaunchBytes:
    """The device-visible bytes of one submitted launch (whole BOs)."""

    design: str
    n_words: int
    instructions: bytes
    inputs: bytes
    weights: bytes
    params: bytes


class FakeHardware:
    """The FAKE device: fault plan, call log, launch execution."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploads: list[LaunchBytes] = []
        self.lock = threading.RLock()
        self.rng = random.Random(self.faults.seed)
        self.n_alloc = 0
        self.n_launch = 0
        self.prepared: dict[tuple[int, int, int], Any] = {}   # (weights bo, gen, stage)

    def record(self, call: str, /, **details: Any) -> None:
        with self.lock:
            self.calls.append((call, details))

    def alloc_fault(self, size: int) -> str | None:
        """The injected failure of the next BO allocation, if any (counts it)."""
        f = self.faults
        with self.lock:
            self.n_alloc += 1
            n = self.n_alloc
        if (f.fail_alloc_at == n) or (f.random_alloc_rate and
                                      self.rng.random() < f.random_alloc_rate):
            return f"FAKE: cannot allocate BO of {size} bytes (injected allocation failure)"
        return None

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
        with self.lock:
            self.uploads.append(LaunchBytes(k.ctx.xclbin.design, int(n_words), words.tobytes(),
                                            bo_in.dev.tobytes(), bo_w.dev.tobytes(),
                                            bo_params.dev.tobytes()))
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
        if params.design == "add":
            out = add_design_run(params, bo_in.dev, bo_w.dev)
            if out.size > bo_out.size_:
                raise ValueError(f"outputs need {out.size} bytes, OUT BO has {bo_out.size_}")
            bo_out.dev[:out.size] = out
            self.record("device.completed", design=params.design)
            return ert_cmd_state.ERT_CMD_STATE_COMPLETED
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
        scales = run_design_stages(params, stages, specs, states, env)
        out = design_outputs(params, env, scales)
        if out.size > bo_out.size_:
            raise ValueError(f"outputs need {out.size} bytes, OUT BO has {bo_out.size_}")
        bo_out.dev[:out.size] = out
        self.record("device.completed", design=params.design)
        return ert_cmd_state.ERT_CMD_STATE_COMPLETED


# -- a design's dynamic form: the scale reductions on the array ------------------------
REDUCTION_PRODUCERS = 4   # one producer core per column folds its rows (the designs' split)


def reduce_on_array(x: np.ndarray, neg_limit: float) -> np.ndarray:
    """The params {scale, 1/scale, flag, 0} a design's reducer makes for the float32
    tensor x: each column's producer folds its quarter of the rows, the reducer combines
    the partials (the host build of kernels/common/dynamic_scale.h, the AIE code)."""
    rows = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)
    parts = [qz.dynamic_scale_partial(np.ascontiguousarray(r))
             for r in np.array_split(rows, REDUCTION_PRODUCERS) if r.size]
    return qz.dynamic_scale_reduce(np.stack(parts), float(neg_limit))


def run_design_stages(params: LaunchParams, stages: Sequence[Stage], specs: Sequence[Any],
                      states: Sequence[Any], env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Runs the launch's stages; in a fused design's dynamic form each dynamic quantize
    (and dynamic conv1d: it quantizes its own input, conv_frontend) first gets its
    scale from the reduction on the array (reduce_on_array). A flagged
    reduction (NaN/inf) stops the design, as the consumer cores would produce nothing
    usable: the params reach OUT and the host raises. Returns the params per reduction.
    The emulator's own scale must equal the reducer's bit for bit (else a device error)."""
    fused = scratch.out_entries(params.design, True) != scratch.out_entries(params.design, False)
    if not (fused and any(st.attrs.get("dynamic") for st in stages)):
        for st, spec, state in zip(stages, specs, states, strict=True):
            run_stage(params, st, spec, state, env)
        return []
    scales: list[np.ndarray] = []
    for st, spec, state in zip(stages, specs, states, strict=True):
        if st.kernel == "conv1d" and st.attrs.get("dynamic"):   # its own input's scale
            p = reduce_on_array(env[st.inputs[0]], 0.0)
            scales.append(p)
            if p[2] != 0.0:
                return scales
            execute_stages([st], [spec], [state], env)
            continue
        if st.kernel == "quantize" and st.attrs.get("dynamic"):
            p = reduce_on_array(env[st.inputs[0]], st.attrs.get("neg_limit", 0.0))
            scales.append(p)
            if p[2] != 0.0:
                return scales
            execute_stages([st], [spec], [state], env)
            got = np.asarray(env[st.outputs[1]], np.float32).reshape(-1)[:1]
            if got.view(np.uint32)[0] != p[:1].view(np.uint32)[0]:
                raise ValueError(f"FAKE: the reducer's scale {p[0]!r} differs from the "
                                 f"quantize stage's {got[0]!r} for {st.inputs[0]!r}")
            continue
        run_stage(params, st, spec, state, env)
    return scales


def run_stage(params: LaunchParams, st: Stage, spec: Any, state: Any,
              env: dict[str, np.ndarray]) -> None:
    """One stage as the design computes it: the attention stage of a design that reads
    PARAMS words from those words (attention_from_words), every other one by the
    emulator kernel."""
    if WORD_DESIGNS.get(params.design) == st.kernel:
        outs = attention_from_words(params, st, [env[b] for b in st.inputs])
        env.update(zip(st.outputs, outs, strict=True))
        return
    execute_stages([st], [spec], [state], env)


# -- the attention designs, computed from the PARAMS words (attention_aie.cc enum Param) --
MAX_LOGIT_UNITS = 2.0 ** 29   # attn_dyn_words: a larger logit scale gives multiplier 0


def dynamic_words(host: np.ndarray, q_s: float, k_s: float, v_s: float) -> np.ndarray:
    """What attn_dynamic_aie.cc attn_dyn_words makes on each core of attn_block's dynamic
    form: the host's words with the logit requant from double(q_s) * double(k_s) *
    softmax_scale (its float64 bits in words 10/11), float output, v_scale's bits."""
    w = host.copy()
    ss = float(host[att.W_SOFTMAX_SCALE_LO:att.W_SOFTMAX_SCALE_HI + 1].view(np.float64)[0])
    real = float(np.float32(q_s)) * float(np.float32(k_s)) * ss
    try:
        m, e = logit_requant(real)
    except ValueError:     # the core's multiplier-0 case (the host raises for it)
        m, e = 0, 31
    w[att.W_LOGIT_MULT], w[att.W_LOGIT_SHIFT], w[att.W_OUT_FLOAT] = m, e, 1
    w[att.W_V_SCALE_BITS] = np.array([v_s], np.float32).view(np.int32)[0]
    return w


def attention_from_words(params: LaunchParams, st: Stage,
                         inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The attention stage of an attention design, its integers taken from the PARAMS
    words, never from the JSON attrs (only q/k/v/mask and the head count, the design's
    build argument, come from elsewhere): a host that wrote wrong words gets wrong
    bytes, and words that contradict the run-time shapes are a FAKE device error.
    The dynamic form makes its scale-dependent words on the array (dynamic_words)."""
    host = np.asarray(params.words, np.int32)
    parsed = att._parse_attrs(st.attrs)
    call = att._stage_call(parsed, inputs)        # validated arrays (q, k, v, mask)
    tq, tk = call.q.shape[1], call.k.shape[1]
    groups = -(-tq // att.GROUP_ROWS)
    if host[att.W_KEY_LEN] != tk or host[att.W_GROUPS_PER_HEAD] != groups:
        raise ValueError(f"FAKE {params.design} design: PARAMS words say Tk "
                         f"{host[att.W_KEY_LEN]}, {host[att.W_GROUPS_PER_HEAD]} groups per "
                         f"head; the launch's q/k hold Tk {tk}, {groups} groups")
    w = host
    if parsed.dynamic:
        w = dynamic_words(host, *(float(np.asarray(inputs[i]).reshape(-1)[0])
                                  for i in (1, 3, 5)))
        if parsed.out == "int8":   # a one-stage dynamic int8 output: o_scale = v_scale
            w[att.W_OUT_FLOAT] = 0
            w[att.W_OUT_MULT], w[att.W_OUT_SHIFT] = (int(t) for t in native.make_requant(1.0))
    out = "float32" if w[att.W_OUT_FLOAT] else "int8"
    if out != parsed.out:
        raise ValueError(f"FAKE {params.design} design: PARAMS word {att.W_OUT_FLOAT} asks for "
                         f"a {out} output, the OUT slot holds {parsed.out}")
    v_scale = float(w[att.W_V_SCALE_BITS:att.W_V_SCALE_BITS + 1].view(np.float32)[0])
    driven = replace(call, logit_mult=int(w[att.W_LOGIT_MULT]),
                     logit_shift=int(w[att.W_LOGIT_SHIFT]), causal=bool(w[att.W_CAUSAL]),
                     past_len=int(w[att.W_PAST_LEN]), out=out,
                     out_mult=int(w[att.W_OUT_MULT]), out_shift=int(w[att.W_OUT_SHIFT]),
                     v_scale=v_scale)
    return [np.ascontiguousarray(a) for a in att._outputs(parsed, driven, att.run_call(driven))]


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


def _stage_outputs(params: LaunchParams, e: scratch.OutEntry) -> list[str]:
    kernel, occ, _ = e.stage
    return [s for s in params.stages if s["kernel"] == kernel][occ]["outputs"]


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


def design_outputs(params: LaunchParams, env: dict[str, np.ndarray],
                   scales: Sequence[np.ndarray] = ()) -> np.ndarray:
    """OUT bytes as the design writes them: conv_frontend's y at t2 rows per batch;
    a `whole` entry's split matmul outputs as one [rows_p, sum N] matrix (column
    blocks); padding rows hold PAD_BYTE; a dynamic form's SCALES slot holds the
    reducers' params. Other private scratch (SCRATCH_PREFIX slots) has no emulator
    buffer, nor has a stage output a stopped (flagged) design never made: the FAKE
    leaves them zero."""
    lay, modelled = params.outputs, {}
    if scales:
        name = scales_slot(params.design)
        modelled[name] = np.concatenate(scales).astype(np.float32).view(np.uint8)
    if params.design == "conv_frontend" and params.stages[-1]["outputs"][0] in env:
        _, y, dims = _conv_dims(params)
        b, t, d = env[y].shape
        full = _padding((b, dims.t2, d), np.dtype(np.float32))
        full[:, :t] = env[y]
        modelled[y] = full
    dynamic = any(st["attrs"].get("dynamic") for st in params.stages)
    for e in scratch.out_entries(params.design, dynamic) or ():
        if not e.whole or any(o not in env for o in _stage_outputs(params, e)):
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


# -- the add design, modelled from ITS side (kernels/add/geometry.py) -----------------
def _indices(p: add_geometry.Pattern) -> np.ndarray:
    """Element indices a DMA pattern visits, in order (zero strides repeat)."""
    idx = np.array([p.offset], dtype=np.int64)
    for size, stride in zip(p.sizes, p.strides, strict=True):
        idx = (idx[:, None] + stride * np.arange(size, dtype=np.int64)[None, :]).reshape(-1)
    return idx


def design_add_geometry(params: LaunchParams) -> add_geometry.AddGeometry:
    """The geometry the add design computes for this launch: from the run-time
    shapes (the PARAMS slot shapes) by the design's own packing rule, never from the
    host's slot offsets; the PARAMS geometry must agree (a design would compute
    garbage from one it does not match)."""
    (st,) = params.stages
    shapes = {s.name: s for s in params.inputs.slots}
    ins = st["inputs"]
    dynamic = bool(st["attrs"].get("dynamic")) and len(ins) == 4
    a = shapes[ins[0]]
    b_name = ins[2] if dynamic else ins[1] if len(ins) > 1 else None
    a_rows = 0
    if st["attrs"].get("transpose_a"):        # a [B, D, T] read transposed
        _, d, a_rows = a.shape
        period = d * a_rows
    elif b_name is None:
        (slot,) = params.weights.slots                    # the constant b, "#0"
        period = int(np.prod(slot.shape))
    else:
        period = int(np.prod(shapes[b_name].shape))
    geo = add_geometry.plan([(s.name, s.nbytes) for s in params.inputs.slots], a.name, b_name,
                            int(np.prod(a.shape)), period, np.dtype(a.dtype).itemsize,
                            (ins[1], ins[3]) if dynamic else None, a_rows)
    if params.geometry != geo.to_json():
        raise ValueError(f"FAKE add design: PARAMS geometry {params.geometry} is not the "
                         f"design's {geo.to_json()}")
    return geo


def add_design_run(params: LaunchParams, in_dev: np.ndarray, w_dev: np.ndarray) -> np.ndarray:
    """OUT bytes of one add launch: per column, a and b read through the design's DMA
    patterns (b's range repeated by its zero stride), the core's elementwise add
    (the emulator kernel on equal-length blocks), c written through c's pattern;
    dynamic int8: the scales from their IN pattern and c_scale after c."""
    geo = design_add_geometry(params)
    (st,) = params.stages
    attrs = dict(st["attrs"])
    spec = registry.get("add")
    raw_in = np.ascontiguousarray(in_dev).reshape(-1).view(np.uint8)
    raw_w = np.ascontiguousarray(w_dev).reshape(-1).view(np.uint8)
    dt = np.dtype(np.float32 if geo.itemsize == 4 else np.int8)
    src = raw_in[:raw_in.size // dt.itemsize * dt.itemsize].view(dt)
    b_src = src if geo.b_source == add_geometry.B_IN else \
        raw_w[:raw_w.size // 4 * 4].view(np.float32)
    state = spec.prepare_device([raw_w[:12].view(np.int32).copy()], attrs) \
        if dt == np.int8 and not geo.dynamic else None
    scales = raw_in[_indices(geo.scales_pattern())].view(np.float32) if geo.dynamic else None
    out = np.zeros(params.outputs.size, np.uint8)
    c_view = out[:geo.elements * geo.itemsize].view(dt)
    for col in range(add_geometry.COLUMNS):
        ia = _indices(geo.a_pattern(col))
        if ia.size == 0:
            continue
        a, b = src[ia], b_src[_indices(geo.b_pattern(col))]
        if scales is not None:
            c, cs = spec.run(None, [a, scales[:1].copy(), b, scales[1:].copy()], attrs)
            out[geo.out_scale_offset:geo.out_scale_offset + 4] = cs.view(np.uint8)
        else:
            # the core adds equal-length blocks: a arrives in c's order already
            (c,) = spec.run(state, [a, b], {k: v for k, v in attrs.items()
                                            if k not in ("table_rows", "transpose_a")})
        c_view[_indices(geo.c_pattern(col))] = c
    return out
