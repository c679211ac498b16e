"""GELU kernel: int8 -> int8 through a 256-entry table (kernels/gelu/README.md).

The table is built in exactly one place, the C++ function behind
``_emulator.gelu_table`` (kernels/gelu/gelu.h), so the compiler, the emulator,
the NPU constants and the numpy reference all use the same bytes. Applying the
table is the kernel; the reference applies it with numpy indexing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import checks as chk
from .registry import Attrs, BufferSpec, Consts, KernelSpec, register

APPROXIMATIONS = ("none", "tanh")
TABLE_SIZE = 256
TABLE_OFFSET = 128  # table index = q + 128


def build_table(in_scale: float, out_scale: float, approximate: str = "none",
                out_offset: float = 0.0) -> np.ndarray:
    """int8[256] table: entry q+128 = sat127(rint((gelu(q * in_scale) - out_offset) / out_scale)).

    out_offset (static mode) centres GELU's lopsided output range [-0.17, max] on
    the int8 codes; the consumer adds it back (compile/build.py folds it into the
    next matmul's bias)."""
    approximate = chk.choice("approximate", approximate, APPROXIMATIONS)
    return _emu.gelu_table(chk.scale("in_scale", in_scale), chk.scale("out_scale", out_scale),
                           approximate, float(out_offset))


def gelu_float(x: np.ndarray, approximate: str) -> np.ndarray:
    """GELU in float64 (erf form or tanh form, as ONNX Gelu defines them).

    Not the kernel: compile/ uses it to find the range a static GELU output can
    take (the centred-output pass), before any table exists."""
    x = np.asarray(x, np.float64)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def dynamic_out_scale(in_scale: float, approximate: str = "none", qmin: int = -127,
                      qmax: int = 127) -> float:
    """Dynamic mode's output scale: max |gelu(q s)| over the input's codes q = qmin..qmax,
    / 127 (fp32; gelu.h dynamic_out_scale). The defaults (the whole int8 range) give
    the scale of kernel_version 1, max(|gelu(127 s)|, |gelu(-127 s)|) / 127."""
    approximate = chk.choice("approximate", approximate, APPROXIMATIONS)
    return float(_emu.gelu_dynamic_out_scale(chk.scale("in_scale", in_scale), int(qmin),
                                             int(qmax), approximate))


def code_range(x: np.ndarray) -> tuple[int, int]:
    """(smallest, largest) int8 code of x: what the dynamic output scale covers."""
    x = chk.array("x", x, (np.int8,))
    if x.size == 0:
        raise ValueError("x is empty")
    return int(x.min()), int(x.max())


def _table(table: Any) -> np.ndarray:
    t = chk.array("table", table, (np.int8,), ndim=1)
    if t.shape != (TABLE_SIZE,):
        raise ValueError(f"table must have shape (256,), got {t.shape}")
    return t


def gelu(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Static GELU on the emulator: y = table[x + 128]."""
    return _emu.gelu_apply(chk.array("x", x, (np.int8,)), _table(table))


def gelu_dynamic(x: np.ndarray, in_scale: float,
                 approximate: str = "none") -> tuple[np.ndarray, float]:
    """Dynamic GELU on the emulator: table built from in_scale; returns (y, out_scale)."""
    x = chk.array("x", x, (np.int8,))
    approximate = chk.choice("approximate", approximate, APPROXIMATIONS)
    y, out_scale = _emu.gelu_dynamic(x, chk.scale("in_scale", in_scale), approximate)
    return y, float(out_scale)


def reference(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """numpy reference of the static kernel."""
    x = chk.array("x", x, (np.int8,))
    return _table(table)[x.astype(np.int16) + TABLE_OFFSET]


def reference_dynamic(x: np.ndarray, in_scale: float,
                      approximate: str = "none") -> tuple[np.ndarray, float]:
    """numpy reference of the dynamic kernel: the code range in numpy, the scale and
    table from the one builder (gelu.h)."""
    qmin, qmax = code_range(x)
    out_scale = dynamic_out_scale(in_scale, approximate, qmin, qmax)
    return reference(x, build_table(in_scale, out_scale, approximate)), out_scale


# --- stage interface (kernels/STAGES.md) ---------------------------------------------


@dataclass(frozen=True)
class GeluState:
    approximate: str
    dynamic: bool
    table: np.ndarray | None  # static mode only


def _approx(attrs: Attrs) -> str:
    return chk.choice("attrs['approximate']", attrs.get("approximate", "none"), APPROXIMATIONS)


def _static_table(consts: Consts, attrs: Attrs) -> np.ndarray:
    if "table" in consts:
        return _table(consts["table"])
    return build_table(chk.required(attrs, "in_scale"), chk.required(attrs, "out_scale"), _approx(attrs),
                       float(attrs.get("out_offset", 0.0)))


def prepare(consts: Consts, attrs: Attrs) -> GeluState:
    """Through the device bytes: prepare_device(device_constants(consts, attrs))."""
    return prepare_device(device_constants(consts, attrs), attrs)


def prepare_device(blobs: list[np.ndarray], attrs: Attrs) -> GeluState:
    """The emulator state from exactly the NPU weights BO content: the static
    table (dynamic mode has no device constants: the core builds it per call)."""
    if chk.is_dynamic(attrs):
        if blobs:
            raise ValueError(f"gelu (dynamic) has no device constants, got {len(blobs)} blob(s)")
        return GeluState(_approx(attrs), True, None)
    if len(blobs) != 1:
        raise ValueError(f"gelu device constants: expected the int8[256] table, got "
                         f"{len(blobs)} blob(s)")
    return GeluState(_approx(attrs), False, _table(blobs[0]))


def run(state: GeluState, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    if state.dynamic:
        chk.count("gelu (dynamic)", inputs, 2)
        y, s = gelu_dynamic(inputs[0], chk.scale_buffer("x_scale", inputs[1]), state.approximate)
        return [y, chk.scale_out(s)]
    chk.count("gelu", inputs, 1)
    assert state.table is not None
    return [gelu(inputs[0], state.table)]


def stage_reference(consts: Consts, inputs: Sequence[np.ndarray],
                    attrs: Attrs) -> list[np.ndarray]:
    if chk.is_dynamic(attrs):
        chk.count("gelu (dynamic)", inputs, 2)
        y, s = reference_dynamic(inputs[0], chk.scale_buffer("x_scale", inputs[1]),
                                 _approx(attrs))
        return [y, chk.scale_out(s)]
    chk.count("gelu", inputs, 1)
    return [reference(inputs[0], _static_table(consts, attrs))]


def macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    """No multiply-accumulates; one table lookup per element (reported as 1 op each)."""
    return int(np.prod(shapes[0])) if shapes else 0


def device_constants(consts: Consts, attrs: Attrs) -> list[np.ndarray]:
    """Static: the int8[256] table. Dynamic: none (the core builds it per call)."""
    if chk.is_dynamic(attrs):
        return []
    return [np.ascontiguousarray(_static_table(consts, attrs))]


def output_specs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                 attrs: Attrs) -> list[BufferSpec]:
    """int8 codes of x's shape, plus the [1] float32 scale in dynamic mode."""
    out = [BufferSpec("int8", ins[0].shape)]
    return out + [BufferSpec("float32", (1,))] if attrs.get("dynamic", False) else out


SPEC = register(KernelSpec(
    name="gelu", prepare=prepare, run=run, reference=stage_reference, macs=macs,
    device_constants=device_constants, prepare_device=prepare_device,
    output_specs=output_specs,
))
