"""Softmax kernel: validated wrapper, numpy integer reference, float reference.

The arithmetic is the fixed-point contract of kernels/softmax/softmax.h (read
its README for the byte-level detail). Why fixed point: a float exp/sum/divide
depends on vector width and summation order, so the host SIMD paths and the NPU
would disagree in the last bit; integer sums are exact in any order.

The numpy core here (`fixed_point_softmax`) is written from the contract, not
from the C++ code, and is shared with the attention reference, whose softmax
is the same arithmetic applied to int32 Q.K accumulators.
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

# --- the contract's constants (kernels/softmax/softmax.h) -------------------
FRAC_BITS = 8  # logits in units of 2^-8 of a log2 unit
EXP_ONE = 24  # exp table entry 0 is 2^24
MAX_SHIFT = 24  # d >> 8 above this -> exp term 0
RECIP_EXTRA_BITS = 7  # K = bitlen(sum) + 7
LOGIT_LIMIT = 1 << 27
EXCLUDED_LOGIT = -(1 << 30)
MASK_EXCLUDE = np.float32(-1.0e4)  # mask <= this, or NaN, excludes the entry
MASK_LIMIT = np.float32(1.0e4)  # larger mask values are clamped to this
MASK_TO_FIXED = np.float32(256.0 / math.log(2.0))  # fp32(256 * log2 e)
LOGIT_UNITS_PER_NAT = 256.0 / math.log(2.0)  # double, for the logit requant
PROB_MAX = 127
PROB_SCALE = 1.0 / 127.0  # the output's real scale

#: exp table: round(2^(24 - f/256)); no entry is near a rounding tie, so the
#: double-precision generator is exact (tests compare with the C++ table).
EXP_TABLE = np.round(2.0 ** (EXP_ONE - np.arange(256) / 256.0)).astype(np.int64)


def logit_requant(real_scale: float) -> tuple[int, int]:
    """(multiplier, shift) turning a score into 2^-8 log2 units: score * real_scale * 256/ln 2.

    Computed in double on the host (as every requant of the shared epilogue);
    the kernels only see the integer pair.
    """
    units = real_scale * LOGIT_UNITS_PER_NAT
    if not (units < 2.0**29):
        raise ValueError(f"logit scale {real_scale!r} is too large for the fixed-point softmax")
    m, e = emulator.make_requant(units)
    return int(m), int(e)


# --- numpy integer reference -----------------------------------------------
def exp_terms(scores: np.ndarray, logit_mult: int, logit_shift: int, *,
              visible: np.ndarray | None = None, mask: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """The contract's first steps, shared by softmax and attention: integer scores ->
    fixed-point logits (requantized, clipped, mask added, excluded entries set to
    EXCLUDED_LOGIT) -> e = 2^24-scaled exp table terms of (row max - logit).
    Returns (e, row max); a fully excluded row has row max EXCLUDED_LOGIT.

    visible: per-row count of keys the row may see (broadcastable to
    scores.shape[:-1]); entries at or past it are excluded. mask: float32
    broadcastable to scores.shape, additive in natural-log units.
    """
    s = scores.astype(np.int64)
    n = s.shape[-1]
    z = (s * np.int64(logit_mult) + (np.int64(1) << (logit_shift - 1))) >> np.int64(logit_shift)
    np.clip(z, -LOGIT_LIMIT, LOGIT_LIMIT, out=z)
    excluded = np.zeros(s.shape, dtype=bool)
    if visible is not None:
        excluded |= np.arange(n) >= np.asarray(visible)[..., None]
    if mask is not None:
        mb = np.broadcast_to(mask, s.shape)
        m_excl = ~(mb > MASK_EXCLUDE)  # NaN compares False -> excluded
        clean = np.minimum(np.where(m_excl, np.float32(0.0), mb), MASK_LIMIT)
        z += np.rint(clean * MASK_TO_FIXED).astype(np.int64)
        excluded |= m_excl
    z[excluded] = EXCLUDED_LOGIT
    zmax = z.max(axis=-1, keepdims=True)
    d = zmax - z
    k = d >> FRAC_BITS
    e = np.where(k > MAX_SHIFT, 0, EXP_TABLE[d & 255] >> np.minimum(k, 62))
    return e, zmax


def fixed_point_softmax(
    scores: np.ndarray,
    logit_mult: int,
    logit_shift: int,
    *,
    visible: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The softmax contract over the last axis of integer `scores` -> int8 0..127.

    visible: per-row count of keys the row may see (broadcastable to
    scores.shape[:-1]); entries at or past it are excluded. mask: float32
    broadcastable to scores.shape, additive in natural-log units.
    """
    e, zmax = exp_terms(scores, logit_mult, logit_shift, visible=visible, mask=mask)
    total = e.sum(axis=-1, keepdims=True)
    empty = zmax == EXCLUDED_LOGIT
    total = np.where(empty, 1 << EXP_ONE, total)
    # bit length of an integer < 2^53 from frexp (exact in float64)
    shift = np.frexp(total.astype(np.float64))[1].astype(np.int64) + RECIP_EXTRA_BITS
    recip = (np.int64(PROB_MAX) << shift) // total
    p = (e * recip + (np.int64(1) << (shift - 1))) >> shift
    p = np.where(empty, 0, np.minimum(p, PROB_MAX))
    return p.astype(np.int8)


def _query_len(shape: tuple[int, ...]) -> int:
    return shape[-2] if len(shape) >= 2 else 1


def _resolve_past_len(past_len: int | None, query_len: int, n: int) -> int:
    """Default past_len: the queries are the last rows of the key range (KV cache)."""
    return max(n - query_len, 0) if past_len is None else chk.past_len(past_len)


@dataclass(frozen=True)
class SoftmaxCall:
    """A validated softmax call: everything the kernel and the reference need."""

    x: np.ndarray
    logit_mult: int
    logit_shift: int
    causal: bool
    query_len: int
    past_len: int
    mask: np.ndarray | None


def prepare_call(
    x: Any,
    in_scale: Any,
    scale: Any = 1.0,
    *,
    mask: Any = None,
    causal: bool = False,
    past_len: int | None = None,
) -> SoftmaxCall:
    """Validates a softmax call (clear errors naming the argument)."""
    xa = chk.array("x", x, np.int8, min_ndim=1)
    total = chk.real_scale("in_scale", in_scale) * chk.real_scale("scale", scale)
    m, e = logit_requant(total)
    ma = None if mask is None else chk.mask(mask, xa.shape, "x")
    ql = _query_len(xa.shape)
    pl = _resolve_past_len(past_len, ql, xa.shape[-1]) if causal else 0
    return SoftmaxCall(xa, m, e, bool(causal), ql, pl, ma)


def _mask_rows(mask: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Element offset of every row's mask in the broadcast view, and the column stride.

    Computed by the kernel library (emulator/mask_host.h), the same code the
    plugin's softmax stage runs, so the two cannot drift apart.
    """
    offsets, col_stride = emulator.softmax_mask_rows(list(mask.shape), list(shape))
    return offsets, int(col_stride)


def run_call(c: SoftmaxCall) -> np.ndarray:
    """Runs a validated call on the host emulator."""
    if c.mask is None:
        return emulator.softmax_int8(c.x, c.logit_mult, c.logit_shift, c.causal, c.query_len,
                                     c.past_len)
    offsets, col_stride = _mask_rows(c.mask, c.x.shape)
    return emulator.softmax_int8(c.x, c.logit_mult, c.logit_shift, c.causal, c.query_len,
                                 c.past_len, c.mask, offsets, col_stride)


def reference_call(c: SoftmaxCall) -> np.ndarray:
    """The numpy integer reference of a validated call."""
    visible = None
    if c.causal:
        n = c.x.shape[-1]
        rows = np.arange(c.query_len, dtype=np.int64)
        vis = np.clip(rows + c.past_len + 1, 0, n)
        visible = np.broadcast_to(vis, c.x.shape[:-1]) if c.x.ndim >= 2 else vis[:1].reshape(())
    return fixed_point_softmax(c.x, c.logit_mult, c.logit_shift, visible=visible, mask=c.mask)


def softmax(x: np.ndarray, in_scale: float, scale: float = 1.0, *, mask: np.ndarray | None = None,
            causal: bool = False, past_len: int | None = None) -> np.ndarray:
    """Row softmax of int8 scores (real logit = x * in_scale * scale + mask) on the emulator.

    Returns int8 probabilities in 0..127 (real value p / 127), same shape as x.
    causal: row i of the second-to-last axis sees columns j <= i + past_len
    (past_len defaults to n - rows, the KV-cache convention). Excluded entries
    are 0; a row with every entry excluded is all zeros.
    """
    return run_call(prepare_call(x, in_scale, scale, mask=mask, causal=causal, past_len=past_len))


def softmax_reference(x: np.ndarray, in_scale: float, scale: float = 1.0, *,
                      mask: np.ndarray | None = None, causal: bool = False,
                      past_len: int | None = None) -> np.ndarray:
    """numpy integer reference of `softmax` (bit-identical)."""
    return reference_call(prepare_call(x, in_scale, scale, mask=mask, causal=causal,
                                       past_len=past_len))


def float_softmax(logits: np.ndarray, excluded: np.ndarray | None = None) -> np.ndarray:
    """float64 softmax over the last axis; excluded entries 0, all-excluded rows 0."""
    z = np.array(logits, dtype=np.float64)
    if excluded is not None:
        z = np.where(excluded, -np.inf, z)
    zmax = z.max(axis=-1, keepdims=True)
    empty = ~np.isfinite(zmax)
    ez = np.exp(z - np.where(empty, 0.0, zmax))
    ez = np.where(np.isfinite(z), ez, 0.0)
    tot = ez.sum(axis=-1, keepdims=True)
    return np.where(empty, 0.0, ez / np.where(tot > 0, tot, 1.0))


def softmax_float_reference(x: np.ndarray, in_scale: float, scale: float = 1.0, *,
                            mask: np.ndarray | None = None, causal: bool = False,
                            past_len: int | None = None) -> np.ndarray:
    """What the int8 kernel approximates: float softmax of the dequantized logits.

    Uses the kernel's exclusion rule (causal, mask NaN or <= -1e4) so rows
    compare like for like.
    """
    c = prepare_call(x, in_scale, scale, mask=mask, causal=causal, past_len=past_len)
    logits = c.x.astype(np.float64) * float(in_scale) * float(scale)
    excluded = np.zeros(c.x.shape, dtype=bool)
    if c.mask is not None:
        mb = np.broadcast_to(c.mask, c.x.shape).astype(np.float64)
        excluded |= ~(mb > float(MASK_EXCLUDE))
        logits = logits + np.where(excluded, 0.0, np.minimum(mb, float(MASK_LIMIT)))
    if c.causal:
        n = c.x.shape[-1]
        vis = np.clip(np.arange(c.query_len) + c.past_len + 1, 0, n)
        excluded |= np.arange(n) >= (vis[:, None] if c.x.ndim >= 2 else vis[:1])
    return float_softmax(logits, excluded)


# --- stage registration (kernels/STAGES.md) ----------------------------------
@dataclass(frozen=True)
class SoftmaxStage:
    """Parsed stage attrs: static scale (None in dynamic mode) and mask/causal options."""

    dynamic: bool
    in_scale: float | None
    scale: float
    causal: bool
    past_len: int | None
    has_mask: bool


def _parse_attrs(attrs: Attrs) -> SoftmaxStage:
    dynamic = bool(attrs.get("dynamic", False))
    in_scale = None if dynamic else chk.real_scale("attrs['in_scale']", attrs.get("in_scale"))
    pl = attrs.get("past_len")
    return SoftmaxStage(
        dynamic=dynamic,
        in_scale=in_scale,
        scale=chk.real_scale("attrs['scale']", attrs.get("scale", 1.0)),
        causal=bool(attrs.get("causal", False)),
        past_len=None if pl is None else chk.past_len(pl),
        has_mask=bool(attrs.get("has_mask", False)),
    )


def _stage_call(st: SoftmaxStage, inputs: Sequence[np.ndarray]) -> SoftmaxCall:
    want = 1 + int(st.dynamic) + int(st.has_mask)
    if len(inputs) != want:
        raise ValueError(f"softmax stage expects {want} inputs (x"
                         f"{', x_scale' if st.dynamic else ''}{', mask' if st.has_mask else ''}),"
                         f" got {len(inputs)}")
    x = inputs[0]
    in_scale = st.in_scale
    if st.dynamic:
        sc = chk.array("x_scale", inputs[1], np.float32, min_ndim=1)
        if sc.size != 1:
            raise ValueError(f"x_scale must hold one value, got shape {sc.shape}")
        in_scale = float(sc.reshape(-1)[0])
    mask = inputs[-1] if st.has_mask else None
    return prepare_call(x, in_scale, st.scale, mask=mask, causal=st.causal, past_len=st.past_len)


def _outputs(st: SoftmaxStage, p: np.ndarray) -> Arrays:
    return [p, np.array([PROB_SCALE], dtype=np.float32)] if st.dynamic else [p]


def _prepare(consts: Consts, attrs: Attrs) -> SoftmaxStage:
    return _parse_attrs(attrs)


def _run(state: SoftmaxStage, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    return _outputs(state, run_call(_stage_call(state, inputs)))


def _reference(consts: Consts, inputs: Sequence[np.ndarray], attrs: Attrs) -> Arrays:
    st = _parse_attrs(attrs)
    return _outputs(st, reference_call(_stage_call(st, inputs)))


def _macs(shapes: Sequence[tuple[int, ...]], consts: Consts, attrs: Attrs) -> int:
    # No matrix MACs; one normalising multiply per element is the honest count.
    return int(np.prod(shapes[0])) if shapes else 0


def _output_specs(ins: Sequence[BufferSpec], consts: dict[str, BufferSpec],
                  attrs: Attrs) -> list[BufferSpec]:
    """int8 probabilities of the logits' shape, plus the [1] float32 p_scale (1/127)
    in dynamic mode."""
    p = [BufferSpec("int8", ins[0].shape)]
    return p + [BufferSpec("float32", (1,))] if attrs.get("dynamic") else p


SPEC = register(KernelSpec(name="softmax", prepare=_prepare, run=_run, reference=_reference,
                           macs=_macs, output_specs=_output_specs))
