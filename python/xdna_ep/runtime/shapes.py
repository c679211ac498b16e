"""Output buffer shapes and dtypes of a stage, known *before* it runs.

The emulator learns output shapes by running the kernel, but an NPU launch
needs its output buffer object allocated, at the right size, before the
command is submitted. These rules restate the output column of
kernels/STAGES.md. A KernelSpec that carries its own ``output_specs`` callable
(same signature as the rules here) takes precedence, so kernel authors can
keep the knowledge next to the kernel; the table is the fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BufferSpec:
    """dtype + concrete shape of one buffer."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * int(np.prod(self.shape, dtype=np.int64)))

    @classmethod
    def of(cls, a: np.ndarray) -> BufferSpec:
        return cls(str(a.dtype), tuple(int(d) for d in a.shape))


OutputRule = Callable[[Sequence[BufferSpec], dict[str, BufferSpec], dict[str, Any]],
                      list[BufferSpec]]

_SCALE = BufferSpec("float32", (1,))


def _dynamic(attrs: dict[str, Any]) -> bool:
    return bool(attrs.get("dynamic", False))


def _out_dtype(attrs: dict[str, Any], default: str) -> str:
    out = attrs.get("out", default)
    if out not in ("int8", "float32"):
        raise ValueError(f"attrs['out'] must be 'int8' or 'float32', got {out!r}")
    return str(out)


def _quantize(ins, consts, attrs):
    out = [BufferSpec("int8", ins[0].shape)]
    return out + [_SCALE] if _dynamic(attrs) else out


def _dequantize(ins, consts, attrs):
    return [BufferSpec("float32", ins[0].shape)]


def _matmul(ins, consts, attrs):
    w = consts.get("weight")
    if w is None or len(w.shape) != 2:
        raise ValueError("matmul: constant 'weight' [K, N] is required to size the output")
    k, n = w.shape
    if ins[0].shape[-1] != k:
        raise ValueError(f"matmul: input last dim {ins[0].shape[-1]} != weight K {k}")
    return [BufferSpec(_out_dtype(attrs, "float32"), (*ins[0].shape[:-1], n))]


def _elementwise_int8(ins, consts, attrs):
    out = [BufferSpec("int8", ins[0].shape)]
    return out + [_SCALE] if _dynamic(attrs) else out


def _layernorm(ins, consts, attrs):
    return [BufferSpec(_out_dtype(attrs, "float32"), ins[0].shape)]


def _softmax(ins, consts, attrs):
    return [BufferSpec("int8", ins[0].shape)]


def _attention(ins, consts, attrs):
    return [BufferSpec(_out_dtype(attrs, "float32"), ins[0].shape)]


def _add(ins, consts, attrs):
    a = ins[0]
    if attrs.get("transpose_a"):  # position form: a [B, C, T] -> c [B, T, C]
        if len(a.shape) != 3:
            raise ValueError(f"add (transpose_a): a must be [B, C, T], got {list(a.shape)}")
        return [BufferSpec("float32", (a.shape[0], a.shape[2], a.shape[1]))]
    b = ins[2] if a.dtype == "int8" and _dynamic(attrs) and len(ins) > 2 else ins[1]
    return [BufferSpec(a.dtype, tuple(np.broadcast_shapes(a.shape, b.shape)))]


def _conv1d(ins, consts, attrs):
    x = ins[0]
    w = consts.get("weight")
    if w is None or len(w.shape) != 3 or len(x.shape) != 3:
        raise ValueError("conv1d: x [B, Cin, T] and constant 'weight' [Cout, Cin, Kw] required")
    cout, _, kw = w.shape
    stride, pad = int(attrs.get("stride", 1)), int(attrs.get("pad", 0))
    tout = (x.shape[2] + 2 * pad - kw) // stride + 1
    if tout <= 0:
        raise ValueError(f"conv1d: output length {tout} <= 0 for T={x.shape[2]}, Kw={kw}")
    return [BufferSpec("float32", (x.shape[0], cout, tout))]


OUTPUT_RULES: dict[str, OutputRule] = {
    "quantize": _quantize,
    "dequantize": _dequantize,
    "matmul": _matmul,
    "gelu": _elementwise_int8,
    "layernorm": _layernorm,
    "softmax": _softmax,
    "attention": _attention,
    "add": _add,
    "conv1d": _conv1d,
}


def register_output_rule(kernel: str, rule: OutputRule) -> None:
    """Adds the output rule of a kernel the table does not know (tests, new kernels)."""
    OUTPUT_RULES[kernel] = rule


def unregister_output_rule(kernel: str) -> None:
    OUTPUT_RULES.pop(kernel, None)


def output_specs(kernel: str, spec: object, inputs: Sequence[BufferSpec],
                 consts: dict[str, np.ndarray], attrs: dict[str, Any]) -> list[BufferSpec]:
    """The output buffers one stage will write, from its input buffers."""
    cspecs = {role: BufferSpec.of(np.asarray(a)) for role, a in consts.items()}
    own = getattr(spec, "output_specs", None)
    if callable(own):
        return [BufferSpec(str(np.dtype(b.dtype)), tuple(int(d) for d in b.shape))
                for b in own(list(inputs), cspecs, attrs)]
    rule = OUTPUT_RULES.get(kernel)
    if rule is None:
        raise NotImplementedError(
            f"no output-shape rule for kernel {kernel!r}: the NPU path must size output "
            "buffers before a launch; add `output_specs` to its KernelSpec or "
            "register_output_rule()")
    return rule(list(inputs), cspecs, attrs)
