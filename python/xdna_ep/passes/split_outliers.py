"""MLP outlier split: fc1 channels with outliers get their own int8 tensors.

Why: on real speech, Whisper's last encoder layer has a few fc1 channels whose
pre-GELU values are tens of times larger than every other channel's. A
per-tensor int8 scale for the GELU output (= fc2's input) then either clips them
(percentile calibration) or flushes every ordinary value to zero (minmax); the
measured cost in encoder output SQNR is in docs/ACCURACY.md.

The rewrite gives those channels their own int8 tensors. For the outlier
channels C and the rest R of an fc1 -> gelu -> fc2 chain:

    fc1 -> [h_R, h_C]        one split-output matmul (columns reordered R then C,
                             one out_scale each: the attrs["split"] form the fused
                             q/k/v projection uses), or two matmuls without split
    gelu(h_R), gelu(h_C)     two gelu stages, each with its own scales and table
    fc2 = fc2_R(gelu(h_R)) + fc2_C(gelu(h_C))
                             fc2's weight rows split the same way (K = |R| and
                             |C|), float32 outputs, one float32 add (bias on fc2_R)

When the chain is a whole Whisper FFN block (layernorm -> fc1 -> gelu -> fc2 ->
residual add) the split takes the form of two such blocks instead, outlier group
first: r' = r + fc2_C(gelu(fc1_C(ln(x)))), out = r' + fc2_R(gelu(fc1_R(ln(x)))),
the layernorm recomputed in the second block; each block is the manifest's
`ffn_block` chain, so the split costs one extra launch, where the form above
costs six.

In real arithmetic this is the same function (a permutation of fc1's columns
and the matching split of fc2's sum over K); only the int8 scales differ, which
is the point. All stages are existing kernels under their STAGES.md contracts;
the calibration taps follow the split (Tap.take / Tap.gelu), so every scale is
fitted to the values the program actually quantizes.

Channels are chosen from the calibration data when there is any: channel c is
an outlier when its largest value exceeds `ratio` times the median of the
per-channel maxima, at most 1/64 of the channels.

Without calibration data (dynamic mode, the provider's default) they are chosen
from the weights alone, for a chain whose fc1 reads a layernorm (every
transformer MLP): the layernorm's normalised row z has ||z||_2 <= sqrt(C), so
Cauchy-Schwarz bounds fc1's output channel c on every input by

    |h_c| <= |b1_c + sum_k beta_k W1[k, c]| + sqrt(C) * ||gamma * W1[:, c]||_2,

and channel c is an outlier when its bound exceeds DATA_FREE_RATIO times the
median bound (same 1/64 cap). On tiny.en this picks exactly the three last-layer
channels that reach ~470-560 on speech (1124, 1208, 1430: bound 5.5-6.6 x the
median; the next, 515, is at 2.3 x) and nothing in layers 0-2 (largest bound
2.1 x); the effect is measured in docs/ACCURACY.md.
The channels go to Program.meta["outlier_channels"].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import onnx

from ..compile.ir import LOp, LoweredRegion, toposort
from ..quantize.calibration import TAP_SUFFIX, Tap, cpu_session, tap_model
from .base import PassContext

DEFAULT_RATIO = 8.0
DATA_FREE_RATIO = 4.0
MAX_SHARE = 1.0 / 64.0


@dataclass(frozen=True)
class MlpChain:
    """Indices into LoweredRegion.ops of fc1 -> gelu -> fc2."""

    fc1: int
    gelu: int
    fc2: int


def _users(ops: Sequence[LOp], t: str) -> list[int]:
    return [i for i, op in enumerate(ops) if t in op.inputs]


def find_mlp_chains(lr: LoweredRegion) -> list[MlpChain]:
    """fc1 -> gelu -> fc2 chains whose intermediates feed nothing else."""
    ops, outs = lr.ops, set(lr.outputs)
    found = []
    for gi, g in enumerate(ops):
        if g.kernel != "gelu" or len(g.outputs) != 1:
            continue
        h, y = g.inputs[0], g.outputs[0]
        prod = [i for i, op in enumerate(ops) if h in op.outputs]
        users_y = _users(ops, y)
        if len(prod) != 1 or len(users_y) != 1 or h in outs or y in outs:
            continue
        fc1, fc2 = ops[prod[0]], ops[users_y[0]]
        if (fc1.kernel != "matmul" or fc2.kernel != "matmul" or len(fc1.outputs) != 1
                or len(fc2.outputs) != 1 or "split" in fc1.attrs or "split" in fc2.attrs
                or _users(ops, h) != [gi] or fc2.inputs[0] != y):
            continue
        found.append(MlpChain(prod[0], gi, users_y[0]))
    return found


def channel_maxima(model: onnx.ModelProto, taps: dict[str, Tap],
                   samples: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per tap: the largest value of each last-axis channel over all samples (FP32 model)."""
    if not taps:
        return {}
    with cpu_session(tap_model(model, taps), "xdna_outl_") as sess:
        feed_names = [i.name for i in sess.get_inputs()]
        keys = list(taps)
        out: dict[str, np.ndarray] = {}
        for s in samples:
            vals = sess.run([k + TAP_SUFFIX for k in keys], {k: s[k] for k in feed_names})
            for k, v in zip(keys, vals, strict=True):
                m = np.asarray(v, np.float32).reshape(-1, v.shape[-1]).max(axis=0)
                out[k] = m if k not in out else np.maximum(out[k], m)
    return out


def outlier_channels(maxima: np.ndarray, ratio: float = DEFAULT_RATIO,
                     max_share: float = MAX_SHARE) -> list[int]:
    """Channels whose maximum exceeds `ratio` x the median channel maximum (largest first,
    at most max_share of the channels)."""
    if ratio <= 1.0:
        raise ValueError(f"outlier ratio must be > 1, got {ratio!r}")
    m = np.asarray(maxima, np.float64)
    med = float(np.median(m))
    if not np.all(np.isfinite(m)) or med <= 0.0:
        return []
    cand = np.flatnonzero(m > ratio * med)
    cand = cand[np.argsort(-m[cand], kind="stable")]
    return sorted(int(c) for c in cand[:max(1, int(len(m) * max_share))])


def weight_bounds(lr: LoweredRegion, chain: MlpChain) -> np.ndarray | None:
    """Per fc1 output channel, the bound of |h_c| over every input (module docstring),
    from the weights of the layernorm feeding fc1; None when fc1 does not read a
    layernorm output (no data-free bound)."""
    ops = lr.ops
    a = ops[chain.fc1].inputs[0]
    prod = [op for op in ops if a in op.outputs]
    if len(prod) != 1 or prod[0].kernel != "layernorm" or len(prod[0].outputs) != 1:
        return None
    gamma = np.asarray(prod[0].weights["gamma"], np.float64).reshape(-1)
    beta = np.asarray(prod[0].weights.get("beta", np.zeros_like(gamma)),
                      np.float64).reshape(-1)
    w1 = np.asarray(ops[chain.fc1].weights["weight"], np.float64)
    if w1.shape[0] != gamma.size:
        return None
    b1 = np.asarray(ops[chain.fc1].weights.get("bias", np.zeros(w1.shape[1])), np.float64)
    return np.abs(b1 + beta @ w1) + np.sqrt(gamma.size) * np.linalg.norm(gamma[:, None] * w1,
                                                                         axis=0)


def _ffn_context(lr: LoweredRegion, chain: MlpChain) -> tuple[int, int] | None:
    """(layernorm index, residual add index) when the chain is a whole Whisper FFN
    block: layernorm -> fc1 -> gelu -> fc2 -> add, fc2's output feeding only the add."""
    ops = lr.ops
    a, o = ops[chain.fc1].inputs[0], ops[chain.fc2].outputs[0]
    prod = [i for i, op in enumerate(ops) if a in op.outputs]
    users = _users(ops, o)
    if (len(prod) == 1 and ops[prod[0]].kernel == "layernorm" and len(users) == 1
            and ops[users[0]].kernel == "add" and o not in lr.outputs
            and len(ops[users[0]].inputs) == 2 and ops[users[0]].inputs.count(o) == 1):
        return prod[0], users[0]
    return None


def _split_ffn(lr: LoweredRegion, chain: MlpChain, ln_i: int, add_i: int,
               groups: list[tuple[str, np.ndarray]], approx: str) -> None:
    """The FFN-block form: two complete layernorm -> fc1 -> gelu -> fc2 -> add blocks,
    outlier channels first (added to the residual), the rest second (bias of fc2
    here). Each block is the manifest's `ffn_block` chain, so the split costs one
    launch, not a new design; the layernorm is recomputed for the second block
    (identical values: same input, same constants)."""
    ops = lr.ops
    ln, fc1, gelu, fc2, add = (ops[i] for i in (ln_i, chain.fc1, chain.gelu, chain.fc2, add_i))
    a, h, y, o, out = ln.outputs[0], fc1.outputs[0], gelu.outputs[0], fc2.outputs[0], \
        add.outputs[0]
    resid = add.inputs[1] if add.inputs[0] == o else add.inputs[0]
    w1, w2 = fc1.weights["weight"], fc2.weights["weight"]
    b1 = fc1.weights.get("bias", np.zeros(w1.shape[1], np.float32))
    base = lr.taps.get(h, Tap(h))
    new: list[LOp] = []
    acc = resid
    for k, (tag, idx) in enumerate(groups):
        take = tuple(int(x) for x in idx)
        a_k = a if k == 0 else f"{a}::{tag}"
        h_k, y_k, o_k = f"{h}::{tag}", f"{y}::{tag}", f"{o}::{tag}"
        sum_k = out if k == len(groups) - 1 else f"{out}::{tag}"
        lr.taps[h_k] = replace(base, take=take)
        lr.taps[y_k] = replace(base, take=take, gelu=approx)
        if k == 0:
            new.append(ln)
        else:
            lr.taps[a_k] = lr.taps.get(a, Tap(a))
            new.append(LOp("layernorm", ln.inputs, (a_k,), dict(ln.weights), dict(ln.attrs),
                           ln.source_nodes))
        new.append(LOp("matmul", (a_k,), (h_k,), {"weight": np.ascontiguousarray(w1[:, idx]),
                                                  "bias": np.ascontiguousarray(b1[idx])},
                       {}, fc1.source_nodes))
        new.append(LOp("gelu", (h_k,), (y_k,), {}, dict(gelu.attrs), gelu.source_nodes))
        wts = {"weight": np.ascontiguousarray(w2[idx, :])}
        if k == len(groups) - 1 and "bias" in fc2.weights:
            wts["bias"] = fc2.weights["bias"]
        new.append(LOp("matmul", (y_k,), (o_k,), wts, {}, fc2.source_nodes))
        # keep the add's operand order: a broadcasting residual (add kernel_version 3:
        # [1, T, D] or [T, D]) must stay b, the operand the kernel repeats
        pair = (o_k, acc) if add.inputs[0] == o else (acc, o_k)
        new.append(LOp("add", pair, (sum_k,), {}, {}, add.source_nodes))
        acc = sum_k
    drop = {ln_i, chain.fc1, chain.gelu, chain.fc2, add_i}
    kept = [op for i, op in enumerate(ops) if i not in drop]
    at = sum(1 for i in range(ln_i) if i not in drop)
    lr.ops[:] = toposort(kept[:at] + new + kept[at:], list(lr.inputs))


def split_chain(lr: LoweredRegion, chain: MlpChain, channels: Sequence[int],
                fused: bool = True) -> None:
    """Applies the rewrite of the module docstring to one chain (in place).

    A whole FFN block (layernorm -> fc1 -> gelu -> fc2 -> residual add) becomes two
    such blocks (_split_ffn). Otherwise fused: fc1 becomes one split-output matmul
    (attrs["split"], as for the fused q/k/v projections); False: two matmuls on
    the same input."""
    ops = lr.ops
    fc1, gelu, fc2 = ops[chain.fc1], ops[chain.gelu], ops[chain.fc2]
    w1 = fc1.weights["weight"]
    n = w1.shape[1]
    b1 = fc1.weights.get("bias", np.zeros(n, np.float32))
    w2 = fc2.weights["weight"]
    if w2.shape[0] != n:
        raise ValueError(f"fc2 weight {w2.shape} does not follow fc1 weight {w1.shape}")
    out_c = np.asarray(sorted(set(int(c) for c in channels)), np.int64)
    if out_c.size == 0 or out_c[0] < 0 or out_c[-1] >= n or out_c.size == n:
        raise ValueError(f"outlier channels {list(channels)[:5]} are not a proper subset of "
                         f"0..{n - 1}")
    rest = np.setdiff1d(np.arange(n), out_c)
    ctx = _ffn_context(lr, chain)
    if ctx is not None:
        _split_ffn(lr, chain, ctx[0], ctx[1], [("outl", out_c), ("main", rest)],
                   str(gelu.attrs.get("approximate", "none")))
        return
    h, y, o = fc1.outputs[0], gelu.outputs[0], fc2.outputs[0]
    base = lr.taps.get(h, Tap(h))
    approx = str(gelu.attrs.get("approximate", "none"))
    new: list[LOp] = []
    parts = []
    for tag, idx in (("main", rest), ("outl", out_c)):
        hp, yp, op_ = f"{h}::{tag}", f"{y}::{tag}", f"{o}::{tag}"
        take = tuple(int(x) for x in idx)
        lr.taps[hp] = replace(base, take=take)
        lr.taps[yp] = replace(base, take=take, gelu=approx)
        parts.append((idx, hp, yp, op_))
    src = fc1.source_nodes
    if fused:
        order = np.concatenate([rest, out_c])
        new.append(LOp("matmul", fc1.inputs, (parts[0][1], parts[1][1]),
                       {"weight": np.ascontiguousarray(w1[:, order]),
                        "bias": np.ascontiguousarray(b1[order])},
                       {"split": [int(rest.size), int(out_c.size)]}, src))
    else:
        for idx, hp, _, _ in parts:
            new.append(LOp("matmul", fc1.inputs, (hp,),
                           {"weight": np.ascontiguousarray(w1[:, idx]),
                            "bias": np.ascontiguousarray(b1[idx])}, {}, src))
    for _, hp, yp, _ in parts:
        new.append(LOp("gelu", (hp,), (yp,), {}, dict(gelu.attrs), gelu.source_nodes))
    for k, (idx, _, yp, op_) in enumerate(parts):
        wts = {"weight": np.ascontiguousarray(w2[idx, :])}
        if k == 0 and "bias" in fc2.weights:
            wts["bias"] = fc2.weights["bias"]
        new.append(LOp("matmul", (yp,), (op_,), wts, {}, fc2.source_nodes))
    new.append(LOp("add", (parts[0][3], parts[1][3]), (o,), {}, {}, fc2.source_nodes))
    first, last = min(chain.fc1, chain.gelu, chain.fc2), max(chain.fc1, chain.gelu, chain.fc2)
    keep = [op for i, op in enumerate(ops[first:last + 1], first)
            if i not in (chain.fc1, chain.gelu, chain.fc2)]
    ops[first:last + 1] = keep + new


def split_outliers(model: onnx.ModelProto, regions: Sequence[LoweredRegion],
                   samples: Sequence[dict[str, np.ndarray]] | None,
                   ratio: float = DEFAULT_RATIO, fused: bool = True,
                   data_free_ratio: float = DATA_FREE_RATIO) -> dict[int, dict[str, list[int]]]:
    """Finds and rewrites outlier channels in every region; returns
    region id -> {fc1 output tensor: channels} for the regions that changed.
    samples None: channels from the weight bounds (weight_bounds, data_free_ratio);
    chains without a layernorm before fc1 are then left alone."""
    chains = {lr.region_id: find_mlp_chains(lr) for lr in regions}
    taps: dict[str, Tap] = {}
    for lr in regions:
        for ch in chains[lr.region_id]:
            h = lr.ops[ch.fc1].outputs[0]
            taps[h] = lr.taps.get(h, Tap(h))
    maxima = channel_maxima(model, taps, samples) if taps and samples is not None else {}
    done: dict[int, dict[str, list[int]]] = {}
    for lr in regions:
        # rewrite from the last chain back, so earlier indices stay valid
        for ch in sorted(chains[lr.region_id], key=lambda x: -x.fc2):
            h = lr.ops[ch.fc1].outputs[0]
            if samples is not None:
                cols = outlier_channels(maxima[h], ratio)
            else:
                bounds = weight_bounds(lr, ch)
                cols = [] if bounds is None else outlier_channels(bounds, data_free_ratio)
            if cols:
                split_chain(lr, ch, cols, fused)
                done.setdefault(lr.region_id, {})[h] = cols
    return done


def run(regions: Sequence[LoweredRegion], ctx: PassContext) -> None:
    """split_outliers over `regions` (compile_plan passes the main-graph ones: an If
    branch cannot be observed on the FP32 model); channels from ctx.samples, or from
    the weights when there are none; records the channels in each changed region's
    meta."""
    assert ctx.model is not None
    done = split_outliers(ctx.model, list(regions), ctx.samples, ctx.outlier_ratio,
                          ctx.fuse_qkv)
    for lr in regions:
        if lr.region_id in done:
            lr.meta["outlier_channels"] = done[lr.region_id]
