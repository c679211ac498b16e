"""EPContext models: compiled regions as ONNX Runtime ``com.microsoft.EPContext`` nodes.

What the native plugin library (provider/, libxdna_ep_provider.so) loads: each
XDNA region node of a compiled model becomes one EPContext node whose
``ep_cache_context`` holds the region's Program in a fixed little-endian binary
layout (docs/EPCONTEXT.md, byte by byte). Why not Program.to_bytes() (zip +
JSON + npz): the C++ reader must parse it without a zip, JSON or npy library;
a fixed layout of counted strings and typed arrays needs none.

Per stage the payload carries the kernel's *device constants* when the kernel
defines them (runtime/layout.stage_weight_blobs: the bytes the NPU weights BO
receives, from which the emulator's prepare_device() builds its state), else
its program constants by role; so the C++ stages prepare from exactly the bytes
the Python emulator prepares from.

Version 2 adds the program's launches after its stages: per launch its design,
its stages (by count, in order), the buffers it reads from IN and writes to OUT,
the design's manifest entry (xclbin, instruction file, kernel name) and, when
every program shape is concrete, its NPU image (ort/npu_image.py: the WEIGHTS and
PARAMS bytes and the IN / OUT slots, computed by runtime/layout.py, the code the
pyxrt path runs), which the plugin's native NPU backend uploads as is.
Version 3 adds, after the launches, the concrete input shapes the images are for
when the program has symbolic dims the compile knew the sizes of (`dims`): runs
of another shape go to the emulator.
Version 4 changes no field: the images' PARAMS bytes follow layout version 2
(runtime/layout.py: the designs' binary words first, then the header and JSON), so
a version 3 payload, whose PARAMS a design would misread, is refused.

Header (32 bytes): magic ``XDNAEPCX``, u32 format version, u32 header size,
u64 body size, u32 CRC-32 (zlib's) of the body, u32 reserved (0). The CRC
detects corruption, not tampering.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from .. import EP_NAME, __version__
from ..compile.program import Program, Stage
from ..kernel_specs import registry
from ..rewrite.graph import DOMAIN as REGION_DOMAIN
from ..rewrite.graph import iter_graphs, node_region_program
from ..runtime.layout import Slot, stage_consts, stage_weight_blobs
from .npu_image import LaunchPlan, image_input_shapes, launch_plans

MAGIC = b"XDNAEPCX"
FORMAT_VERSION = 4  # 4: PARAMS words first; 3: + the images' input shapes; 2: launches
HEADER = struct.Struct("<8sIIQII")  # magic, version, header size, body size, crc32, reserved
EPCONTEXT_OP = "EPContext"
EPCONTEXT_DOMAIN = "com.microsoft"
SIDE_FILE_SUFFIX = ".xdnactx"

DTYPE_CODES = {"float32": 1, "int8": 2, "int32": 3, "uint8": 4, "int64": 5}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
ATTR_NONE, ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_BOOL, ATTR_INTS, ATTR_FLOATS = range(7)


class PayloadError(ValueError):
    """A payload that cannot be written or read (unsupported value, corrupt bytes)."""


# -- writer -------------------------------------------------------------------------------------
class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8(self, v: int) -> None:
        self.parts.append(struct.pack("<B", v))

    def u32(self, v: int) -> None:
        self.parts.append(struct.pack("<I", v))

    def i64(self, v: int) -> None:
        self.parts.append(struct.pack("<q", v))

    def f64(self, v: float) -> None:
        self.parts.append(struct.pack("<d", v))

    def str(self, s: str) -> None:
        b = s.encode()
        self.u32(len(b))
        self.parts.append(b)

    def raw(self, b: bytes) -> None:
        self.parts.append(b)


def _dtype_code(dtype: str, what: str) -> int:
    try:
        return DTYPE_CODES[dtype]
    except KeyError:
        raise PayloadError(f"{what}: dtype {dtype} has no payload code "
                           f"(supported: {sorted(DTYPE_CODES)})") from None


def _tensor(w: _Writer, a: np.ndarray, what: str) -> None:
    a = np.ascontiguousarray(a)
    w.u8(_dtype_code(str(a.dtype), what))
    if a.ndim > 255:
        raise PayloadError(f"{what}: rank {a.ndim} is too large")
    w.u8(a.ndim)
    for d in a.shape:
        w.i64(int(d))
    data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    w.parts.append(struct.pack("<Q", len(data)))
    w.raw(data)


def _attr(w: _Writer, value: Any, what: str) -> None:
    if value is None:
        w.u8(ATTR_NONE)
    elif isinstance(value, (bool, np.bool_)):
        w.u8(ATTR_BOOL)
        w.u8(1 if value else 0)
    elif isinstance(value, (int, np.integer)):
        w.u8(ATTR_INT)
        w.i64(int(value))
    elif isinstance(value, (float, np.floating)):
        w.u8(ATTR_FLOAT)
        w.f64(float(value))
    elif isinstance(value, str):
        w.u8(ATTR_STRING)
        w.str(value)
    elif isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value).reshape(-1).tolist()) if isinstance(value, np.ndarray) \
            else list(value)
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
               for x in items):
            w.u8(ATTR_INTS)
            w.u32(len(items))
            for x in items:
                w.i64(int(x))
        elif all(isinstance(x, (int, float, np.integer, np.floating))
                 and not isinstance(x, (bool, np.bool_)) for x in items):
            w.u8(ATTR_FLOATS)
            w.u32(len(items))
            for x in items:
                w.f64(float(x))
        else:
            raise PayloadError(f"{what}: a list attribute must hold only numbers, got {value!r}")
    else:
        raise PayloadError(f"{what}: attribute value of type {type(value).__name__} has no "
                           "payload encoding (numbers, strings, bools, number lists, None)")


def _io(w: _Writer, name: str, dtype: str, shape: tuple[Any, ...], what: str) -> None:
    w.str(name)
    w.u8(_dtype_code(dtype, what))
    w.u8(len(shape))
    for d in shape:
        if isinstance(d, str):
            w.i64(-1)
            w.str(d)
        else:
            w.i64(int(d))
            w.str("")


def _stage(w: _Writer, program: Program, st: Stage) -> None:
    spec = registry.get(st.kernel)
    what = f"program {program.name!r} stage {st.kernel}"
    w.str(st.kernel)
    w.u32(int(spec.version))
    raw, blobs = stage_weight_blobs(spec, stage_consts(program, st), st.attrs)
    w.u8(0 if raw else 1)
    w.u32(len(st.inputs))
    for b in st.inputs:
        w.str(b)
    w.u32(len(st.outputs))
    for b in st.outputs:
        w.str(b)
    w.u32(len(blobs))
    for key, arr in blobs:
        w.str(key)
        _tensor(w, arr, f"{what} constant {key}")
    w.u32(len(st.attrs))
    for key in sorted(st.attrs):
        w.str(key)
        _attr(w, st.attrs[key], f"{what} attr {key!r}")


IMAGE_NONE, IMAGE_PRESENT, IMAGE_REFUSED = 0, 1, 2


def _blob(w: _Writer, data: bytes) -> None:
    w.parts.append(struct.pack("<Q", len(data)))
    w.raw(data)


def _slot(w: _Writer, s: Slot, what: str) -> None:
    w.str(s.name)
    w.u8(_dtype_code(s.dtype, what))
    w.u8(len(s.shape))
    for d in s.shape:
        w.i64(int(d))
    w.parts.append(struct.pack("<QQ", s.offset, s.nbytes))
    w.u8(len(s.frame))
    for d in (*s.frame, *s.origin):
        w.i64(int(d))


def _launch(w: _Writer, plan: LaunchPlan, what: str) -> None:
    w.str(plan.design)
    w.u32(plan.n_stages)
    for names in (plan.inputs, plan.outputs):
        w.u32(len(names))
        for b in names:
            w.str(b)
    w.u8(1 if plan.entry is not None else 0)
    if plan.entry is not None:
        w.str(plan.entry.xclbin)
        w.str(plan.entry.insts)
        w.str(plan.entry.kernel)
    if plan.image is None:
        w.u8(IMAGE_REFUSED if plan.refused else IMAGE_NONE)
        w.str(plan.why)
        return
    img = plan.image
    w.u8(IMAGE_PRESENT)
    w.u8(1 if img.zero_out else 0)
    _blob(w, img.weights)
    _blob(w, img.params)
    for size, slots in ((img.in_size, img.in_slots), (img.out_size, img.out_slots)):
        w.parts.append(struct.pack("<Q", size))
        w.u32(len(slots))
        for s in slots:
            _slot(w, s, f"{what} slot {s.name!r}")


def _image_shapes(w: _Writer, program: Program, plans: list[LaunchPlan],
                  dims: Mapping[str, int] | None) -> None:
    """Version 3: the input shapes the images are for, when the program has symbolic
    dims and some launch has an image (else 0: the io shapes as written)."""
    shapes = image_input_shapes(program, dims)
    symbolic = any(not isinstance(d, (int, np.integer)) for t in program.inputs for d in t.shape)
    if shapes is None or not symbolic or not any(p.image is not None for p in plans):
        w.u32(0)
        return
    w.u32(len(shapes))
    for shape in shapes:
        w.u8(len(shape))
        for d in shape:
            w.i64(d)


def payload_bytes(program: Program, manifest: Mapping[str, Any] | None = None,
                  dims: Mapping[str, int] | None = None) -> bytes:
    """The EPContext payload of one compiled region (docs/EPCONTEXT.md). `manifest`:
    the kernel manifest document naming the designs' files (default: the package's).
    `dims`: the sizes the compile knew for symbolic dims (the provider's dims for
    this compile): the NPU images are computed for them and their input shapes
    recorded."""
    program.validate()
    w = _Writer()
    w.str(program.name)
    w.str(program.kernel_version)
    for specs in (program.inputs, program.outputs):
        w.u32(len(specs))
        for t in specs:
            _io(w, t.name, t.dtype, t.shape, f"program {program.name!r} tensor {t.name!r}")
    stages = program.stages()
    w.u32(len(stages))
    for st in stages:
        _stage(w, program, st)
    plans = launch_plans(program, manifest, dims)
    w.u32(len(plans))
    for i, plan in enumerate(plans):
        _launch(w, plan, f"program {program.name!r} launch {i}")
    _image_shapes(w, program, plans, dims)
    body = b"".join(w.parts)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, HEADER.size, len(body), zlib.crc32(body), 0)
    return header + body


@dataclass(frozen=True)
class PayloadHeader:
    version: int
    body_size: int
    crc32: int


def read_header(blob: bytes) -> PayloadHeader:
    """The verified header of a payload (magic, version, size, CRC); PayloadError otherwise.
    The body is parsed only by the C++ reader (provider/payload.cc)."""
    if len(blob) < HEADER.size:
        raise PayloadError(f"EPContext payload truncated: {len(blob)} bytes, the header alone "
                           f"is {HEADER.size}")
    magic, version, hsize, body_size, crc, _ = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise PayloadError("EPContext payload has the wrong magic (not an XDNA payload)")
    if version != FORMAT_VERSION or hsize != HEADER.size:
        raise PayloadError(f"EPContext payload format version {version} is not supported "
                           f"(this xdna-ep reads and writes version {FORMAT_VERSION}; older "
                           "payloads lack launches, image shapes or PARAMS words: recompile the model with "
                           "xdna-ep compile)")
    if body_size != len(blob) - HEADER.size:
        raise PayloadError("EPContext payload truncated or padded")
    if zlib.crc32(blob[HEADER.size:]) != crc:
        raise PayloadError("EPContext payload checksum mismatch (corrupt or modified)")
    return PayloadHeader(version, body_size, crc)


# -- model --------------------------------------------------------------------------------------
def epcontext_model(model: onnx.ModelProto, programs: Mapping[str, Program], *,
                    embed_mode: int = 1, side_dir: str | os.PathLike[str] | None = None,
                    side_prefix: str = "model",
                    manifest: Mapping[str, Any] | None = None,
                    dims: Mapping[str, int] | None = None) -> onnx.ModelProto:
    """A copy of the rewritten `model` (XDNA region nodes) with every region node
    replaced by a com.microsoft EPContext node. embed_mode=1 puts the payload in
    ``ep_cache_context``; embed_mode=0 writes it to ``side_dir/<prefix>_<node>.xdnactx``
    and names that file (relative to the model) in ``ep_cache_context``. `dims`: the
    sizes of symbolic input dims the programs were compiled for (payload_bytes)."""
    if embed_mode not in (0, 1):
        raise ValueError(f"embed_mode must be 0 or 1, got {embed_mode!r}")
    if embed_mode == 0 and side_dir is None:
        raise ValueError("embed_mode=0 needs side_dir (the folder the model is written to)")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    count = 0
    for _, graph in iter_graphs(out.graph):
        for i, node in enumerate(graph.node):
            if node.domain != REGION_DOMAIN:
                continue
            ref, prog = node_region_program(node, programs, PayloadError)
            payload = payload_bytes(prog, manifest, dims)
            if embed_mode == 1:
                context: bytes = payload
            else:
                fname = f"{side_prefix}_{node.name}{SIDE_FILE_SUFFIX}"
                _write_atomic(Path(side_dir) / fname, payload)  # type: ignore[arg-type]
                context = fname.encode()
            ctx = helper.make_node(
                EPCONTEXT_OP, list(node.input), list(node.output), name=node.name,
                domain=EPCONTEXT_DOMAIN, main_context=1, embed_mode=embed_mode,
                ep_cache_context=context, source=EP_NAME, partition_name=node.name,
                ep_sdk_version=__version__,
                notes=f"xdna-ep payload v{FORMAT_VERSION}; program digest {prog.digest()}")
            graph.node[i].CopyFrom(ctx)
            _declare_outputs(graph, prog)
            count += 1
    if count == 0:
        raise PayloadError("the model has no XDNA region node to turn into EPContext nodes")
    kept = [o for o in out.opset_import if o.domain not in (REGION_DOMAIN, EPCONTEXT_DOMAIN)]
    del out.opset_import[:]
    out.opset_import.extend(kept)
    out.opset_import.append(helper.make_opsetid(EPCONTEXT_DOMAIN, 1))
    return out


def _declare_outputs(graph: onnx.GraphProto, prog: Program) -> None:
    """value_info for each region output that the graph does not type yet: ONNX
    Runtime's EPContext schema cannot infer output types, it reads them here."""
    typed = {v.name for v in graph.value_info} | {o.name for o in graph.output}
    for t in prog.outputs:
        if t.name in typed:
            continue
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype))
        graph.value_info.append(helper.make_tensor_value_info(t.name, elem, list(t.shape)))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_epcontext_model(model: onnx.ModelProto, programs: Mapping[str, Program],
                          path: str | os.PathLike[str], *, embed_mode: int = 1,
                          manifest: Mapping[str, Any] | None = None,
                          dims: Mapping[str, int] | None = None) -> Path:
    """epcontext_model() saved to `path` (side files beside it for embed_mode=0)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    ctx = epcontext_model(model, programs, embed_mode=embed_mode, side_dir=final.parent,
                          side_prefix=final.stem, manifest=manifest, dims=dims)
    tmp = final.with_name(final.name + ".tmp")
    onnx.save(ctx, str(tmp))
    os.replace(tmp, final)
    return final
