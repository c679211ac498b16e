"""Synthetic Whisper-like graphs with their hand-made Regions (compile and runtime tests).

Why: compile/ and quantize/ must be tested on the real layer structure
(pre-LN attention block + GELU MLP, 384 dims, 6 heads, like tiny.en) before
any real model or the capability pass is at hand. The graphs are written the
way Optimum exports Whisper (decomposed attention with a scaling Mul on q,
k projection without bias), and the OpMatch objects follow the attribute
conventions documented in xdna_ep.plan.OpMatch. Weights are random with
realistic magnitudes (fan-in scaled), inputs have a few large-valued
channels as Whisper activations do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from xdna_ep.plan import OpMatch, Region

from .graphs import GraphBuilder

OPSET = 20


@dataclass
class SyntheticModel:
    model: onnx.ModelProto
    region: Region
    input_name: str
    input_shape: tuple[int, ...]
    channel_axis: int = -1

    def samples(self, n: int, seed: int = 0, outliers: float = 6.0) -> list[dict[str, np.ndarray]]:
        """`n` random feeds; channels 0..3 scaled by `outliers` (Whisper-like spikes)."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            x = rng.standard_normal(self.input_shape).astype(np.float32)
            idx: list[slice] = [slice(None)] * x.ndim
            idx[self.channel_axis] = slice(0, 4)
            x[tuple(idx)] *= np.float32(outliers)
            out.append({self.input_name: x})
        return out


def matmul(g: GraphBuilder, p: str, x: str, k: int, n: int, bias: bool = True
            ) -> tuple[str, OpMatch]:
    w = g.fan_in_weight(f"{p}.weight", (k, n), k)
    mm = g.node("MatMul", [x, w], [f"{p}.mm"], f"{p}/MatMul")
    nodes: tuple[str, ...] = (f"{p}/MatMul",)
    b = None
    out = mm
    if bias:
        b = g.init(f"{p}.bias", (g.rng.standard_normal(n) * 0.02).astype(np.float32))
        out = g.node("Add", [b, mm], [f"{p}.out"], f"{p}/Add")
        nodes += (f"{p}/Add",)
    return out, OpMatch("matmul", nodes, (x,), (out,),
                        {"weight": w, "bias": b, "transpose_b": False}, pattern="MatMul+Add")


def layernorm(g: GraphBuilder, p: str, x: str, d: int) -> tuple[str, OpMatch]:
    gamma = g.init(f"{p}.weight", (1.0 + 0.1 * g.rng.standard_normal(d)).astype(np.float32))
    beta = g.init(f"{p}.bias", (0.05 * g.rng.standard_normal(d)).astype(np.float32))
    y = g.node("LayerNormalization", [x, gamma, beta], [f"{p}.out"], f"{p}/LayerNorm",
               axis=-1, epsilon=1e-5)
    return y, OpMatch("layernorm", (f"{p}/LayerNorm",), (x,), (y,),
                      {"epsilon": 1e-5, "gamma": gamma, "beta": beta, "skip": None},
                      pattern="LayerNormalization")


def attention(g: GraphBuilder, p: str, q: str, k: str, v: str, heads: int, d: int
               ) -> tuple[str, OpMatch]:
    dh = d // heads
    shp = g.init(f"{p}.heads_shape", np.array([0, -1, heads, dh], np.int64))
    merged = g.init(f"{p}.merged_shape", np.array([0, -1, d], np.int64))
    sc = g.init(f"{p}.scaling", np.array(dh ** -0.5, np.float32))
    names = [f"{p}/Mul", f"{p}/Reshape_q", f"{p}/Transpose_q", f"{p}/Reshape_k",
             f"{p}/Transpose_k", f"{p}/Reshape_v", f"{p}/Transpose_v", f"{p}/MatMul_qk",
             f"{p}/Softmax", f"{p}/MatMul_pv", f"{p}/Transpose_o", f"{p}/Reshape_o"]
    qs = g.node("Mul", [q, sc], [f"{p}.q_scaled"], names[0])
    qh = g.node("Reshape", [qs, shp], [f"{p}.qh"], names[1])
    qt = g.node("Transpose", [qh], [f"{p}.qt"], names[2], perm=[0, 2, 1, 3])
    kh = g.node("Reshape", [k, shp], [f"{p}.kh"], names[3])
    kt = g.node("Transpose", [kh], [f"{p}.kt"], names[4], perm=[0, 2, 3, 1])
    vh = g.node("Reshape", [v, shp], [f"{p}.vh"], names[5])
    vt = g.node("Transpose", [vh], [f"{p}.vt"], names[6], perm=[0, 2, 1, 3])
    s = g.node("MatMul", [qt, kt], [f"{p}.scores"], names[7])
    pr = g.node("Softmax", [s], [f"{p}.probs"], names[8], axis=-1)
    o = g.node("MatMul", [pr, vt], [f"{p}.ctx"], names[9])
    ot = g.node("Transpose", [o], [f"{p}.ctx_t"], names[10], perm=[0, 2, 1, 3])
    out = g.node("Reshape", [ot, merged], [f"{p}.out"], names[11])
    return out, OpMatch("attention", tuple(names), (q, k, v), (out,),
                        {"num_heads": heads, "scale": float(np.float32(dh ** -0.5)), "q": q,
                         "k": k, "v": v, "mask": None, "causal": False},
                        pattern="decomposed")


def encoder_layer(d: int = 384, heads: int = 6, ffn: int = 1536, t: int = 100,
                  batch: int = 1, seed: int = 0, layers: int = 1) -> SyntheticModel:
    """`layers` Whisper encoder layers: x + attn(ln1(x)); h + fc2(gelu(fc1(ln2(h))))."""
    g = GraphBuilder(seed=seed)
    x = "hidden_states"
    cur = x
    matches: list[OpMatch] = []
    for li in range(layers):
        p = f"layers.{li}"
        ln1, m = layernorm(g, f"{p}.self_attn_layer_norm", cur, d)
        matches.append(m)
        q, mq = matmul(g, f"{p}.self_attn.q_proj", ln1, d, d)
        k, mk = matmul(g, f"{p}.self_attn.k_proj", ln1, d, d, bias=False)
        v, mv = matmul(g, f"{p}.self_attn.v_proj", ln1, d, d)
        att, ma = attention(g, f"{p}.self_attn", q, k, v, heads, d)
        o, mo = matmul(g, f"{p}.self_attn.out_proj", att, d, d)
        h = g.node("Add", [cur, o], [f"{p}.residual1"], f"{p}/Add_residual1")
        madd1 = OpMatch("add", (f"{p}/Add_residual1",), (cur, o), (h,), pattern="Add")
        ln2, ml2 = layernorm(g, f"{p}.final_layer_norm", h, d)
        f1, m1 = matmul(g, f"{p}.fc1", ln2, d, ffn)
        ge = g.node("Gelu", [f1], [f"{p}.gelu"], f"{p}/Gelu")
        mg = OpMatch("gelu", (f"{p}/Gelu",), (f1,), (ge,), {"approximate": "none", "bias": None},
                     pattern="Gelu")
        f2, m2 = matmul(g, f"{p}.fc2", ge, ffn, d)
        out = g.node("Add", [h, f2], [f"{p}.out"], f"{p}/Add_residual2")
        madd2 = OpMatch("add", (f"{p}/Add_residual2",), (h, f2), (out,), pattern="Add")
        matches += [mq, mk, mv, ma, mo, madd1, ml2, m1, mg, m2, madd2]
        cur = out
    shape = (batch, t, d)
    graph = helper.make_graph(
        g.nodes, "synthetic_whisper_encoder",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "frames", d])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, ["batch", "frames", d])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    region = Region(0, matches, [x], [cur])
    return SyntheticModel(model, region, x, shape)


def conv_frontend(n_mels: int = 80, d: int = 384, t: int = 200, batch: int = 1, seed: int = 0,
                  positions: bool = False) -> SyntheticModel:
    """Whisper's front end: gelu(conv2(gelu(conv1(mel)))), conv2 with stride 2; with
    `positions`, also Transpose(0, 2, 1) + a constant [T/2, D] position table (the
    output is then [B, T/2, D], as Optimum's export has it)."""
    g = GraphBuilder(seed=seed)
    x = "input_features"
    matches: list[OpMatch] = []
    cur = x
    for i, (cin, stride) in enumerate(((n_mels, 1), (d, 2)), start=1):
        w = g.fan_in_weight(f"conv{i}.weight", (d, cin, 3), cin * 3)
        b = g.init(f"conv{i}.bias", (0.02 * g.rng.standard_normal(d)).astype(np.float32))
        c = g.node("Conv", [cur, w, b], [f"conv{i}.out"], f"/conv{i}/Conv", kernel_shape=[3],
                   pads=[1, 1], strides=[stride])
        matches.append(OpMatch("conv1d", (f"/conv{i}/Conv",), (cur,), (c,),
                               {"weight": w, "bias": b, "stride": stride, "pad": 1,
                                "dilation": 1, "group": 1}, pattern="Conv"))
        ge = g.node("Gelu", [c], [f"conv{i}.gelu"], f"/conv{i}/Gelu")
        matches.append(OpMatch("gelu", (f"/conv{i}/Gelu",), (c,), (ge,),
                               {"approximate": "none", "bias": None}, pattern="Gelu"))
        cur = ge
    out_dims: list[Any] = ["batch", d, "frames2"]
    if positions:
        t2 = (t + 2 - 3) // 2 + 1
        table = g.init("embed_positions.weight",
                       (0.5 * g.rng.standard_normal((t2, d))).astype(np.float32))
        tr = g.node("Transpose", [cur], ["conv.transposed"], "/Transpose", perm=[0, 2, 1])
        pos = g.node("Add", [tr, table], ["positioned"], "/Add_positions")
        matches.append(OpMatch("add", ("/Transpose", "/Add_positions"), (cur,), (pos,),
                               {"a": cur, "table": table, "transpose_a": True},
                               pattern="TransposePositionAdd"))
        cur, out_dims = pos, ["batch", t2, d]
    graph = helper.make_graph(
        g.nodes, "synthetic_whisper_frontend",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", n_mels, "frames"])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, out_dims)],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return SyntheticModel(model, Region(0, matches, [x], [cur]), x, (batch, n_mels, t), 1)


def fused_encoder_layer(d: int = 384, heads: int = 6, ffn: int = 1536, t: int = 100,
                        batch: int = 1, seed: int = 0, attention: str = "Attention"
                        ) -> SyntheticModel:
    """The layer as onnxruntime.transformers' optimizer leaves it (com.microsoft ops):
    LayerNorm -> Attention (packed QKV) or q/k/v MatMuls -> MultiHeadAttention (bias)
    -> MatMul -> SkipLayerNormalization (out_proj bias, sum output) -> MatMul ->
    BiasGelu -> MatMul+Add -> Add(sum)."""
    if attention not in ("Attention", "MultiHeadAttention"):
        raise ValueError(f"attention must be 'Attention' or 'MultiHeadAttention', "
                         f"got {attention!r}")
    g = GraphBuilder(seed=seed)
    x = "hidden_states"
    ln1, mln1 = layernorm(g, "ln1", x, d)
    matches: list[OpMatch] = [mln1]
    qkv_b = g.init("qkv.bias", (g.rng.standard_normal(3 * d) * 0.02).astype(np.float32))
    if attention == "Attention":
        w = g.fan_in_weight("qkv.weight", (d, 3 * d), d)
        att = g.node("Attention", [ln1, w, qkv_b], ["attn.out"], "attn/Attention",
                     domain="com.microsoft", num_heads=heads)
        matches.append(OpMatch("attention", ("attn/Attention",), (ln1,), (att,),
                               {"fused": "Attention", "weight": w, "bias": qkv_b, "q": ln1,
                                "k": None, "v": None, "mask": None, "past": None,
                                "num_heads": heads, "scale": None, "causal": False},
                               pattern="com.microsoft.Attention"))
    else:
        qkv = []
        for role in "qkv":
            out, mm = matmul(g, f"{role}_proj", ln1, d, d, bias=False)
            qkv.append(out)
            matches.append(mm)
        att = g.node("MultiHeadAttention", [*qkv, qkv_b], ["attn.out"], "attn/MHA",
                     domain="com.microsoft", num_heads=heads)
        matches.append(OpMatch("attention", ("attn/MHA",), tuple(qkv), (att,),
                               {"fused": "MultiHeadAttention", "q": qkv[0], "k": qkv[1],
                                "v": qkv[2], "bias": qkv_b, "mask": None, "num_heads": heads,
                                "scale": None, "causal": False, "k_layout": "bsd"},
                               pattern="com.microsoft.MultiHeadAttention"))
    wo = g.fan_in_weight("out_proj.weight", (d, d), d)
    proj = g.node("MatMul", [att, wo], ["out_proj.mm"], "out_proj/MatMul")
    matches.append(OpMatch("matmul", ("out_proj/MatMul",), (att,), (proj,),
                           {"weight": wo, "bias": None, "transpose_b": False}, pattern="MatMul"))
    gamma = g.init("ln2.weight", (1.0 + 0.1 * g.rng.standard_normal(d)).astype(np.float32))
    beta = g.init("ln2.bias", (0.05 * g.rng.standard_normal(d)).astype(np.float32))
    bo = g.init("out_proj.bias", (0.02 * g.rng.standard_normal(d)).astype(np.float32))
    g.nodes.append(helper.make_node("SkipLayerNormalization", [proj, x, gamma, beta, bo],
                                    ["ln2.out", "", "", "residual"], name="ln2/SkipLN",
                                    domain="com.microsoft", epsilon=1e-5))
    matches.append(OpMatch("layernorm", ("ln2/SkipLN",), (proj, x), ("ln2.out", "residual"),
                           {"epsilon": 1e-5, "gamma": gamma, "beta": beta, "skip": x,
                            "bias": bo, "x": proj, "sum_output": "residual"},
                           pattern="SkipLayerNormalization"))
    w1 = g.fan_in_weight("fc1.weight", (d, ffn), d)
    h = g.node("MatMul", ["ln2.out", w1], ["fc1.mm"], "fc1/MatMul")
    matches.append(OpMatch("matmul", ("fc1/MatMul",), ("ln2.out",), (h,),
                           {"weight": w1, "bias": None, "transpose_b": False}, pattern="MatMul"))
    b1 = g.init("fc1.bias", (g.rng.standard_normal(ffn) * 0.02).astype(np.float32))
    ge = g.node("BiasGelu", [h, b1], ["gelu.out"], "fc1/BiasGelu", domain="com.microsoft")
    matches.append(OpMatch("gelu", ("fc1/BiasGelu",), (h,), (ge,),
                           {"approximate": "none", "bias": b1, "x": h}, pattern="BiasGelu"))
    f2, m2 = matmul(g, "fc2", ge, ffn, d)
    matches.append(m2)
    out = g.node("Add", ["residual", f2], ["last_hidden_state"], "out/Add")
    matches.append(OpMatch("add", ("out/Add",), ("residual", f2), (out,), pattern="Add"))
    graph = helper.make_graph(
        g.nodes, "synthetic_whisper_encoder_fused",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["batch", "frames", d])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", "frames", d])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    return SyntheticModel(model, Region(0, matches, [x], [out]), x, (batch, t, d))
