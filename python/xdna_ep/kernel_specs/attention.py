"""Attention kernel: softmax(Q K^T * s + mask) V per head, int8 in, one call.

Arithmetic: kernels/attention/attention.h (byte-level contract in its
README). Q.K^T and P.V are exact int8 GEMMs; the softmax between them is the
fixed-point contract shared with the softmax kernel, except that the weights
are scaled to the row maximum and carried in 14 bits as two int8 GEMM operands
(hi, lo in 0..127), and the division by their sum moves into a per-row output
scale -- int8 probabilities scaled to the sum would round a diffuse row over
1500 keys to all zeros (see the README for the measurements).

Layout (kernels/STAGES.md): q [B,Tq,H*Dh], k/v [B,Tk,H*Dh] int8 with heads
interleaved in the last dim exactly as ONNX Reshape[B,T,H,Dh] gives; optional
float32 mask broadcastable to [B,H,Tq,Tk]; output [B,Tq,H*Dh] int8 or float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._native import emulator
from . import checks as chk
from .registry import Arrays, Attrs, BufferSpec, Consts, KernelSpec, register
from .softmax import EXCLUDED_LOGIT as _EXCLUDED
from .softmax import (
    MASK_EXCLUDE,
    MASK_LIMIT,
    exp_terms,
    float_softmax,
    logit_requant,
)

QUERY_TILE = 64
MAX_HEAD_DIM = 4096
MAX_KEYS = 131072
WEIGHT_MAX = 16383  # 14-bit weights carried as two int8 halves (hi = w >> 7, lo = w & 127)
OUTPUTS = ("int8", "float32")


@dataclass(frozen=True)
class AttentionCall:
    """A validated attention call: arrays, shapes and every derived integer constant."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    heads: int
    head_dim: int
    logit_mult: int
    logit_shift: int
    causal: bool
    past_len: int
    mask: np.ndarray | None
    out: str
    out_mult: int  # int8 out: make_requant(v_scale / out_scale)
    out_shift: int
    v_scale: float  # float32 value, used by the float output's row multiplier
    out_scale: float | None  # the int8 output's real scale


def _check_narrow(name: str, a: np.ndarray) -> None:
    if int(a.min()) < -127:
        raise ValueError(f"{name} holds -128: int8 tensors use the narrow range [-127, 127]")


def prepare_call(
    q: Any, k: Any, v: Any, *, num_heads: int, q_scale: Any, k_scale: Any, v_scale: Any,
    softmax_scale: Any = None, mask: Any = None, causal: bool = False,
    past_len: int | None = None, out: str = "float32", out_scale: Any = None,
) -> AttentionCall:
    """Validates an attention call; every error names the offending argument."""
    qa = chk.array("q", q, np.int8, min_ndim=3)
    ka = chk.array("k", k, np.int8, min_ndim=3)
    va = chk.array("v", v, np.int8, min_ndim=3)
    for name, a in (("q", qa), ("k", ka), ("v", va)):
        if a.ndim != 3:
            raise ValueError(f"{name} must be 3-D [B, T, H*Dh], got shape {a.shape}")
    b, tq, hd = qa.shape
    if ka.shape[0] != b or va.shape[0] != b:
        raise ValueError(f"batch mismatch: q {qa.shape}, k {ka.shape}, v {va.shape}")
    if ka.shape[2] != hd or va.shape[2] != hd:
        raise ValueError(f"last dim mismatch: q {qa.shape}, k {ka.shape}, v {va.shape}")
    if va.shape[1] != ka.shape[1]:
        raise ValueError(f"k and v must have the same length: k {ka.shape}, v {va.shape}")
    tk = ka.shape[1]
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)):
        raise TypeError(f"num_heads must be an int, got {num_heads!r}")
    if num_heads < 1 or hd % num_heads:
        raise ValueError(f"num_heads={num_heads} must be >= 1 and divide H*Dh={hd}")
    dh = hd // int(num_heads)
    if dh > MAX_HEAD_DIM:
        raise ValueError(f"head dim {dh} exceeds {MAX_HEAD_DIM}")
    if tk > MAX_KEYS:
        raise ValueError(f"k has {tk} keys; the int32 P.V accumulator allows {MAX_KEYS}")
    _check_narrow("k", ka)
    _check_narrow("v", va)
    qs = chk.real_scale("q_scale", q_scale)
    ks = chk.real_scale("k_scale", k_scale)
    vs = chk.real_scale("v_scale", v_scale)
    ss = 1.0 / math.sqrt(dh) if softmax_scale is None else chk.real_scale("softmax_scale",
                                                                        softmax_scale)
    m, e = logit_requant(qs * ks * ss)
    ma = None if mask is None else chk.mask(mask, (b, int(num_heads), tq, tk), "[B,H,Tq,Tk]")
    pl = _past_len(causal, past_len, tq, tk)
    om, oe, os_ = _out_requant(out, vs, out_scale)
    return AttentionCall(qa, ka, va, int(num_heads), dh, m, e, bool(causal), pl, ma, out, om, oe,
                         float(np.float32(vs)), os_)


def _past_len(causal: bool, past_len: int | None, tq: int, tk: int) -> int:
    """Keys before the first query row (causal only; default: the queries are the
    last Tq rows of the key range, the KV-cache convention)."""
    if not causal:
        return 0
    return max(tk - tq, 0) if past_len is None else chk.past_len(past_len)


def _out_requant(out: str, v_scale: float, out_scale: Any) -> tuple[int, int, float | None]:
    """(multiplier, shift, out_scale) of the output epilogue: make_requant(v_scale /
    out_scale) for int8, (0, 31, None) for float32."""
    if out not in OUTPUTS:
        raise ValueError(f"out must be one of {OUTPUTS}, got {out!r}")
    if out == "float32":
        return 0, 31, None
    if out_scale is None:
        raise ValueError("out_scale is required when out='int8'")
    os_ = chk.real_scale("out_scale", out_scale)
    om, oe = (int(t) for t in emulator.make_requant(v_scale / os_))
    return om, oe, os_


def _mask_strides(c: AttentionCall) -> list[int]:
    b, tq, _ = c.q.shape
    view = np.broadcast_to(c.mask, (b, c.heads, tq, c.k.shape[1]))
    return [s // c.mask.itemsize for s in view.strides]


def run_call(c: AttentionCall) -> np.ndarray:
    """Runs a validated call on the host emulator (GIL released, both cores)."""
    strides = [0, 0, 0, 0] if c.mask is None else _mask_strides(c)
    return emulator.attention_int8(c.q, c.k, c.v, c.heads, c.logit_mult, c.logit_shift, c.causal,
                                   c.past_len, c.mask, strides, c.out == "float32", c.out_mult,
                                   c.out_shift, c.v_scale)


def _heads(a: np.ndarray, heads: int) -> np.ndarray:
    b, t, hd = a.shape
    return a.reshape(b, t, heads, hd // heads).transpose(0, 2, 1, 3)


def _visible(c: AttentionCall) -> np.ndarray | None:
    if not c.causal:
        return None
    tq, tk = c.q.shape[1], c.k.shape[1]
    return np.clip(np.arange(tq, dtype=np.int64) + c.past_len + 1, 0, tk)


def _row_weights(c: AttentionCall, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contract steps logits -> 14-bit weights w (16383 at the row maximum) and W = sum w."""
    e, zmax = exp_terms(scores, c.logit_mult, c.logit_shift, visible=_visible(c), mask=c.mask)
    w = (e * WEIGHT_MAX + (1 << 23)) >> 24
    w = np.where(zmax == _EXCLUDED, 0, w)
    return w, w.sum(axis=-1)


def _row_requant(mult: int, shift: int, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (m, e) = out requant divided by W, 23-bit multiplier (contract in attention.h)."""
    wpos = np.maximum(w, 1)
    lw = np.frexp(wpos.astype(np.float64))[1].astype(np.int64)  # bit length (exact < 2^53)
    rw = (np.int64(1) << (29 + lw)) // wpos
    m = (np.int64(mult) * rw + (np.int64(1) << 37)) >> 38
    e = shift + lw - 9
    over = np.maximum(e - 62, 0)
    m, e = m >> over, e - over
    dead = (w <= 0) | (mult == 0)
    return np.where(dead, 0, m), np.where(dead, 31, e)


def reference_call(c: AttentionCall) -> np.ndarray:
    """numpy integer reference (bit-identical to run_call). float64 matmuls of
    int8 values are exact here (every partial sum < 2^53)."""
    b, tq, hd = c.q.shape
    qh = _heads(c.q, c.heads).astype(np.float64)
    kh = _heads(c.k, c.heads).astype(np.float64)
    vh = _heads(c.v, c.heads).astype(np.float64)
    scores = (qh @ kh.transpose(0, 1, 3, 2)).astype(np.int64)
    w, wsum = _row_weights(c, scores)
    # the two exact int8 GEMMs of the contract (hi and lo halves), combined in int64
    acc_hi = ((w >> 7).astype(np.float64) @ vh).astype(np.int64)  # [B,H,Tq,Dh]
    acc_lo = ((w & 127).astype(np.float64) @ vh).astype(np.int64)
    acc = acc_hi * 128 + acc_lo
    if c.out == "float32":
        mul = np.where(wsum > 0, np.float32(c.v_scale) / np.maximum(wsum, 1).astype(np.float32),
                       np.float32(0.0)).astype(np.float32)
        o = acc.astype(np.float32) * mul[..., None] + np.float32(0.0)
    else:
        m, e = _row_requant(c.out_mult, c.out_shift, wsum)
        o = (acc * m[..., None] + (np.int64(1) << (e[..., None] - 1))) >> e[..., None]
        o = np.clip(o, -127, 127).astype(np.int8)
    return np.ascontiguousarray(o.transpose(0, 2, 1, 3).reshape(b, tq, hd))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, num_heads: int, q_scale: float,
              k_scale: float, v_scale: float, softmax_scale: float | None = None,
              mask: np.ndarray | None = None, causal: bool = False, past_len: int | None = None,
              out: str = "float32", out_scale: float | None = None) -> np.ndarray:
    """int8 multi-head attention on the host emulator, one call for all heads.

    softmax_scale defaults to 1/sqrt(Dh). causal: query i sees keys
    j <= i + past_len (past_len defaults to Tk - Tq, the KV-cache convention).
    mask: additive float32, natural-log units, broadcastable to [B,H,Tq,Tk];
    NaN or <= -1e4 excludes an entry. A row with every key excluded outputs 0.
    """
    return run_call(prepare_call(q, k, v, num_heads=num_heads, q_scale=q_scale, k_scale=k_scale,
                                 v_scale=v_scale, softmax_scale=softmax_scale, mask=mask,
                                 causal=causal, past_len=past_len, out=out, out_scale=out_scale))


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, **kwargs: Any) -> np.ndarray:
    """numpy integer reference of `attention` (same arguments, same bytes)."""
    return reference_call(prepare_call(q, k, v, **kwargs))


def attention_float_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, **kwargs: Any
                              ) -> np.ndarray:
    """float64 attention of the dequantized inputs (what the int8 kernel approximates),
    with the kernel's exclusion rule. Returns float64 [B,Tq,H*Dh]."""
    c = prepare_call(q, k, v, **{**kwargs, "out": "float32", "out_scale": None})
    b, tq, hd = c.q.shape
    ss = kwargs.get("softmax_scale") or 1.0 / math.sqrt(c.head_dim)
    qh = _heads(c.q, c.heads) * float(kwargs["q_scale"])
    kh = _heads(c.k, c.heads) * float(kwargs["k_scale"])
    vh = _heads(c.v, c.heads) * float(kwargs["v_scale"])
    logits = (qh @ kh.transpose(0, 1, 3, 2)) * float(ss)
    excluded = np.zeros(logits.shape, dtype=bool)
    vis = _visible(c)
    if vis is not None:
        excluded |= np.arange(c.k.shape[1]) >= vis[:, None]
    if c.mask is not None:
        mb = np.broadcast_to(c.mask, logits.shape).astype(np.float64)
        excluded |= ~(mb > float(MASK_EXCLUDE))
        logits = logits + np.where(excluded, 0.0, np.minimum(mb, float(MASK_LIMIT)))
    o = float_softmax(logits, excluded) @ vh
    return o.transpose(0, 2, 1, 3).reshape(b, tq, hd)


# --- stage registration (kernels/STAGES.md) ----------------------------------
@dataclass(frozen=True)
class AttentionStage:
    """Parsed stage attrs; scales are None in dynamic mode (they come with the inputs)."""

    dynamic: bool
    num_heads: int
    softmax_scale: float
    causal: bool
    past_len: int | None
    has_mask: bool
    out: str
    q_scale: float | None
    k_scale: float | None
    v_scale: float | None
    out_scale: float | None


def _parse_attrs(attrs: Attrs) -> AttentionStage:
    dynamic = bool(attrs.get("dynamic", False))
    out = attrs.get("out", "float32")
    if out not in OUTPUTS:
        raise ValueError(f"attrs['out'] must be one of {OUTPUTS}, got {out!r}")
    if "num_heads" not in attrs:
        raise ValueError("attrs['num_heads'] is required")
    if "softmax_scale" not in attrs:
        raise ValueError("attrs['softmax_scale'] is required")

    def static(name: str) -> float | None:
        return None if dynamic else chk.real_scale(f"attrs[{name!r}]", attrs.get(name))

    pl = attrs.get("past_len")
    return AttentionStage(
        dynamic=dynamic,
        num_heads=attrs["num_heads"],
        softmax_scale=chk.real_scale("attrs['softmax_scale']", attrs["softmax_scale"]),
        causal=bool(attrs.get("causal", False)),
        past_len=None if pl is None else chk.past_len(pl),
        has_mask=bool(attrs.get("has_mask", False)),
        out=out,
        q_scale=static("q_scale"),
        k_scale=static("k_scale"),
        v_scale=static("v_scale"),
        # dynamic int8 output: its scale is v_scale (|o| <= max|v| * v_scale)
        out_scale=static("out_scale") if out == "int8" else None,
    )


def _scale_buffer(name: str, a: Any) -> float:
    sc = chk.array(name, a, np.float32, min_ndim=1)
    if sc.size != 1:
        raise ValueError(f"{name} must hold one value, got shape {sc.shape}")
    return float(sc.reshape(-1)[0])


def _stage_call(st: AttentionStage, inputs: Sequence[np.ndarray]) -> AttentionCall:
    per = 2 if st.dynamic else 1
    want = 3 * per + int(st.has_mask)
    if len(inputs) != want:
        raise ValueError(f"attention stage expects {want} inputs (q, k, v"
                         f"{' each with its scale' if st.dynamic else ''}"
                         f"{', mask' if st.has_mask else ''}), got {len(inputs)}")
    q, k, v = inputs[0], inputs[per], inputs[2 * per]
    if st.dynamic:
        qs, ks, vs = (_scale_buffer(f"{n}_scale", inputs[i * 2 + 1])
                      for i, n in enumerate("qkv"))
        os_ = vs if st.out == "int8" else None
    else:
        qs, ks, vs, os_ = st.q_scale, st.k_scale, st.v_scale, st.out_scale
    return prepare_call(q, k, v, num_heads=st.num_heads, q_scale=qs, k_scale=ks, v_scale=vs,
                        softmax_scale=st.softmax_scale, mask=inputs[-1] if st.has_mask else None,
                        causal=st.causal, past_len=st.past_len, out=st.out, out_scale=os_)


def _outputs(st: AttentionStage, c: AttentionCall, o: np.ndarray) -> Arrays:
    if st.dynamic and st.out == "int8":
        return [o, np.array([c.out_scale], dtype=np.float32)]
    return [o]


def _prepare(consts: Consts, attrs: Attrs) -> AttentionStage:
    return _parse_attrs(attrs)


def _run(state: AttentionStage, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    c = _stage_call(state, inputs)
    return _outputs(state, c, run_call(c))


def _reference(consts: Consts, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    st = _parse_attrs(attrs)
    c = _stage_call(st, inputs)
    return _outputs(st, c, reference_call(c))


def _macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    """Q.K^T plus P.V: 2 * B * Tq * Tk * H*Dh (shapes: q first, then k)."""
    per = 2 if attrs.get("dynamic") else 1
    b, tq, hd = shapes[0]
    tk = shapes[per][1]
    return 2 * b * tq * tk * hd


def _output_specs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                  attrs: Attrs) -> list[BufferSpec]:
    """q's shape [B, Tq, H*Dh], in attrs["out"] (float32 unless int8 is asked for),
    plus the [1] float32 o_scale of a dynamic int8 output."""
    out = attrs.get("out", "float32")
    if out not in OUTPUTS:
        raise ValueError(f"attrs['out'] must be 'int8' or 'float32', got {out!r}")
    o = [BufferSpec(str(out), ins[0].shape)]
    return o + [BufferSpec("float32", (1,))] if out == "int8" and attrs.get("dynamic") else o


SPEC = register(KernelSpec(name="attention", prepare=_prepare, run=_run, reference=_reference,
                           macs=_macs, output_specs=_output_specs))


# -- the PARAMS words the attention designs read --------------------------------------
# kernels/attention/aie/attention_aie.cc `enum Param` (words 0-9) and, for the fused
# attn_block's dynamic form, softmax_scale's float64 bits (attn_dynamic_aie.cc, words
# 10 low and 11 high). runtime/layout.py writes them at the start of PARAMS.
WORDS = 16
(W_LOGIT_MULT, W_LOGIT_SHIFT, W_CAUSAL, W_PAST_LEN, W_KEY_LEN, W_OUT_FLOAT, W_OUT_MULT,
 W_OUT_SHIFT, W_V_SCALE_BITS, W_GROUPS_PER_HEAD, W_SOFTMAX_SCALE_LO, W_SOFTMAX_SCALE_HI) = range(12)
GROUP_ROWS = 128  # query rows of one column group (kernels/attention/design.py GROUP_ROWS)


def device_words(attrs: Attrs, q_shape: Sequence[int], k_shape: Sequence[int]) -> np.ndarray:
    """The int32[16] PARAMS words of an attention stage with these attrs and q [B, Tq,
    H*Dh], k [B, Tk, H*Dh] shapes: the integers prepare_call derives (same helpers),
    so a design reading them computes the emulator's bytes. In dynamic mode the
    scale-dependent words (logit requant, output epilogue, v_scale) are made on the
    array from the reduced scales (attn_dyn_words); the host leaves them zero and
    passes softmax_scale's float64 bits instead (written in both forms)."""
    st = _parse_attrs(attrs)
    if len(q_shape) != 3 or len(k_shape) != 3:
        raise ValueError(f"attention words: q and k must be 3-D, got {list(q_shape)}, "
                         f"{list(k_shape)}")
    tq, tk, hd = int(q_shape[1]), int(k_shape[1]), int(q_shape[2])
    if st.num_heads < 1 or hd % st.num_heads:
        raise ValueError(f"num_heads={st.num_heads} must be >= 1 and divide H*Dh={hd}")
    w = np.zeros(WORDS, np.int32)
    w[W_CAUSAL] = int(st.causal)
    w[W_PAST_LEN] = _past_len(st.causal, st.past_len, tq, tk)
    w[W_KEY_LEN] = tk
    w[W_GROUPS_PER_HEAD] = -(-tq // GROUP_ROWS)
    w[W_SOFTMAX_SCALE_LO:W_SOFTMAX_SCALE_HI + 1] = np.array([st.softmax_scale],
                                                            np.float64).view(np.int32)
    if st.dynamic:
        return w
    assert st.q_scale is not None and st.k_scale is not None and st.v_scale is not None
    w[W_LOGIT_MULT:W_LOGIT_SHIFT + 1] = logit_requant(st.q_scale * st.k_scale * st.softmax_scale)
    om, oe, _ = _out_requant(st.out, st.v_scale, st.out_scale)
    w[W_OUT_FLOAT] = int(st.out == "float32")
    w[W_OUT_MULT], w[W_OUT_SHIFT] = om, oe
    w[W_V_SCALE_BITS] = np.array([st.v_scale], np.float32).view(np.int32)[0]
    return w
