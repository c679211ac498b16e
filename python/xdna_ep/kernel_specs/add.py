"""Elementwise add kernel (kernels/add/README.md): fp32 + fp32, or int8 + int8
with rescale to the output scale through one fixed-point multiply per operand.

b may have a's shape or a suffix of it (repeated over a's leading dims: a
residual stream plus a per-position table, for example), after dropping b's
leading 1s (kernel_version 3): a [1, T, D] b (GPT-2's position embedding, a
second activation) repeats over a [B, T, D] a like a [T, D] one. b's rank is
at most a's; the output has a's shape.

As a Program stage, b may also be a constant (role "b", float32 only) and
`transpose_a` swaps a's last two dims first: Whisper's front end adds its
[T, D] position table to the transposed [B, D, T] conv output in one stage
(the conv_frontend design writes the transpose through its drain pattern).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import checks as chk
from .registry import Attrs, BufferSpec, Consts, KernelSpec, register


def _drop_leading_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    lead = 0
    while lead < len(shape) and shape[lead] == 1:
        lead += 1
    return tuple(shape[lead:])


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = chk.array("a", a, (np.float32, np.int8), min_ndim=1)
    b = chk.array("b", b, (np.float32, np.int8), min_ndim=1)
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    core = _drop_leading_ones(b.shape)
    if b.ndim > a.ndim or a.shape[a.ndim - len(core):] != core:
        raise ValueError(f"b's shape {b.shape} (leading 1s dropped) must equal a's shape "
                         f"{a.shape} or a suffix of it")
    return a, b


def requant(a_scale: float, b_scale: float, out_scale: float) -> tuple[int, int, int]:
    """(ma, mb, shift) of the int8 add, from the one C++ builder (kernels/add/add.h)."""
    return tuple(_emu.add_requant(chk.scale("a_scale", a_scale), chk.scale("b_scale", b_scale),
                                  chk.scale("out_scale", out_scale)))


def dynamic_out_scale(a_scale: float, b_scale: float) -> float:
    """Dynamic mode: out_scale = a_scale + b_scale (fp32), so no sum saturates."""
    return float(_emu.add_dynamic_out_scale(chk.scale("a_scale", a_scale),
                                            chk.scale("b_scale", b_scale)))


def add(a: np.ndarray, b: np.ndarray, *, a_scale: float | None = None,
        b_scale: float | None = None, out_scale: float | None = None) -> Any:
    """Add on the emulator. fp32: c. int8 with out_scale: c. int8 without
    out_scale (dynamic): (c, out_scale)."""
    a, b = _check_pair(a, b)
    if a.dtype == np.float32:
        if a_scale is not None or b_scale is not None or out_scale is not None:
            raise ValueError("scales must be None for float32 add")
        return _emu.add_f32(a, b)
    if a_scale is None or b_scale is None:
        raise ValueError("a_scale and b_scale are required for int8 add")
    sa, sb = chk.scale("a_scale", a_scale), chk.scale("b_scale", b_scale)
    if out_scale is None:
        so = dynamic_out_scale(sa, sb)
        return _emu.add_i8(a, b, sa, sb, so), so
    return _emu.add_i8(a, b, sa, sb, chk.scale("out_scale", out_scale))


def reference(a: np.ndarray, b: np.ndarray, *, a_scale: float | None = None,
              b_scale: float | None = None, out_scale: float | None = None) -> Any:
    """numpy reference, same signature and results (bit for bit) as add()."""
    a, b = _check_pair(a, b)
    if a.dtype == np.float32:
        if a_scale is not None or b_scale is not None or out_scale is not None:
            raise ValueError("scales must be None for float32 add")
        return (a + b).astype(np.float32)
    if a_scale is None or b_scale is None:
        raise ValueError("a_scale and b_scale are required for int8 add")
    dynamic = out_scale is None
    so = dynamic_out_scale(a_scale, b_scale) if dynamic else out_scale
    ma, mb, e = requant(a_scale, b_scale, so)
    acc = a.astype(np.int64) * ma + b.astype(np.int64) * mb + (1 << (e - 1))
    c = np.clip(acc >> e, -127, 127).astype(np.int8)
    return (c, so) if dynamic else c


# --- stage interface (kernels/STAGES.md) ---------------------------------------------


def _transposed(a: Any) -> np.ndarray:
    a = chk.array("a", a, (np.float32,), ndim=3)
    return np.ascontiguousarray(a.transpose(0, 2, 1))


def _call(fn: Any, inputs: Sequence[np.ndarray], attrs: Attrs,
          table: np.ndarray | None = None) -> list[np.ndarray]:
    dynamic = chk.is_dynamic(attrs)
    if table is not None or attrs.get("transpose_a"):
        # position add: float32 only, b the constant table (or the second input)
        if table is None:
            chk.count("add (transposed a)", inputs, 2)
            table = inputs[1]
        else:
            chk.count("add (constant b)", inputs, 1)
        a = _transposed(inputs[0]) if attrs.get("transpose_a") else inputs[0]
        return [fn(a, table)]
    first = inputs[0] if inputs else None
    if isinstance(first, np.ndarray) and first.dtype == np.int8:
        if dynamic:
            chk.count("add (int8, dynamic)", inputs, 4)
            c, s = fn(inputs[0], inputs[2], a_scale=chk.scale_buffer("a_scale", inputs[1]),
                      b_scale=chk.scale_buffer("b_scale", inputs[3]))
            return [c, chk.scale_out(s)]
        chk.count("add (int8)", inputs, 2)
        return [fn(inputs[0], inputs[1], a_scale=chk.required(attrs, "a_scale"),
                   b_scale=chk.required(attrs, "b_scale"), out_scale=chk.required(attrs, "out_scale"))]
    chk.count("add", inputs, 2)
    return [fn(inputs[0], inputs[1])]


TABLE_ROW_TILE = 32  # kernels/fused/conv_frontend: 4 columns x 8 positions per tile


@dataclass(frozen=True)
class AddState:
    """What a prepared add stage holds: the static int8 requant integers, or the
    constant float32 b (position table); at most one of them."""

    requant: tuple[int, int, int] | None = None
    table: np.ndarray | None = None


def prepare(consts: Consts, attrs: Attrs) -> AddState:
    """Through the device bytes: prepare_device(device_constants(consts, attrs))."""
    return prepare_device(device_constants(consts, attrs), attrs)


def prepare_device(blobs: list[np.ndarray], attrs: Attrs) -> AddState:
    """The state from exactly the NPU weights BO content: (ma, mb, shift) for a
    static int8 add, the float32 table for a constant-b add. The emulator kernel
    derives the int8 integers from the attrs' scales with the one C++ builder
    (add::make_add_requant); a BO whose integers disagree is refused, never
    silently ignored."""
    want = device_constants({}, attrs)
    if want:
        if len(blobs) != 1:
            raise ValueError(f"add device constants: expected 1 blob, got {len(blobs)}")
        got = chk.array("requant", blobs[0], (np.int32,), ndim=1)
        if got.tobytes() != want[0].tobytes():
            raise ValueError(f"add requant block {got.tolist()} disagrees with the stage attrs "
                             f"(expected {want[0].tolist()})")
        ma, mb, e = (int(x) for x in got)
        return AddState(requant=(ma, mb, e))
    if not blobs:
        return AddState()
    if len(blobs) != 1:
        raise ValueError(f"add device constants: expected at most 1 blob, got {len(blobs)}")
    table = _table(blobs[0])
    rows = attrs.get("table_rows")
    if rows is not None:  # drop the tile padding device_constants added
        if table.ndim != 2 or table.shape[0] < int(rows):
            raise ValueError(f"add: the table blob {list(table.shape)} has fewer than "
                             f"table_rows={rows} rows")
        table = table[: int(rows)]
    return AddState(table=table)


def _table(b: Any) -> np.ndarray:
    return chk.array("b (constant)", b, (np.float32,), min_ndim=1)


def run(state: AddState, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    return _call(add, inputs, attrs, state.table if state is not None else None)


def stage_reference(consts: Consts, inputs: Sequence[np.ndarray],
                    attrs: Attrs) -> list[np.ndarray]:
    table = _table(consts["b"]) if "b" in consts else None
    return _call(reference, inputs, attrs, table)


def macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    """One add per output element."""
    return int(np.prod(shapes[0])) if shapes else 0


def device_constants(consts: Consts, attrs: Attrs) -> list[np.ndarray]:
    """int8 static: int32[3] (ma, mb, shift); a constant b: b as float32; otherwise
    nothing."""
    if "b" in consts:
        if "a_scale" in attrs or chk.is_dynamic(attrs):
            raise ValueError("add: a constant b is supported for float32 adds only")
        table = _table(consts["b"])
        rows = attrs.get("table_rows")
        if rows is not None:
            # zero rows up to whole TABLE_ROW_TILE tiles: the conv_frontend design reads
            # the table per 32-position tile, padded positions included
            if table.ndim != 2 or table.shape[0] != int(rows):
                raise ValueError(f"add: table_rows={rows} but the table has shape "
                                 f"{list(table.shape)}")
            pad = -table.shape[0] % TABLE_ROW_TILE
            table = np.concatenate([table, np.zeros((pad, table.shape[1]), np.float32)])
        return [np.ascontiguousarray(table)]
    if "a_scale" in attrs and not chk.is_dynamic(attrs):
        ma, mb, e = requant(attrs["a_scale"], attrs["b_scale"], chk.required(attrs, "out_scale"))
        return [np.array([ma, mb, e], dtype=np.int32)]
    return []


def output_specs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                 attrs: Attrs) -> list[BufferSpec]:
    """The broadcast shape of a and b (an input or the constant 'b') in a's dtype,
    plus the [1] float32 scale of a dynamic int8 add; the position form
    (transpose_a) turns a [B, C, T] into [B, T, C] float32."""
    a = ins[0]
    if attrs.get("transpose_a"):
        if len(a.shape) != 3:
            raise ValueError(f"add (transpose_a): a must be [B, C, T], got {list(a.shape)}")
        return [BufferSpec("float32", (a.shape[0], a.shape[2], a.shape[1]))]
    dynamic_int8 = a.dtype == "int8" and attrs.get("dynamic", False) and len(ins) > 2
    b = ins[2] if dynamic_int8 else ins[1] if len(ins) > 1 else consts.get("b")
    if b is None:
        raise ValueError("add: b is neither an input nor a constant 'b'")
    out = [BufferSpec(a.dtype, tuple(np.broadcast_shapes(a.shape, b.shape)))]
    return out + [BufferSpec("float32", (1,))] if dynamic_int8 else out


SPEC = register(KernelSpec(
    name="add", prepare=prepare, run=run, reference=stage_reference, macs=macs,
    device_constants=device_constants, prepare_device=prepare_device,
    output_specs=output_specs,
))
