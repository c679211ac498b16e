"""Elementwise add kernel (kernels/add/README.md): fp32 + fp32, or int8 + int8
with rescale to the output scale through one fixed-point multiply per operand.

b may have a's shape or a suffix of it (repeated over a's leading dims: a
residual stream plus a per-position table, for example).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import _argcheck as chk
from .registry import Attrs, Consts, KernelSpec, register


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a = chk.array("a", a, (np.float32, np.int8), min_ndim=1)
    b = chk.array("b", b, (np.float32, np.int8), min_ndim=1)
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    if b.ndim > a.ndim or a.shape[a.ndim - b.ndim:] != b.shape:
        raise ValueError(f"b's shape {b.shape} must equal a's shape {a.shape} or a suffix of it")
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


def _call(fn: Any, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    dynamic = chk.is_dynamic(attrs)
    first = inputs[0] if inputs else None
    if isinstance(first, np.ndarray) and first.dtype == np.int8:
        if dynamic:
            chk.count("add (int8, dynamic)", inputs, 4)
            c, s = fn(inputs[0], inputs[2], a_scale=chk.scale_buffer("a_scale", inputs[1]),
                      b_scale=chk.scale_buffer("b_scale", inputs[3]))
            return [c, chk.scale_out(s)]
        chk.count("add (int8)", inputs, 2)
        return [fn(inputs[0], inputs[1], a_scale=chk.attr(attrs, "a_scale"),
                   b_scale=chk.attr(attrs, "b_scale"), out_scale=chk.attr(attrs, "out_scale"))]
    chk.count("add", inputs, 2)
    return [fn(inputs[0], inputs[1])]


def prepare(consts: Consts, attrs: Attrs) -> tuple[int, int, int] | None:
    """Through the device bytes: prepare_device(device_constants(consts, attrs))."""
    return prepare_device(device_constants(consts, attrs), attrs)


def prepare_device(blobs: list[np.ndarray], attrs: Attrs) -> tuple[int, int, int] | None:
    """The state from exactly the NPU weights BO content: (ma, mb, shift) for a
    static int8 add, None otherwise. The emulator kernel derives the same
    integers from the attrs' scales with the one C++ builder (add::make_add_requant);
    a BO whose integers disagree is refused, never silently ignored."""
    want = device_constants({}, attrs)
    if len(blobs) != len(want):
        raise ValueError(f"add device constants: expected {len(want)} blob(s), got {len(blobs)}")
    if not want:
        return None
    got = chk.array("requant", blobs[0], (np.int32,), ndim=1)
    if got.tobytes() != want[0].tobytes():
        raise ValueError(f"add requant block {got.tolist()} disagrees with the stage attrs "
                         f"(expected {want[0].tolist()})")
    ma, mb, e = (int(x) for x in got)
    return ma, mb, e


def run(state: tuple[int, int, int] | None, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    return _call(add, inputs, attrs)


def stage_reference(consts: Consts, inputs: Sequence[np.ndarray],
                    attrs: Attrs) -> list[np.ndarray]:
    return _call(reference, inputs, attrs)


def macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    """One add per output element."""
    return int(np.prod(shapes[0])) if shapes else 0


def device_constants(consts: Consts, attrs: Attrs) -> list[np.ndarray]:
    """int8 static: int32[3] (ma, mb, shift); otherwise nothing."""
    if "a_scale" in attrs and not chk.is_dynamic(attrs):
        ma, mb, e = requant(attrs["a_scale"], attrs["b_scale"], chk.attr(attrs, "out_scale"))
        return [np.array([ma, mb, e], dtype=np.int32)]
    return []


SPEC = register(KernelSpec(
    name="add", prepare=prepare, run=run, reference=stage_reference, macs=macs,
    device_constants=device_constants, prepare_device=prepare_device,
))
