"""1-D convolution kernel (Whisper's audio front end) as quantize -> im2col ->
int8 GEMM -> fp32 epilogue (kernels/conv1d/README.md). ONNX Conv semantics:
zero padding `pad` on both ends, `stride`, no dilation, one group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import checks as chk
from .registry import Attrs, BufferSpec, Consts, KernelSpec, register

MAX_K = 65536  # same bound as the matmul kernel: |acc| < 2^31 whatever the order


@dataclass(frozen=True)
class _Args:
    x: np.ndarray
    weight: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int
    in_scale: float | None


def out_length(t: int, kw: int, stride: int, pad: int) -> int:
    """ONNX Conv output length floor((T + 2 pad - Kw) / stride) + 1."""
    return (t + 2 * pad - kw) // stride + 1


def _int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


def _check(x: Any, weight: Any, w_scale: Any, bias: Any, stride: Any, pad: Any,
           in_scale: Any) -> _Args:
    x = chk.array("x", x, (np.float32,), ndim=3)
    weight = chk.array("weight", weight, (np.int8,), ndim=3)
    cout, cin, kw = weight.shape
    if x.shape[1] != cin:
        raise ValueError(f"x has Cin={x.shape[1]} but weight expects {cin} (weight {weight.shape})")
    if cin * kw > MAX_K:
        raise ValueError(f"Cin*Kw={cin * kw} exceeds {MAX_K} (int32 accumulator bound)")
    if (weight == -128).any():
        raise ValueError("weight values must lie in [-127, 127]")
    w_scale = chk.array("w_scale", w_scale, (np.float32,), ndim=1)
    if w_scale.shape != (cout,):
        raise ValueError(f"w_scale must have shape ({cout},), got {w_scale.shape}")
    if not (np.isfinite(w_scale).all() and (w_scale > 0).all()):
        raise ValueError("w_scale must be positive and finite")
    if bias is None:
        bias = np.zeros(cout, dtype=np.float32)
    bias = chk.array("bias", bias, (np.float32,), ndim=1)
    if bias.shape != (cout,):
        raise ValueError(f"bias must have shape ({cout},), got {bias.shape}")
    stride = _int("stride", stride, 1)
    pad = _int("pad", pad, 0)
    if out_length(x.shape[2], kw, stride, pad) < 1:
        raise ValueError(f"x's length T={x.shape[2]} is too short for Kw={kw}, pad={pad}")
    chk.finite("x", x)
    si = None if in_scale is None else chk.scale("in_scale", in_scale)
    return _Args(x, weight, w_scale, bias, stride, pad, si)


def conv1d(x: np.ndarray, weight: np.ndarray, w_scale: np.ndarray,
           bias: np.ndarray | None = None, *, stride: int = 1, pad: int = 0,
           in_scale: float | None = None) -> np.ndarray:
    """Conv1d on the emulator. in_scale None = dynamic (max|x| / 127)."""
    a = _check(x, weight, w_scale, bias, stride, pad, in_scale)
    return _emu.conv1d(a.x, a.weight, a.w_scale, a.bias, a.stride, a.pad, a.in_scale)


def dynamic_in_scale(x: np.ndarray) -> float:
    """max|x| / 127 in fp32; 1.0 when that is 0 or its inverse overflows (the
    dynamic quantize kernel's rule, kernels/quantize/quantize.h)."""
    s = np.float32(np.abs(x).max()) / np.float32(127.0)
    with np.errstate(divide="ignore", over="ignore"):
        ok = s > 0 and np.isfinite(np.float32(1.0) / s)
    return float(s) if ok else 1.0


def reference(x: np.ndarray, weight: np.ndarray, w_scale: np.ndarray,
              bias: np.ndarray | None = None, *, stride: int = 1, pad: int = 0,
              in_scale: float | None = None) -> np.ndarray:
    """numpy reference, bit for bit equal to conv1d()."""
    a = _check(x, weight, w_scale, bias, stride, pad, in_scale)
    si = dynamic_in_scale(a.x) if a.in_scale is None else a.in_scale
    inv = np.float32(1.0) / np.float32(si)
    q = np.clip(np.rint(a.x * inv), -127, 127).astype(np.int64)
    b, _, t = q.shape
    cout, cin, kw = a.weight.shape
    tout = out_length(t, kw, a.stride, a.pad)
    qp = np.pad(q, ((0, 0), (0, 0), (a.pad, a.pad + kw)))  # zeros past both ends
    pos = np.arange(tout)[:, None] * a.stride + np.arange(kw)[None, :]  # [Tout, Kw]
    col = qp[:, :, pos]  # [B, Cin, Tout, Kw]
    col = col.transpose(0, 2, 1, 3).reshape(b, tout, cin * kw)
    acc = col @ a.weight.reshape(cout, cin * kw).astype(np.int64).T  # [B, Tout, Cout]
    scale = np.float32(si) * a.w_scale  # fp32 multiply per channel
    y = acc.astype(np.int32).astype(np.float32) * scale + a.bias
    return np.ascontiguousarray(y.transpose(0, 2, 1)).astype(np.float32)


# --- stage interface (kernels/STAGES.md) ---------------------------------------------


@dataclass(frozen=True)
class Conv1dState:
    weight: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray


def _consts(consts: Consts) -> Conv1dState:
    weight = chk.array("consts['weight']", consts.get("weight"), (np.int8,), ndim=3)
    w_scale = chk.array("consts['w_scale']", consts.get("w_scale"), (np.float32,), ndim=1)
    bias = consts.get("bias")
    if bias is None:
        bias = np.zeros(weight.shape[0], dtype=np.float32)
    return Conv1dState(weight, w_scale, bias)


def _kw(attrs: Attrs) -> dict[str, Any]:
    return {
        "stride": attrs.get("stride", 1),
        "pad": attrs.get("pad", 0),
        "in_scale": None if chk.is_dynamic(attrs) else chk.required(attrs, "in_scale"),
    }


def _out(attrs: Attrs) -> None:
    chk.choice("attrs['out']", attrs.get("out", "float32"), ("float32",))


def prepare(consts: Consts, attrs: Attrs) -> Conv1dState:
    """Through the device bytes: prepare_device(device_constants(consts, attrs)),
    with the weight blob viewed in its program shape [Cout, Cin, Kw] (same bytes)."""
    _out(attrs)
    st = prepare_device(device_constants(consts, attrs), attrs)
    return Conv1dState(st.weight.reshape(consts["weight"].shape), st.w_scale, st.bias)


def prepare_device(blobs: list[np.ndarray], attrs: Attrs) -> Conv1dState:
    """The emulator state from exactly the NPU weights BO content [weight
    [Cout, Cin*Kw], w_scale, bias, (static) scalars]. The BO does not say how
    Cin*Kw splits, so run() takes Cin from x (the launch's input shape). The
    static scalar block must match attrs['in_scale'] (the emulator takes the
    scale as an argument); a disagreeing block is refused."""
    _out(attrs)
    static = not chk.is_dynamic(attrs) and "in_scale" in attrs
    if len(blobs) != 3 + static:
        raise ValueError(f"conv1d device constants: expected {3 + static} blob(s), got "
                         f"{len(blobs)}")
    weight = chk.array("weight", blobs[0], (np.int8,), ndim=2)
    w_scale = chk.array("w_scale", blobs[1], (np.float32,), ndim=1)
    bias = chk.array("bias", blobs[2], (np.float32,), ndim=1)
    if static:
        si = np.float32(chk.scale("in_scale", attrs["in_scale"]))
        want = np.array([si, np.float32(1.0) / si], dtype=np.float32)
        got = chk.array("scalars", blobs[3], (np.float32,), ndim=1)
        if got.tobytes() != want.tobytes():
            raise ValueError(f"conv1d scalar block {got.tolist()} disagrees with "
                             f"attrs['in_scale'] (expected {want.tolist()})")
    return Conv1dState(weight, w_scale, bias)


def _weight_for(state: Conv1dState, x: Any) -> np.ndarray:
    """The [Cout, Cin, Kw] weight: as prepared, or (device-blob state) split by x's Cin."""
    w = state.weight
    if w.ndim == 3:
        return w
    x = chk.array("x", x, (np.float32,), ndim=3)
    cin = x.shape[1]
    if w.shape[1] % cin:
        raise ValueError(f"x has Cin={cin}, which does not divide the weight's Cin*Kw="
                         f"{w.shape[1]}")
    return w.reshape(w.shape[0], cin, w.shape[1] // cin)


def run(state: Conv1dState, inputs: Sequence[np.ndarray], attrs: Attrs) -> list[np.ndarray]:
    chk.count("conv1d", inputs, 1)
    weight = _weight_for(state, inputs[0])
    return [conv1d(inputs[0], weight, state.w_scale, state.bias, **_kw(attrs))]


def stage_reference(consts: Consts, inputs: Sequence[np.ndarray],
                    attrs: Attrs) -> list[np.ndarray]:
    chk.count("conv1d", inputs, 1)
    _out(attrs)
    st = _consts(consts)
    return [reference(inputs[0], st.weight, st.w_scale, st.bias, **_kw(attrs))]


def macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    """B * Cout * Tout * Cin * Kw."""
    b, _, t = shapes[0]
    cout, cin, kw = consts["weight"].shape
    tout = out_length(t, kw, int(attrs.get("stride", 1)), int(attrs.get("pad", 0)))
    return int(b) * cout * max(tout, 0) * cin * kw


def device_constants(consts: Consts, attrs: Attrs) -> list[np.ndarray]:
    """weight as int8 [Cout, Cin*Kw] (the GEMM's transposed-B rows), w_scale, bias,
    and (static mode) the core's scalar block float32[2] {in_scale, 1/in_scale}."""
    st = _consts(consts)
    cout = st.weight.shape[0]
    out = [np.ascontiguousarray(st.weight.reshape(cout, -1)), st.w_scale,
           np.ascontiguousarray(st.bias, dtype=np.float32)]
    if not chk.is_dynamic(attrs) and "in_scale" in attrs:
        si = np.float32(chk.scale("in_scale", attrs["in_scale"]))
        out.append(np.array([si, np.float32(1.0) / si], dtype=np.float32))
    return out


def output_specs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                 attrs: Attrs) -> list[BufferSpec]:
    """float32 [B, Cout, Tout] from x [B, Cin, T] and weight [Cout, Cin, Kw]."""
    x = ins[0]
    w = consts.get("weight")
    if w is None or len(w.shape) != 3 or len(x.shape) != 3:
        raise ValueError("conv1d: x [B, Cin, T] and constant 'weight' [Cout, Cin, Kw] required")
    cout, _, kw = w.shape
    tout = (x.shape[2] + 2 * int(attrs.get("pad", 0)) - kw) // int(attrs.get("stride", 1)) + 1
    if tout <= 0:
        raise ValueError(f"conv1d: output length {tout} <= 0 for T={x.shape[2]}, Kw={kw}")
    return [BufferSpec("float32", (x.shape[0], cout, tout))]


SPEC = register(KernelSpec(
    name="conv1d", prepare=prepare, run=run, reference=stage_reference, macs=macs,
    device_constants=device_constants, prepare_device=prepare_device,
    output_specs=output_specs,
))
