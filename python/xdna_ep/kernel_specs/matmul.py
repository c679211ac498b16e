"""matmul: int8 activations [M, K] x int8 weights [K, N] with per-output-channel
weight scales, exact int32 accumulation, and an int8 (requantized) or float32
(dequantized) output. Byte-level contract: kernels/matmul/README.md.

Modes (kernels/STAGES.md):
  static, out="int8":    y = requantize(acc + bias_i32[n], make_requant(s_a * w_s[n] / s_y))
  static, out="float32": y = float32(acc) * (f32(s_a) * w_s[n]) + bias[n]
  dynamic (out float32): as above with s_a read from the a_scale buffer per call

float32 input (static mode only): `a` may be float32 [M, K]; the kernel
quantizes it with the quantize kernel's rule (sat127(rint(a * (1/in_scale)))),
bit for bit what a separate quantize stage would give. Why: when a float
tensor must also leave the region (e.g. a layernorm output that a CPU Shape
node reads), its int8 copy would otherwise need its own quantize launch
between the producer and the matmul, breaking the fused design chain.

Split outputs (fused q/k/v projections): `attrs["split"] = [N0, N1, ...]`
(sum N) makes the stage emit one output per contiguous column block
[..., Ni]; for int8 output `attrs["out_scales"] = [s0, s1, ...]` gives each
block its own output scale (the requantization (m, e) of every column comes
from its block's scale). The epilogue writes each block straight into its
own array (no full-width temporary).

The per-channel constants (multiplier, shift, int32 bias, float32 scale) are
derived here once, in `channel_params`, and shared by reference() and
device_constants(); prepare() rebuilds the emulator state from exactly the
device_constants blobs (prepare_device), so the emulator and the NPU receive
the same bytes by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._native import emulator as _emu
from . import checks as v
from . import quantize as _quant
from .registry import Arrays, Attrs, BufferSpec, Consts, KernelSpec, register

MAX_K = 65536  # |acc| + |bias_i32| < 2^31 (kernels/matmul/README.md)
MAX_BIAS_I32 = 1 << 30
OUTS = ("int8", "float32")
# compile/ fuses the q/k/v projections into one stage when this is True
# (compile/api.py: CompileOptions.fuse_qkv=None).
SUPPORTS_SPLIT = True


# ------------------------------------------------------------- constants
def make_requant(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised numpy mirror of xdna::make_requant (kernels/common/epilogue.h):
    real scale s > 0 -> (m, e) with s ~= m * 2^-e, m in [2^30, 2^31), e in 1..62."""
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("requantization scales must be finite and > 0")
    frac, exp2 = np.frexp(s)  # s = frac * 2^exp2, frac in [0.5, 1)
    x = frac * 2147483648.0  # exact: a power-of-two scaling
    m = np.floor(x)
    m = (m + ((x - m) >= 0.5)).astype(np.int64)  # llround: half away from zero (x > 0)
    exp2 = exp2.astype(np.int64)
    top = m == (1 << 31)
    m = np.where(top, m >> 1, m)
    exp2 = np.where(top, exp2 + 1, exp2)
    e = 31 - exp2
    big = e < 1
    m = np.where(big, (1 << 31) - 1, m)
    e = np.where(big, 1, e)
    over = np.maximum(e - 62, 0)  # tiny scales: drop precision until the shift fits
    m = m >> np.minimum(over, 63)
    e = e - over
    zero = m == 0
    e = np.where(zero, 62, e)
    return m.astype(np.int32), e.astype(np.int32)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """std::llround on float64 values (ties away from zero), as int64."""
    a = np.abs(x)
    f = np.floor(a)
    r = f + ((a - f) >= 0.5)
    return (np.sign(x) * r).astype(np.int64)


def quantize_weights_per_channel(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 weights [K, N] -> (int8 [K, N] in [-127, 127], float32 scales [N]).

    The compiler's quantizer (quantize.weights.quantize_per_channel, output
    channel = axis 1), after this wrapper's argument checks: one rounding rule
    for every caller."""
    from ..quantize.weights import quantize_per_channel

    w = v.array("w", w, np.float32, ndim=2)
    if not np.isfinite(w).all():
        raise ValueError("w contains NaN or inf")
    return quantize_per_channel(w, axis=1, name="w")


@dataclass(frozen=True)
class ChannelParams:
    """Per-output-channel epilogue constants of one matmul stage."""

    out: str            # "int8" | "float32"
    dynamic: bool
    K: int
    N: int
    mult: np.ndarray | None = None      # int32 [N]   (int8 out)
    shift: np.ndarray | None = None     # int32 [N]   (int8 out)
    bias_i32: np.ndarray | None = None  # int32 [N]   (int8 out)
    scale: np.ndarray | None = None     # float32 [N] (static float32 out)
    bias_f32: np.ndarray | None = None  # float32 [N] (float32 out)
    w_scale: np.ndarray | None = None   # float32 [N] (dynamic: scale = a_scale * w_scale)
    split: tuple[int, ...] | None = None  # column blocks, one output each (sum N)
    in_scale: np.float32 | None = None  # static mode: quantizes a float32 input


def _weights(consts: Consts) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if "weight" not in consts or "w_scale" not in consts:
        raise ValueError("matmul consts need 'weight' (int8 [K, N]) and 'w_scale' (float32 [N])")
    w = v.array("weight", consts["weight"], np.int8, ndim=2)
    K, N = w.shape
    if K > MAX_K:
        raise ValueError(f"weight: K = {K} exceeds the kernel limit {MAX_K}")
    if (w == -128).any():
        raise ValueError("weight must lie in [-127, 127] (narrow int8 range)")
    w_scale = v.scale_vector("w_scale", consts["w_scale"], N)
    bias = consts.get("bias")
    if bias is not None:
        bias = v.array("bias", bias, np.float32, ndim=1)
        if bias.shape[0] != N:
            raise ValueError(f"bias must have shape ({N},), got {bias.shape}")
        if not np.isfinite(bias).all():
            raise ValueError("bias contains NaN or inf")
    return w, w_scale, bias


def split_blocks(attrs: Attrs, n: int) -> tuple[int, ...] | None:
    """attrs["split"] validated against N: positive ints summing to n (None if absent)."""
    split = attrs.get("split")
    if split is None:
        return None
    if isinstance(split, (str, bytes)) or not hasattr(split, "__iter__"):
        raise TypeError(f"attrs['split'] must be a list of ints, got {type(split).__name__}")
    blocks = []
    for x in split:
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"attrs['split'] must hold ints, got {x!r}")
        if x <= 0:
            raise ValueError(f"attrs['split'] block widths must be > 0, got {list(split)}")
        blocks.append(int(x))
    if not blocks or sum(blocks) != n:
        raise ValueError(f"attrs['split'] = {list(split)} must sum to the weight's N = {n}")
    return tuple(blocks)


def _column_out_scales(attrs: Attrs, split: tuple[int, ...] | None, n: int) -> np.ndarray:
    """float64 [N]: every column's output scale (its block's, for split outputs)."""
    if "out_scales" in attrs:
        scales = attrs["out_scales"]
        if split is None:
            raise ValueError("attrs['out_scales'] needs attrs['split'] (one scale per block)")
        if "out_scale" in attrs:
            raise ValueError("give attrs['out_scale'] or attrs['out_scales'], not both")
        if isinstance(scales, (str, bytes)) or len(scales) != len(split):
            raise ValueError(f"attrs['out_scales'] must hold {len(split)} scales (one per "
                             f"split block), got {scales!r}")
        per = [float(v.quantize_scale(f"attrs['out_scales'][{j}]", s)) for j, s in enumerate(scales)]
        return np.repeat(np.array(per, np.float64), split)
    out_scale = v.quantize_scale("attrs['out_scale']", v.required(attrs, "out_scale"))
    return np.full(n, float(out_scale), np.float64)


def channel_params(consts: Consts, attrs: Attrs) -> ChannelParams:
    """Validates a stage's consts/attrs and derives its epilogue constants."""
    w, w_scale, bias = _weights(consts)
    K, N = w.shape
    dynamic = v.flag(attrs, "dynamic")
    out = v.choice("attrs['out']", attrs.get("out", "float32" if dynamic else "int8"), OUTS)
    split = split_blocks(attrs, N)
    bias_f32 = bias if bias is not None else np.zeros(N, np.float32)
    if out != "int8" and "out_scales" in attrs:
        raise ValueError("attrs['out_scales'] applies only to out='int8'")
    if dynamic:
        if out != "float32":
            raise ValueError("attrs['out']: dynamic matmul supports only out='float32'")
        return ChannelParams(out, True, K, N, bias_f32=bias_f32, w_scale=w_scale, split=split)
    in_scale = v.quantize_scale("attrs['in_scale']", v.required(attrs, "in_scale"))
    if out == "float32":
        scale = (in_scale * w_scale).astype(np.float32)  # one fp32 multiply per channel
        return ChannelParams(out, False, K, N, scale=scale, bias_f32=bias_f32, split=split,
                             in_scale=in_scale)
    col_scale = _column_out_scales(attrs, split, N)
    acc_scale = float(in_scale) * w_scale.astype(np.float64)
    mult, shift = make_requant(acc_scale / col_scale)
    if bias is None:
        bias_i32 = np.zeros(N, np.int32)
    else:
        bq = round_half_away(bias.astype(np.float64) / acc_scale)
        bias_i32 = np.clip(bq, -MAX_BIAS_I32, MAX_BIAS_I32).astype(np.int32)
    return ChannelParams(out, False, K, N, mult=mult, shift=shift, bias_i32=bias_i32,
                         split=split, in_scale=in_scale)


# ------------------------------------------------------------------ stage
@dataclass(frozen=True)
class MatmulState:
    params: ChannelParams
    weights: Any  # _emulator.MatmulWeights (packed once)


def prepare(consts: Consts, attrs: Attrs) -> MatmulState:
    """Through the device bytes: state = prepare_device(device_constants(...))."""
    return prepare_device(device_constants(consts, attrs), attrs)


def prepare_device(blobs: list[np.ndarray], attrs: Attrs) -> MatmulState:
    """The emulator state from exactly the NPU weights BO content (device_constants):
    [0] int8 weight [Kp, Np], [1] epilogue words, [2] int32 (K, N)."""
    if len(blobs) != 3:
        raise ValueError(f"matmul device constants: expected 3 blobs, got {len(blobs)}")
    dims = v.array("dims", blobs[2], np.int32, ndim=1)
    if dims.shape != (2,):
        raise ValueError(f"dims must be int32 [2] (K, N), got shape {dims.shape}")
    K, N = int(dims[0]), int(dims[1])
    w_pad = v.array("weight", blobs[0], np.int8, ndim=2)
    if not (0 < K <= w_pad.shape[0] and 0 < N <= w_pad.shape[1]):
        raise ValueError(f"dims (K={K}, N={N}) do not fit the padded weight {w_pad.shape}")
    dynamic = v.flag(attrs, "dynamic")
    out = v.choice("attrs['out']", attrs.get("out", "float32" if dynamic else "int8"), OUTS)
    split = split_blocks(attrs, N)
    in_scale = None if dynamic else v.quantize_scale("attrs['in_scale']", v.required(attrs, "in_scale"))
    if out == "int8":
        if dynamic:
            raise ValueError("attrs['out']: dynamic matmul supports only out='float32'")
        words = v.array("params", blobs[1], np.int32, ndim=2)
        if words.shape != (3, w_pad.shape[1]):
            raise ValueError(f"params must be int32 [3, {w_pad.shape[1]}], got {words.shape}")
        params = ChannelParams(out, False, K, N, mult=words[0, :N].copy(),
                               shift=words[1, :N].copy(), bias_i32=words[2, :N].copy(),
                               split=split, in_scale=in_scale)
    else:
        words = v.array("params", blobs[1], np.float32, ndim=2)
        if words.shape != (2, w_pad.shape[1]):
            raise ValueError(f"params must be float32 [2, {w_pad.shape[1]}], got {words.shape}")
        row0, bias = words[0, :N].copy(), words[1, :N].copy()
        params = (ChannelParams(out, True, K, N, bias_f32=bias, w_scale=row0, split=split)
                  if dynamic else
                  ChannelParams(out, False, K, N, scale=row0, bias_f32=bias, split=split,
                                in_scale=in_scale))
    weight = np.ascontiguousarray(w_pad[:K, :N])
    return MatmulState(params, _emu.matmul_pack(weight))


def _split_inputs(params: ChannelParams, inputs: Sequence[np.ndarray]
                  ) -> tuple[np.ndarray, np.float32 | None]:
    v.count("matmul", inputs, 2 if params.dynamic else 1)
    first = inputs[0] if inputs else None
    if isinstance(first, np.ndarray) and first.dtype == np.float32:
        if params.dynamic:
            raise TypeError("a must have dtype int8 in dynamic mode (a float32 input needs "
                            "the static attrs['in_scale'])")
        a = v.array("a", first, np.float32, min_ndim=1)
    else:
        a = v.array("a", first, np.int8, min_ndim=1)
    if a.shape[-1] != params.K:
        raise ValueError(f"a has K = {a.shape[-1]} (last dim) but weight has K = {params.K}")
    a_scale = v.quantize_scale_buffer("a_scale", inputs[1]) if params.dynamic else None
    return a, a_scale


def _dynamic_scale(params: ChannelParams, a_scale: np.float32) -> np.ndarray:
    return (np.float32(a_scale) * params.w_scale).astype(np.float32)


def run(state: MatmulState, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    p = state.params
    a, a_scale = _split_inputs(p, inputs)
    if a.dtype == np.float32:  # static float32 input: the quantize kernel's own code
        a = _quant.quantize(a, float(p.in_scale))
    a2 = a.reshape(-1, p.K)
    split = None if p.split is None else list(p.split)
    if p.out == "int8":
        y = _emu.matmul_int8(a2, state.weights, p.mult, p.shift, p.bias_i32, split)
    else:
        scale = _dynamic_scale(p, a_scale) if p.dynamic else p.scale
        y = _emu.matmul_f32(a2, state.weights, scale, p.bias_f32, split)
    lead = a.shape[:-1]
    if p.split is None:
        return [y.reshape(*lead, p.N)]
    return [b.reshape(*lead, n) for b, n in zip(y, p.split, strict=True)]


def _split_columns(y: np.ndarray, split: tuple[int, ...] | None) -> Arrays:
    if split is None:
        return [y]
    bounds = np.cumsum((0, *split))
    return [np.ascontiguousarray(y[..., lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:],
                                                                   strict=True)]


def requantize_reference(acc: np.ndarray, bias_i32: np.ndarray, mult: np.ndarray,
                         shift: np.ndarray) -> np.ndarray:
    """numpy int64 mirror of matmul::output_int8 (kernels/matmul/matmul.h)."""
    t = acc.astype(np.int64) + bias_i32.astype(np.int64)
    p = t * mult.astype(np.int64)
    sh = shift.astype(np.int64)
    y = (p + np.left_shift(np.int64(1), sh - 1)) >> sh
    return np.clip(y, -127, 127).astype(np.int8)


def dequantize_reference(acc: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """numpy mirror of matmul::output_f32: float32(acc) * scale, then + bias (fp32)."""
    prod = acc.astype(np.float32) * scale.astype(np.float32)
    return prod + bias.astype(np.float32)


def reference(consts: Consts, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    p = channel_params(consts, attrs)
    a, a_scale = _split_inputs(p, inputs)
    if a.dtype == np.float32:
        a = _quant.quantize_reference(a, p.in_scale)
    acc = a.reshape(-1, p.K).astype(np.int64) @ consts["weight"].astype(np.int64)
    if p.out == "int8":
        y = requantize_reference(acc, p.bias_i32, p.mult, p.shift)
    else:
        scale = _dynamic_scale(p, a_scale) if p.dynamic else p.scale
        y = dequantize_reference(acc, scale, p.bias_f32)
    return _split_columns(y.reshape(*a.shape[:-1], p.N), p.split)


def macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    a_shape = shapes[0]
    K, N = consts["weight"].shape
    return int(np.prod(a_shape[:-1], dtype=np.int64)) * int(K) * int(N)


def device_constants(consts: Consts, attrs: Attrs) -> list[np.ndarray]:
    """The NPU weights BO (kernels/matmul/README.md, "Device buffers"):
    [0] int8 weight [Kp, Np] row-major, zero-padded to the design's tile
    multiples; [1] per-channel epilogue words [3, Np] (int32: mult, shift,
    bias_i32) for out="int8", or float32 [2, Np] (scale, bias) for a static
    float32 output, or float32 [2, Np] (w_scale, bias) for dynamic mode (the
    kernel multiplies w_scale by the run-time a_scale); [2] int32 (K, N), the
    unpadded shape (the runtime crops y to it). Split outputs change nothing
    here: each column's words already carry its block's output scale, and
    the block bounds travel in attrs["split"]."""
    p = channel_params(consts, attrs)
    kp = -(-p.K // DEVICE_TILE_K) * DEVICE_TILE_K
    np_ = -(-p.N // DEVICE_TILE_N) * DEVICE_TILE_N
    w = np.zeros((kp, np_), np.int8)
    w[: p.K, : p.N] = consts["weight"]
    if p.out == "int8":
        words = np.zeros((3, np_), np.int32)
        words[0, : p.N], words[1, : p.N], words[2, : p.N] = p.mult, p.shift, p.bias_i32
        words[1, p.N:] = 31
    else:
        words = np.zeros((2, np_), np.float32)
        words[0, : p.N] = p.w_scale if p.dynamic else p.scale
        words[1, : p.N] = p.bias_f32
    return [w, words, np.array([p.K, p.N], np.int32)]


def output_specs(inputs: Sequence[BufferSpec], consts: dict[str, BufferSpec], attrs: Attrs
                 ) -> list[BufferSpec]:
    """Output (dtype, shape) per output from the input/constant buffer specs
    (runtime/shapes.py hook): one [..., N] output, or one [..., Ni] per split block."""
    w = consts.get("weight")
    if w is None or len(w.shape) != 2:
        raise ValueError("matmul: constant 'weight' [K, N] is required to size the output")
    k, n = (int(d) for d in w.shape)
    if not inputs or inputs[0].shape[-1] != k:
        raise ValueError(f"matmul: input last dim must equal weight K = {k}")
    dynamic = v.flag(attrs, "dynamic")
    out = v.choice("attrs['out']", attrs.get("out", "float32" if dynamic else "int8"), OUTS)
    lead = tuple(int(d) for d in inputs[0].shape[:-1])
    split = split_blocks(attrs, n) or (n,)
    return [BufferSpec(out, (*lead, c)) for c in split]


# Padding of kernels/matmul/design.py (padded_shape): K to its TILE_K, N to
# whole groups of 4 array columns x TILE_N (tests check these against it).
DEVICE_TILE_K = 64
DEVICE_TILE_N = 256


# ------------------------------------------------------------- public API
def matmul(a: np.ndarray, weight: np.ndarray, w_scale: np.ndarray, *,
           bias: np.ndarray | None = None, in_scale: float | None = None,
           out_scale: float | None = None, a_scale: float | None = None,
           out: str = "float32") -> np.ndarray:
    """One-shot convenience wrapper (packs the weights on every call; stages
    use prepare/run instead). Static mode with `in_scale`, dynamic with `a_scale`."""
    consts: Consts = {"weight": weight, "w_scale": w_scale}
    if bias is not None:
        consts["bias"] = bias
    if (in_scale is None) == (a_scale is None):
        raise ValueError("give exactly one of in_scale (static) or a_scale (dynamic)")
    attrs: Attrs = {"out": out}
    inputs: list[np.ndarray] = [a]
    if a_scale is not None:
        attrs["dynamic"] = True
        inputs.append(np.array([v.quantize_scale("a_scale", a_scale)], np.float32))
    else:
        attrs["in_scale"] = float(in_scale)
        if out_scale is not None:
            attrs["out_scale"] = float(out_scale)
    return run(prepare(consts, attrs), inputs, attrs)[0]


MATMUL = register(KernelSpec(
    name="matmul", prepare=prepare, run=run, reference=reference, macs=macs,
    device_constants=device_constants, prepare_device=prepare_device,
    output_specs=output_specs,
))
