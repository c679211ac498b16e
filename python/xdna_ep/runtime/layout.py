"""How one launch's buffers are laid out in buffer objects (BOs).

This is the single definition shared by the xrt device (which writes and reads
BOs on the real NPU) and by the fake pyxrt used in tests (which plays the
hardware and reads the same bytes back). Keeping one module means the two
cannot drift: if the fake computes the emulator's bytes through this layout,
the xrt device reads exactly those bytes.

Kernel arguments of the MLIR-AIE kernel ("MLIR_AIE") for every design:

    arg 0  opcode (3 = run a transaction/instruction stream)
    arg 1  instruction BO (uint32 words, `cacheable`)
    arg 2  number of instruction words
    arg 3  IN      activations read by the launch, packed            (host_only)
    arg 4  OUT     buffers the launch exports, packed                (host_only)
    arg 5  WEIGHTS constants of every stage, packed, uploaded once   (host_only)
    arg 6  PARAMS  launch parameter block (stage wiring, attrs, run-time shapes,
                   offsets into IN/OUT/WEIGHTS), written per run     (host_only)

Inside IN/OUT/WEIGHTS every buffer starts at a multiple of ALIGN bytes (DMA
friendly); buffers are C-contiguous little-endian. A stage's WEIGHTS content
is `KernelSpec.device_constants(consts, attrs)` when the kernel defines it,
otherwise the stage's constants by role in sorted role order ("raw").

The PARAMS block starts with WORDS int32 words (WORDS_BYTES bytes), the binary words
the IRON designs read from the start of their PARAMS argument (the attention
designs: kernel_specs/attention.py device_words; zeros for a design that reads
none), then at WORDS_BYTES: MAGIC, uint32 version, uint32 length, UTF-8 JSON (the
launch description the host and the tests' FAKE hardware decode).

OUT of a fused launch starts with the design's OUT entries (plan_out): the
stage outputs the design writes to OUT (exports and intermediates it reads
back inside the launch, e.g. ffn h) reserved for the design's padded rows, and
its private scratch, from kernels/fused/scratch.py, the module the designs
import; the other exports follow. A buffer the design keeps inside a larger array
of its own (conv_frontend's zero-bordered mel rows and its y at padded rows per
batch; a split matmul's q/k/v as column blocks of one matrix) has a Frame: its
slot spans that array and pack/unpack place/read the buffer's window in it.

The add design keeps every buffer at its own size: a b that broadcasts over a's
leading dims is stored once and repeated by the design's DMA; where it reads a
and b (kernels/add/geometry.py, imported by the design) goes into PARAMS
(`geometry`, add_launch_geometry).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._kernels.add import geometry as add_geometry
from .._kernels.fused import scratch
from .._kernels.fused._stages import PARAMS_WORDS
from ..compile.program import Launch, Program, Stage
from ..kernel_specs import attention as attention_spec
from .shapes import BufferSpec, output_specs

ALIGN = 64
OPCODE = 3
ARG_INSTR = 1
ARG_IN, ARG_OUT, ARG_WEIGHTS, ARG_PARAMS = 3, 4, 5, 6
DATA_ARGS = (ARG_IN, ARG_OUT, ARG_WEIGHTS, ARG_PARAMS)
PARAMS_MAGIC = b"XDNAEPL1"
LAYOUT_VERSION = 2   # 2: binary words before the header; 1: header + JSON only
WORDS = PARAMS_WORDS          # int32 words at the start of PARAMS (the designs' PARAMS type)
WORDS_BYTES = 4 * WORDS       # where the header + JSON start
_HEADER = struct.Struct("<8sII")


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Frame:
    """Where a fused design keeps a buffer inside a larger array of its own (its
    device shape `shape`, row-major at the slot's offset): the buffer is the
    window starting at `origin`; the rest of the frame is the design's padding
    (zero in IN). `share` names an earlier slot whose frame this one lies in
    (a split matmul's column blocks in one [rows_p, N] matrix)."""

    shape: tuple[int, ...]
    origin: tuple[int, ...]
    share: str | None = None


@dataclass(frozen=True)
class Slot:
    """One buffer inside a BO; with a `frame`, a window of a larger device array."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    frame: tuple[int, ...] = ()
    origin: tuple[int, ...] = ()

    @property
    def room(self) -> int:
        """Bytes from `offset` the slot's device array spans."""
        if not self.frame:
            return self.nbytes
        return int(np.prod(self.frame, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def window(self) -> tuple[tuple[int, ...], tuple[slice, ...]]:
        """(buffer shape folded to the frame's rank, its index into the frame)."""
        k = len(self.frame)
        tail = self.shape[len(self.shape) - k + 1:] if k > 1 else ()
        lead = int(np.prod(self.shape[:len(self.shape) - len(tail)], dtype=np.int64))
        folded = (lead, *tail)
        if len(self.shape) < k or any(o + n > f for o, n, f in
                                      zip(self.origin, folded, self.frame, strict=True)):
            raise ValueError(f"buffer {self.name!r} {list(self.shape)} does not fit its frame "
                             f"{list(self.frame)} at {list(self.origin)}")
        return folded, tuple(slice(o, o + n) for o, n in zip(self.origin, folded, strict=True))

    def device_view(self, raw: np.ndarray) -> np.ndarray:
        return raw[self.offset:self.offset + self.room].view(np.dtype(self.dtype)) \
            .reshape(self.frame)

    def to_json(self) -> list[Any]:
        out = [self.name, self.dtype, list(self.shape), self.offset, self.nbytes]
        return out + [list(self.frame), list(self.origin)] if self.frame else out

    @classmethod
    def from_json(cls, v: Sequence[Any]) -> Slot:
        frame = (tuple(int(d) for d in v[5]), tuple(int(d) for d in v[6])) if len(v) > 5 \
            else ((), ())
        return cls(str(v[0]), str(v[1]), tuple(int(d) for d in v[2]), int(v[3]), int(v[4]),
                   *frame)


@dataclass(frozen=True)
class RegionLayout:
    """The packed content of one BO: slots in order, total size (>= ALIGN)."""

    slots: tuple[Slot, ...]
    size: int

    @classmethod
    def plan(cls, specs: Sequence[tuple[str, BufferSpec]],
             reserve: Mapping[str, int] | None = None,
             frames: Mapping[str, Frame] | None = None) -> RegionLayout:
        """Slots in order; `reserve` gives a slot more room than its buffer (a fused
        design writes its padded rows there; the host reads the first nbytes);
        `frames` places a buffer as a window of the design's own array."""
        slots: list[Slot] = []
        off = 0
        reserve, frames = reserve or {}, frames or {}
        for name, spec in specs:
            fr = frames.get(name)
            if fr is None:
                slots.append(Slot(name, spec.dtype, spec.shape, off, spec.nbytes))
            else:
                at = off
                if fr.share is not None:
                    at = next(s.offset for s in slots if s.name == fr.share)
                slots.append(Slot(name, spec.dtype, spec.shape, at, spec.nbytes,
                                  tuple(fr.shape), tuple(fr.origin)))
                slots[-1].window()                          # validates the fit
                if fr.share is not None:
                    continue
            off = _align(off + max(slots[-1].room, reserve.get(name, 0)))
        return cls(tuple(slots), max(off, ALIGN))

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)

    def pack(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """The BO bytes (uint8[size]); padding is zero so bytes are deterministic."""
        buf = np.zeros(self.size, dtype=np.uint8)
        for s in self.slots:
            a = np.ascontiguousarray(arrays[s.name])
            if str(a.dtype) != s.dtype or tuple(a.shape) != s.shape:
                raise ValueError(f"buffer {s.name!r}: got {a.dtype}{list(a.shape)}, layout "
                                 f"expects {s.dtype}{list(s.shape)}")
            if s.frame:
                folded, win = s.window()
                s.device_view(buf)[win] = a.reshape(folded)
            else:
                buf[s.offset:s.offset + s.nbytes] = a.reshape(-1).view(np.uint8)
        return buf

    def unpack(self, buf: np.ndarray | bytes | memoryview) -> dict[str, np.ndarray]:
        """Arrays (fresh copies) from BO bytes."""
        raw = _as_bytes(buf)
        if raw.size < self.size:
            raise ValueError(f"BO holds {raw.size} bytes, layout needs {self.size}")
        out = {}
        for s in self.slots:
            if s.frame:
                _, win = s.window()
                out[s.name] = s.device_view(raw)[win].copy().reshape(s.shape)
                continue
            chunk = raw[s.offset:s.offset + s.nbytes].copy()
            out[s.name] = chunk.view(np.dtype(s.dtype)).reshape(s.shape)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "slots": [s.to_json() for s in self.slots]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RegionLayout:
        return cls(tuple(Slot.from_json(s) for s in d["slots"]), int(d["size"]))


# -- which buffers cross a launch boundary -------------------------------------------
@dataclass(frozen=True)
class LaunchIO:
    inputs: tuple[str, ...]     # read from IN
    outputs: tuple[str, ...]    # written to OUT (read later, or a program output)


def launch_io(program: Program) -> list[LaunchIO]:
    """Per launch: buffers it reads from outside, and produced buffers needed later.

    Buffers produced and consumed inside one launch never leave the NPU, so they
    have no place in IN/OUT.
    """
    needed_after: list[set[str]] = []
    later: set[str] = {t.name for t in program.outputs}
    for ln in reversed(program.launches):
        needed_after.append(set(later))
        later |= set(ln.inputs)
    needed_after.reverse()
    result = []
    for ln, after in zip(program.launches, needed_after, strict=True):
        produced: list[str] = []
        for st in ln.stages:
            produced += [b for b in st.outputs if b not in produced]
        result.append(LaunchIO(ln.inputs, tuple(b for b in produced if b in after)))
    return result


# -- constants ----------------------------------------------------------------------
def stage_consts(program: Program, stage: Stage) -> dict[str, np.ndarray]:
    return {role: program.constants[name] for role, name in stage.consts.items()}


def stage_weight_blobs(spec: Any, consts: Mapping[str, np.ndarray],
                       attrs: Mapping[str, Any]) -> tuple[bool, list[tuple[str, np.ndarray]]]:
    """(raw, [(key, array)]) that a stage puts into the WEIGHTS BO.

    raw=True: keys are constant roles (the kernel defines no device_constants).
    raw=False: keys are "#0", "#1", ... (the kernel's packed device constants).
    """
    blobs = list(spec.device_constants(dict(consts), dict(attrs)) or [])
    if blobs:
        return False, [(f"#{j}", np.ascontiguousarray(b)) for j, b in enumerate(blobs)]
    return True, [(role, np.ascontiguousarray(consts[role])) for role in sorted(consts)]


@dataclass(frozen=True)
class WeightsPlan:
    layout: RegionLayout
    raw: tuple[bool, ...]                     # per stage
    keys: tuple[dict[str, str], ...]          # per stage: key -> slot name
    data: np.ndarray                          # the packed uint8 bytes


def plan_weights(launch: Launch, specs: Sequence[Any],
                 consts: Sequence[Mapping[str, np.ndarray]]) -> WeightsPlan:
    entries: list[tuple[str, BufferSpec]] = []
    arrays: dict[str, np.ndarray] = {}
    raws, keys = [], []
    for i, (st, spec, c) in enumerate(zip(launch.stages, specs, consts, strict=True)):
        raw, blobs = stage_weight_blobs(spec, c, st.attrs)
        raws.append(raw)
        k: dict[str, str] = {}
        for key, a in blobs:
            slot = f"{i}/{key}"
            k[key] = slot
            entries.append((slot, BufferSpec.of(a)))
            arrays[slot] = a
        keys.append(k)
    layout = RegionLayout.plan(entries)
    return WeightsPlan(layout, tuple(raws), tuple(keys), layout.pack(arrays))


# -- the per-run parameter block ------------------------------------------------------
@dataclass(frozen=True)
class LaunchParams:
    """Everything a launch needs besides the BO contents: decoded by the design."""

    design: str
    stages: tuple[dict[str, Any], ...]   # kernel, inputs, outputs, attrs, raw, consts
    inputs: RegionLayout
    outputs: RegionLayout
    weights: RegionLayout
    version: int = LAYOUT_VERSION
    geometry: dict[str, Any] | None = None   # the add design's (add_launch_geometry)
    words: tuple[int, ...] = (0,) * WORDS    # the binary words the design reads

    def __post_init__(self) -> None:
        if len(self.words) != WORDS:
            raise ValueError(f"PARAMS holds {WORDS} words, got {len(self.words)}")

    def encode(self) -> np.ndarray:
        doc = {
            "version": self.version, "design": self.design, "stages": list(self.stages),
            "in": self.inputs.to_json(), "out": self.outputs.to_json(),
            "weights": self.weights.to_json(),
        }
        if self.geometry is not None:
            doc["geometry"] = self.geometry
        body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        blob = np.asarray(self.words, "<i4").tobytes() + \
            _HEADER.pack(PARAMS_MAGIC, self.version, len(body)) + body
        return np.frombuffer(blob + bytes(_align(len(blob)) - len(blob)), dtype=np.uint8)

    @classmethod
    def decode(cls, buf: np.ndarray | bytes | memoryview) -> LaunchParams:
        whole = _as_bytes(buf)
        start = WORDS_BYTES + _HEADER.size
        if whole.size < start:
            raise ValueError("params block shorter than its words and header")
        magic, version, length = _HEADER.unpack(bytes(whole[WORDS_BYTES:start]))
        if magic != PARAMS_MAGIC or version != LAYOUT_VERSION:
            raise ValueError(f"params block: bad magic/version {magic!r}/{version} at byte "
                             f"{WORDS_BYTES} (this xdna-ep reads layout version "
                             f"{LAYOUT_VERSION}: {WORDS} words, then the header)")
        body = bytes(whole[start:start + length])
        if len(body) != length:
            raise ValueError("params block truncated")
        d = json.loads(body)
        words = tuple(int(w) for w in whole[:WORDS_BYTES].view("<i4"))
        return cls(d["design"], tuple(d["stages"]), RegionLayout.from_json(d["in"]),
                   RegionLayout.from_json(d["out"]), RegionLayout.from_json(d["weights"]),
                   int(d["version"]), d.get("geometry"), words)


def _as_bytes(buf: np.ndarray | bytes | memoryview) -> np.ndarray:
    """A flat uint8 view of BO bytes in any of the forms pyxrt/numpy hand out."""
    if isinstance(buf, np.ndarray):
        return np.ascontiguousarray(buf).reshape(-1).view(np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)


# -- a fused design's OUT (kernels/fused/scratch.py, shared with the designs) -----------
SCRATCH_PREFIX = "#scratch/"


@dataclass(frozen=True)
class OutPlan:
    """The OUT slots of one launch: (name, spec) in order, the bytes reserved per
    slot where the design writes more than the buffer (its padded rows), and the
    frames of buffers the design keeps inside a larger array of its own."""

    specs: tuple[tuple[str, BufferSpec], ...]
    reserve: dict[str, int]
    frames: dict[str, Frame] = field(default_factory=dict)


def dynamic_form(stages: Sequence[Stage]) -> bool:
    """Whether a launch runs a design's dynamic form (it has dynamic-mode stages)."""
    return any(st.attrs.get("dynamic") for st in stages)


REDUCING_KERNELS = ("quantize", "conv1d")   # conv1d quantizes its own float input


def reductions(stages: Sequence[Stage]) -> list[Stage]:
    """The reducing stages of a fused launch, in order: each dynamic quantize, and each
    dynamic conv1d (it quantizes its own float input by the same rule); one on-array
    scale reduction each (kernels/common/dynamic_scale.h), params in the SCALES slot."""
    return [st for st in stages if st.kernel in REDUCING_KERNELS and st.attrs.get("dynamic")]


def scales_slot(design: str) -> str:
    return f"{SCRATCH_PREFIX}{design}/{scratch.SCALES}"


def check_scale_flags(design: str, stages: Sequence[Stage],
                      outputs: Mapping[str, np.ndarray]) -> None:
    """Raises the quantize contract's ValueError when a reduction on the array saw NaN
    or inf (its params' flag word): no int8 image exists, as on the host."""
    words = outputs.get(scales_slot(design))
    if words is None:
        return
    bad = scratch.flagged(np.asarray(words).view(np.float32).tolist())
    if bad:
        red = reductions(stages)
        names = [red[i].inputs[0] if i < len(red) else f"#{i}" for i in bad]
        raise ValueError(f"x contains NaN or inf: no dynamic int8 scale exists (tensor(s) "
                         f"{names}, scale reduced on the NPU by design {design!r})")


def has_private_scratch(design: str) -> bool:
    """Whether the design's OUT holds scratch no stage output fills (it starts zeroed)."""
    return any(e.stage is None for e in scratch.OUT_ENTRIES.get(design, ()))


def dynamic_design_refusal(launch: Launch) -> str:
    """Why the NPU must not run `launch` ("" when it may): the dynamic designs with an
    on-array gelu table (conv_frontend, ffn_block, ffn_ln_matmul) are built for one
    neg_limit per dynamic quantize (scratch.DYNAMIC_NEG_LIMITS: the gelu input's
    CONV_NEG_LIMIT, 0 elsewhere) and one gelu form (CONV_GELU_APPROXIMATE); a launch
    with other attrs runs on the emulator."""
    built = scratch.DYNAMIC_NEG_LIMITS.get(launch.design)
    if built is None or not dynamic_form(launch.stages):
        return ""
    quantizes = [st for st in launch.stages if st.kernel == "quantize"]
    for st, lim in zip(quantizes, built, strict=False):
        if float(st.attrs.get("neg_limit", 0.0)) != lim:
            return (f"design {launch.design!r} (dynamic) quantizes this input with "
                    f"neg_limit {lim}, the launch asks for {st.attrs.get('neg_limit', 0.0)}")
    for st in launch.stages:
        if st.kernel == "gelu" and st.attrs.get("approximate", "none") \
                != scratch.CONV_GELU_APPROXIMATE:
            return (f"design {launch.design!r} (dynamic) builds the "
                    f"{scratch.CONV_GELU_APPROXIMATE!r} gelu table, the launch asks for "
                    f"{st.attrs.get('approximate')!r}")
    return ""


def _entry_stage(design: str, stages: Sequence[Stage], ref: tuple[str, int, int]) -> Stage:
    kernel, occurrence, index = ref
    seen = [st for st in stages if st.kernel == kernel]
    if occurrence >= len(seen) or index >= len(seen[occurrence].outputs):
        raise ValueError(f"design {design!r} writes output {index} of {kernel} stage "
                         f"#{occurrence} to OUT, but the launch has {len(seen)} {kernel} "
                         "stage(s): the launch does not match the design's stage chain")
    return seen[occurrence]


def conv_frontend_geometry(stages: Sequence[Stage], known: Mapping[str, BufferSpec],
                           consts: Sequence[Mapping[str, np.ndarray]] = ()
                           ) -> tuple[int, int, int, scratch.ConvFrontendDims]:
    """(batch, mels, d, dims) of a conv_frontend launch: its tiling (scratch.py)."""
    x = known[stages[0].inputs[0]]                       # mel [B, mels, T]
    d = int(np.asarray(consts[0]["weight"]).shape[0]) if consts else x.shape[1]
    return x.shape[0], x.shape[1], d, scratch.conv_frontend_dims(x.shape[1], d, x.shape[2])


def plan_out(design: str, stages: Sequence[Stage], known: Mapping[str, BufferSpec],
             exports: Sequence[str], consts: Sequence[Mapping[str, np.ndarray]] = ()) -> OutPlan:
    """OUT of a launch: a fused design's entries first (kernels/fused/scratch.py
    OUT_ENTRIES: the stage outputs it writes to OUT, each reserved for its padded
    rows or framed as the design lays it out, and its private scratch), then every
    other export. A single-kernel design exports only what is needed later."""
    entries = scratch.out_entries(design, dynamic_form(stages))
    if entries is None:
        return OutPlan(tuple((b, known[b]) for b in exports), {})
    specs: list[tuple[str, BufferSpec]] = []
    reserve: dict[str, int] = {}
    frames: dict[str, Frame] = {}
    conv = conv_frontend_geometry(stages, known, consts) if design == "conv_frontend" else None
    for e in entries:
        if e.name == scratch.SCALES and e.stage is None:   # the reducers' params
            specs.append((scales_slot(design), BufferSpec(
                "uint8", (scratch.scales_bytes(len(reductions(stages))),))))
            continue
        if e.stage is None:          # private scratch: conv_frontend's h rows (c1, c2)
            assert conv is not None, f"{design}: private scratch without its dims"
            batch, _, d, dims = conv
            name = f"{SCRATCH_PREFIX}{design}/{e.name}"
            specs.append((name, BufferSpec("uint8", (dims.scratch_bytes(e.name, batch, d),))))
            continue
        stage = _entry_stage(design, stages, e.stage)
        buf = stage.outputs[e.stage[2]]
        spec = known[buf]
        if buf in dict(specs):
            continue
        if conv is not None:         # y [B, t2, d]: t2 rows per batch
            batch, _, d, dims = conv
            frames[buf] = Frame((batch, dims.t2, d), (0, 0, 0))
        elif e.whole and len(stage.outputs) > 1:   # split: column blocks of one matrix
            rows = int(np.prod(spec.shape[:-1], dtype=np.int64))
            full = (scratch.padded_rows(design, rows),
                    sum(known[o].shape[-1] for o in stage.outputs))
            col = 0
            for o in stage.outputs:
                frames[o] = Frame(full, (0, col), None if o == stage.outputs[0]
                                  else stage.outputs[0])
                specs.append((o, known[o]))
                col += known[o].shape[-1]
            continue
        else:
            rows = int(np.prod(spec.shape[:-1], dtype=np.int64))
            reserve[buf] = scratch.capacity(design, rows, spec.nbytes // max(rows, 1))
        specs.append((buf, spec))
    listed = {n for n, _ in specs}
    specs += [(b, known[b]) for b in exports if b not in listed]
    return OutPlan(tuple(specs), reserve, frames)


def in_frames(design: str, stages: Sequence[Stage], inputs: Sequence[str],
              known: Mapping[str, BufferSpec],
              consts: Sequence[Mapping[str, np.ndarray]] = ()) -> dict[str, Frame]:
    """IN frames of a fused design: conv_frontend reads the mel as zero-bordered
    rows [B, mels, tp1] with mel[b, m, t] at [b, m, 1 + t] (conv1's padding)."""
    if design != "conv_frontend":
        return {}
    batch, mels, _, dims = conv_frontend_geometry(stages, known, consts)
    mel = stages[0].inputs[0]
    return {mel: Frame((batch, mels, dims.tp1), (0, 0, 1))} if mel in inputs else {}


def plan_launch(launch: Launch, io: LaunchIO, specs: Sequence[Any],
                consts: Sequence[Mapping[str, np.ndarray]], weights: WeightsPlan,
                input_specs: Mapping[str, BufferSpec]) -> LaunchParams:
    """The layout of one run of `launch` for these input shapes.

    Output shapes are inferred stage by stage (shapes.output_specs), because the
    OUT BO must be sized before the command is submitted.
    """
    known: dict[str, BufferSpec] = {b: input_specs[b] for b in io.inputs}
    stages = []
    for i, (st, spec, c) in enumerate(zip(launch.stages, specs, consts, strict=True)):
        outs = output_specs(st.kernel, spec, [known[b] for b in st.inputs], dict(c), st.attrs)
        if len(outs) != len(st.outputs):
            raise ValueError(f"stage {st.kernel}: {len(st.outputs)} output buffers named, "
                             f"its contract has {len(outs)}")
        known.update(zip(st.outputs, outs, strict=True))
        stages.append({"kernel": st.kernel, "inputs": list(st.inputs),
                       "outputs": list(st.outputs), "attrs": st.attrs,
                       "raw": weights.raw[i], "consts": weights.keys[i]})
    out = plan_out(launch.design, launch.stages, known, io.outputs, consts)
    geo = add_launch_geometry(launch, io.inputs, known, consts)
    return LaunchParams(
        launch.design, tuple(stages),
        RegionLayout.plan([(b, known[b]) for b in io.inputs],
                          in_reserve(launch.design, io.inputs, known),
                          in_frames(launch.design, launch.stages, io.inputs, known, consts)),
        RegionLayout.plan(out.specs, out.reserve, out.frames),
        weights.layout, geometry=None if geo is None else geo.to_json(),
        words=launch_words(launch, known))


# -- the binary words at the start of PARAMS ------------------------------------------
WORD_DESIGNS = {"attention": "attention", "attn_block": "attention"}   # design -> stage kernel


def launch_words(launch: Launch, known: Mapping[str, BufferSpec]) -> tuple[int, ...]:
    """The WORDS int32 words a launch's design reads from the start of PARAMS, for
    these run-time shapes: the attention designs (one-stage attention, attn_block in
    both forms) read their attention stage's words (kernel_specs/attention.py
    device_words, the host's one definition); every other design reads none (zeros)."""
    kernel = WORD_DESIGNS.get(launch.design)
    if kernel is None:
        return (0,) * WORDS
    found = [st for st in launch.stages if st.kernel == kernel]
    if len(found) != 1:
        raise ValueError(f"design {launch.design!r} reads the words of one {kernel} stage, "
                         f"the launch has {len(found)}")
    st = found[0]
    per = 2 if st.attrs.get("dynamic") else 1
    words = attention_spec.device_words(st.attrs, known[st.inputs[0]].shape,
                                        known[st.inputs[per]].shape)
    return tuple(int(w) for w in words)


# -- the add design (kernels/add/geometry.py, shared with the design) -----------------
def launch_refusal(launch: Launch) -> str:
    """Why the NPU must not run `launch` ("" when it may): an add form the add
    design cannot run (add_design_refusal), or a dynamic design asked for attrs it
    is not built for (dynamic_design_refusal). Shared by the pyxrt runtime and the
    payload's NPU image (ort/npu_image.py), so the plugin refuses the same launches."""
    return add_design_refusal(launch) or dynamic_design_refusal(launch)


def add_design_refusal(launch: Launch) -> str:
    """Why the add design cannot run `launch` ("" when it can): it runs exactly one
    add stage (every add form: equal shapes, b broadcast over a's leading dims, a
    constant b, a read transposed; kernels/add/geometry.py). Shared by the xrt
    device and the payload's NPU image (ort/npu_image.py), so both refuse the same
    launches."""
    if launch.design != "add":
        return ""
    if len(launch.stages) != 1 or launch.stages[0].kernel != "add":
        return (f"design 'add' runs one add stage, the launch has "
                f"{[st.kernel for st in launch.stages]}")
    return ""


def add_launch_geometry(launch: Launch, inputs: Sequence[str],
                        known: Mapping[str, BufferSpec],
                        consts: Sequence[Mapping[str, np.ndarray]] = ()
                        ) -> add_geometry.AddGeometry | None:
    """Where the add design reads a and b (IN, or WEIGHTS for a constant b) and
    writes c, for these run-time shapes: b's period repeats over a (None for other
    designs). Raises ValueError with add_design_refusal's reason for a form the
    design cannot run."""
    if launch.design != "add":
        return None
    why = add_design_refusal(launch)
    if why:
        raise ValueError(why)
    st = launch.stages[0]
    dynamic = bool(st.attrs.get("dynamic")) and len(st.inputs) == 4
    a = st.inputs[0]
    b = st.inputs[2] if dynamic else st.inputs[1] if len(st.inputs) > 1 else None
    spec = known[a]
    a_rows = 0
    if st.attrs.get("transpose_a"):          # a [B, D, T]: the period is the [T, D] table
        if len(spec.shape) != 3:
            raise ValueError(f"add (transpose_a): a must be [B, D, T], got {list(spec.shape)}")
        a_rows, period = spec.shape[2], spec.shape[1] * spec.shape[2]
    elif b is not None:
        period = int(np.prod(known[b].shape, dtype=np.int64))
    elif consts and "b" in consts[0]:
        period = int(np.asarray(consts[0]["b"]).size)
    else:
        raise ValueError("add: b is neither an input nor a constant 'b'")
    return add_geometry.plan([(n, known[n].nbytes) for n in inputs], a, b,
                             int(np.prod(spec.shape, dtype=np.int64)), period,
                             np.dtype(spec.dtype).itemsize,
                             (st.inputs[1], st.inputs[3]) if dynamic else None, a_rows)


def in_reserve(design: str, inputs: Sequence[str],
               known: Mapping[str, BufferSpec]) -> dict[str, int]:
    """IN room per input of a fused design: the padded rows it reads (scratch.py
    IN_ROW_PAD); the packed padding is zero."""
    out = {}
    for i, b in enumerate(inputs):
        spec = known[b]
        rows = int(np.prod(spec.shape[:-1], dtype=np.int64))
        cap = scratch.in_capacity(design, i, rows, spec.nbytes // max(rows, 1))
        if cap is not None:
            out[b] = cap
    return out
