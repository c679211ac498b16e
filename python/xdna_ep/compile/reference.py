"""Contract-level numpy versions of every stage kernel (kernels/STAGES.md).

Why this exists: compile/ must be testable before (and independently of) the
kernel packages, and its accuracy figures need *some* executor. These follow
the stage contracts and the shared epilogue (kernels/common/epilogue.h:
narrow-range int8, fp32 reciprocal quantize, (acc*m + 2^(e-1)) >> e
requantize) but are NOT the bit-exact kernel references: those live in
xdna_ep.kernel_specs.<name> and are preferred by execute.py whenever registered.
Integer parts (int8 GEMM/conv accumulators, requantize) are exact; float
parts (layernorm, softmax/attention, gelu) use float32/float64 numpy math.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .kernel_api import gelu_float

Arrays = list[np.ndarray]
Ref = Callable[[dict[str, np.ndarray], Sequence[np.ndarray], dict[str, Any]], Arrays]


def _f32(x: float) -> np.float32:
    return np.float32(x)


def quantize_values(x: np.ndarray, scale: float) -> np.ndarray:
    inv = np.float32(1.0) / _f32(scale)
    return np.clip(np.rint(np.asarray(x, np.float32) * inv), -127, 127).astype(np.int8)


def dynamic_scale(x: np.ndarray) -> np.float32:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return _f32(m / 127.0) if m > 0 else np.float32(1.0)


def _make_requant(scale: float) -> tuple[int, int]:
    from .._native import emulator as _emulator  # the one C++ definition of (m, e)

    m, e = _emulator.make_requant(float(scale))
    return int(m), int(e)


def requantize(acc: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per-column requantize of int32 acc [M, N] with real scales [N]."""
    out = np.empty(acc.shape, np.int8)
    a64 = acc.astype(np.int64)
    for n, s in enumerate(np.asarray(scales, np.float64)):
        m, e = _make_requant(s)
        v = (a64[:, n] * m + (1 << (e - 1))) >> e
        out[:, n] = np.clip(v, -127, 127)
    return out


def _int8_in(inputs: Sequence[np.ndarray], attrs: dict[str, Any], key: str, pos: int = 0
             ) -> tuple[np.ndarray, float, int]:
    """(q, scale, next position) of an int8 input at `pos` (scale buffer if dynamic)."""
    q = inputs[pos]
    if attrs.get("dynamic"):
        return q, float(np.asarray(inputs[pos + 1]).reshape(-1)[0]), pos + 2
    return q, float(attrs[key]), pos + 1


def quantize(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
             attrs: dict[str, Any]) -> Arrays:
    x = np.asarray(inputs[0], np.float32)
    if attrs.get("dynamic"):
        s = dynamic_scale(x)
        return [quantize_values(x, float(s)), np.array([s], np.float32)]
    return [quantize_values(x, attrs["out_scale"])]


def dequantize(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
               attrs: dict[str, Any]) -> Arrays:
    q, s, _ = _int8_in(inputs, attrs, "in_scale")
    return [(q.astype(np.float32) * _f32(s)).astype(np.float32)]


def matmul(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
           attrs: dict[str, Any]) -> Arrays:
    a, sa, _ = _int8_in(inputs, attrs, "in_scale")
    if a.dtype == np.float32:  # static float32 input: quantized by the matmul itself
        a = quantize_values(a, sa)
    w = consts["weight"]
    k, n = w.shape
    lead = a.shape[:-1]
    acc = a.reshape(-1, k).astype(np.int32) @ w.astype(np.int32)
    real = (np.float32(sa) * consts["w_scale"].astype(np.float32)).astype(np.float32)
    bias = consts.get("bias")
    split = attrs.get("split") or [n]
    if attrs.get("out", "float32") == "int8":
        if attrs.get("dynamic"):
            raise ValueError("matmul: int8 output is not supported in dynamic mode")
        out_scales = attrs.get("out_scales") or [attrs["out_scale"]]
        col_out = np.concatenate([np.full(c, s, np.float64) for c, s in zip(split, out_scales,
                                                                            strict=True)])
        if bias is not None:
            acc = acc + np.rint(bias.astype(np.float64) / real.astype(np.float64)
                                ).astype(np.int64).clip(-2**31, 2**31 - 1).astype(np.int32)
        y = requantize(acc, real.astype(np.float64) / col_out)
    else:
        y = acc.astype(np.float32) * real
        if bias is not None:
            y = (y + bias.astype(np.float32)).astype(np.float32)
    outs, c0 = [], 0
    for c in split:
        outs.append(np.ascontiguousarray(y[:, c0:c0 + c]).reshape(*lead, c))
        c0 += c
    return outs


def gelu(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
         attrs: dict[str, Any]) -> Arrays:
    q, s, _ = _int8_in(inputs, attrs, "in_scale")
    if attrs.get("dynamic"):
        ends = gelu_float(np.array([127.0, -127.0]) * np.float64(np.float32(s)),
                          attrs["approximate"])
        so = float(np.max(np.abs(ends))) / 127.0 or 1.0
        so32 = _f32(so)
        y = gelu_float(q.astype(np.float64) * np.float64(np.float32(s)), attrs["approximate"])
        return [np.clip(np.rint(y / np.float64(so32)), -127, 127).astype(np.int8),
                np.array([so32], np.float32)]
    table = consts["table"]
    return [table[q.astype(np.int16) + 128]]


def layernorm(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
              attrs: dict[str, Any]) -> Arrays:
    x = inputs[0]
    if x.dtype == np.int8:
        q, s, _ = _int8_in(inputs, attrs, "in_scale")
        x = q.astype(np.float32) * _f32(s)
    x = np.asarray(x, np.float32)
    mu = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True, dtype=np.float32)
    y = d / np.sqrt(var + _f32(attrs["epsilon"])) * consts["gamma"] + consts["beta"]
    y = y.astype(np.float32)
    if attrs.get("out", "float32") == "int8":
        return [quantize_values(y, attrs["out_scale"])]
    return [y]


def attention(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
              attrs: dict[str, Any]) -> Arrays:
    pos = 0
    fl = []
    for role in ("q", "k", "v"):
        t, s, pos = _int8_in(inputs, attrs, f"{role}_scale", pos)
        fl.append(t.astype(np.float32) * _f32(s))
    q, k, v = fl
    h = int(attrs["num_heads"])
    b, tq, d = q.shape
    tk = k.shape[1]
    dh = d // h
    qh = q.reshape(b, tq, h, dh).transpose(0, 2, 1, 3)
    kh = k.reshape(b, tk, h, dh).transpose(0, 2, 1, 3)
    vh = v.reshape(b, tk, h, dh).transpose(0, 2, 1, 3)
    logits = (qh @ kh.transpose(0, 1, 3, 2)) * _f32(attrs["softmax_scale"])
    if attrs.get("has_mask"):
        logits = logits + inputs[pos].astype(np.float32)
    if attrs.get("causal"):
        past = tk - tq
        ok = np.arange(tk)[None, :] <= (np.arange(tq)[:, None] + past)
        logits = np.where(ok, logits, np.float32(-np.inf))
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=-1, keepdims=True)
    o = (p @ vh).transpose(0, 2, 1, 3).reshape(b, tq, d).astype(np.float32)
    if attrs.get("out", "float32") == "int8":
        return [quantize_values(o, attrs["out_scale"])]
    return [o]


def add(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
        attrs: dict[str, Any]) -> Arrays:
    a = inputs[0]
    b = consts["b"] if "b" in consts else inputs[1]
    if a.dtype == np.int8:
        raise NotImplementedError("contract reference: int8 add is not used by compile/")
    if attrs.get("transpose_a"):
        a = a.transpose(0, 2, 1)
    return [np.ascontiguousarray(a.astype(np.float32) + b.astype(np.float32), dtype=np.float32)]


def conv1d(consts: dict[str, np.ndarray], inputs: Sequence[np.ndarray],
           attrs: dict[str, Any]) -> Arrays:
    x = np.asarray(inputs[0], np.float32)
    s = float(dynamic_scale(x)) if attrs.get("dynamic") else float(attrs["in_scale"])
    xq = quantize_values(x, s).astype(np.int32)
    w = consts["weight"].astype(np.int32)
    cout, cin, kw = w.shape
    stride, pad = int(attrs["stride"]), int(attrs["pad"])
    xp = np.pad(xq, ((0, 0), (0, 0), (pad, pad)))
    tout = (xp.shape[2] - kw) // stride + 1
    cols = np.stack([xp[:, :, j * stride:j * stride + kw] for j in range(tout)], axis=1)
    acc = cols.reshape(x.shape[0], tout, cin * kw) @ w.reshape(cout, cin * kw).T
    real = (np.float32(s) * consts["w_scale"].astype(np.float32)).astype(np.float32)
    y = acc.astype(np.float32) * real + consts["bias"].astype(np.float32)
    return [np.ascontiguousarray(y.transpose(0, 2, 1).astype(np.float32))]


REFERENCES: dict[str, Ref] = {
    "quantize": quantize, "dequantize": dequantize, "matmul": matmul, "gelu": gelu,
    "layernorm": layernorm, "attention": attention, "add": add, "conv1d": conv1d,
}
