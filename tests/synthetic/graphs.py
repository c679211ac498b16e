"""Small ONNX graphs, built with onnx.helper, that mimic Whisper exports.

Shared by the partitioner tests (capability, regions, cost, report, and the
quantize/compile/rewrite stages). GraphBuilder is also the helper of
synthetic/regions.py (graphs with hand-made Regions). Each builder returns a checked ModelProto
with random float32 weights (seeded) and small dims so ONNX Runtime runs them
in milliseconds:

- encoder_layer(): Optimum's Whisper encoder layer: decomposed LayerNorm,
  decomposed attention (q scaled after its bias, k without bias, k^T through a
  second Transpose), Erf Gelu; optionally the Conv1d front end + positions.
- decoder_with_past_layer(): Optimum decoder_with_past: self-attention whose
  k/v are Concat(past, new) in head layout (outputs present.*), cross-attention
  on past encoder k/v inputs, Shape->Gather->Concat reshape targets, an lm head.
- fused_encoder_layer(): the same layer after onnxruntime.transformers'
  optimizer: LayerNormalization, com.microsoft Attention or MultiHeadAttention,
  SkipLayerNormalization, BiasGelu/FastGelu/Gelu.
- merged_decoder(): decoder_model_merged: an If on use_cache_branch whose
  branches are the with-past and without-past layers, weights in the outer graph.
- gelu_model(form) / layernorm_model(): single patterns in every exported ordering.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MS_DOMAIN = "com.microsoft"


class GraphBuilder:
    """Tiny helper: unique tensor names, initializers, nodes."""

    def __init__(self, prefix: str = "", seed: int = 0) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{self.prefix}{base}_{self.count}"

    def const(self, value, base: str = "c", dtype=np.float32) -> str:
        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), n))
        return n

    def weight(self, shape: tuple[int, ...], base: str = "w", scale: float = 0.1) -> str:
        return self.const(self.rng.standard_normal(shape).astype(np.float32) * scale, base)

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "",
           base: str | None = None, outputs: list[str] | None = None, **attrs) -> list[str]:
        base = base or op_type.lower()
        outs = outputs or [self.name(f"{base}_out") for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(base),
                                           domain=domain or None, **attrs))
        return outs

    def op1(self, op_type: str, inputs: list[str], **kw) -> str:
        return self.op(op_type, inputs, **kw)[0]

    # ---- explicitly named parts (graphs whose hand-made Regions cite node names) --------
    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def fan_in_weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        """Random weights scaled by 1/sqrt(fan_in), as a trained layer's are."""
        w = self.rng.standard_normal(shape) / np.sqrt(fan_in)
        return self.init(name, w.astype(np.float32))

    def node(self, op_type: str, inputs: list[str], outputs: list[str], name: str,
             **attrs: object) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0]

    # ---- building blocks (exported forms) ----------------------------------------------
    def linear(self, x: str, k: int, n: int, bias: bool = True, base: str = "fc") -> str:
        y = self.op1("MatMul", [x, self.weight((k, n), f"{base}.weight")], base=f"{base}_matmul")
        if bias:
            # torch exports `bias + x @ W` as Add(bias, matmul) — constant first
            y = self.op1("Add", [self.weight((n,), f"{base}.bias"), y], base=f"{base}_bias")
        return y

    def layernorm(self, x: str, d: int, eps: float = 1e-5) -> str:
        axes = self.const([-1], "axes", np.int64)
        mean = self.op1("ReduceMean", [x], axes=[-1], keepdims=1) if OPSET < 18 else \
            self.op1("ReduceMean", [x, axes], keepdims=1)
        dev = self.op1("Sub", [x, mean])
        sq = self.op1("Pow", [dev, self.const(2.0)])
        var = self.op1("ReduceMean", [sq], axes=[-1], keepdims=1)
        den = self.op1("Sqrt", [self.op1("Add", [var, self.const(eps)])])
        y = self.op1("Div", [dev, den])
        y = self.op1("Mul", [y, self.const(1.0 + 0.1 * self.rng.standard_normal(d), "ln.weight")])
        return self.op1("Add", [y, self.const(0.1 * self.rng.standard_normal(d), "ln.bias")])

    def gelu(self, x: str, form: str = "erf") -> str:
        if form == "erf":  # torch: (x * (erf(x / sqrt2) + 1)) * 0.5
            e = self.op1("Erf", [self.op1("Div", [x, self.const(math.sqrt(2.0))])])
            u = self.op1("Add", [e, self.const(1.0)])
            return self.op1("Mul", [self.op1("Mul", [x, u]), self.const(0.5)])
        if form == "erf-half-first":  # (x * 0.5) * (1 + erf(x * 1/sqrt2))
            h = self.op1("Mul", [x, self.const(0.5)])
            e = self.op1("Erf", [self.op1("Mul", [x, self.const(1.0 / math.sqrt(2.0))])])
            return self.op1("Mul", [h, self.op1("Add", [e, self.const(1.0)])])
        if form == "erf-half-middle":  # ((1 + erf) * 0.5) * x
            e = self.op1("Erf", [self.op1("Div", [x, self.const(math.sqrt(2.0))])])
            u = self.op1("Add", [e, self.const(1.0)])
            return self.op1("Mul", [self.op1("Mul", [u, self.const(0.5)]), x])
        if form in ("tanh", "tanh-mul"):
            if form == "tanh":
                cube = self.op1("Pow", [x, self.const(3.0)])
            else:
                cube = self.op1("Mul", [x, self.op1("Mul", [x, x])])
            inner = self.op1("Add", [x, self.op1("Mul", [cube, self.const(0.044715)])])
            t = self.op1("Tanh", [self.op1("Mul", [inner, self.const(math.sqrt(2 / math.pi))])])
            h = self.op1("Mul", [x, self.const(0.5)])
            return self.op1("Mul", [h, self.op1("Add", [t, self.const(1.0)])])
        raise ValueError(f"unknown gelu form {form!r}")

    def split_heads(self, x: str, heads: int, dh: int, shape_of: str | None = None) -> str:
        """[B,T,H*Dh] -> [B,H,T,Dh] via Reshape + Transpose(0,2,1,3)."""
        if shape_of is None:
            shape = self.const([0, -1, heads, dh], "shape", np.int64)
        else:  # Optimum-style dynamic target: Shape -> Gather(0) -> Concat
            b = self.op1("Gather", [self.op1("Shape", [shape_of]), self.const([0], "idx", np.int64)],
                         axis=0)
            shape = self.op1("Concat", [b, self.const([-1, heads, dh], "shp", np.int64)], axis=0)
        r = self.op1("Reshape", [x, shape])
        return self.op1("Transpose", [r], perm=[0, 2, 1, 3])

    def attention_core(self, q: str, k: str, v: str, d: int, mask: str | None = None,
                       shape_of: str | None = None, nan_guard: bool = False) -> str:
        """softmax(q k^T + mask) v on [B,H,T,Dh] heads, merged back to [B,T,D].

        nan_guard: torch's SDPA export with a mask, Where(IsNaN(p), 0, p)."""
        kt = self.op1("Transpose", [k], perm=[0, 1, 3, 2])
        s = self.op1("MatMul", [q, kt])
        if mask is not None:
            s = self.op1("Add", [s, mask])
        p = self.op1("Softmax", [s], axis=-1)
        if nan_guard:
            p = self.op1("Where", [self.op1("IsNaN", [p]), self.const(0.0), p])
        o = self.op1("MatMul", [p, v])
        o = self.op1("Transpose", [o], perm=[0, 2, 1, 3])
        if shape_of is None:
            shape = self.const([0, -1, d], "shape", np.int64)
        else:
            b = self.op1("Gather", [self.op1("Shape", [shape_of]),
                                    self.const([0], "idx", np.int64)], axis=0)
            shape = self.op1("Concat", [b, self.const([-1, d], "shp", np.int64)], axis=0)
        return self.op1("Reshape", [o, shape])

    def self_attention(self, x: str, d: int, heads: int, dynamic_shapes: bool = False) -> str:
        dh = d // heads
        s = x if dynamic_shapes else None
        q = self.op1("Mul", [self.linear(x, d, d, base="q_proj"), self.const(dh ** -0.5)])
        k = self.linear(x, d, d, bias=False, base="k_proj")
        v = self.linear(x, d, d, base="v_proj")
        o = self.attention_core(self.split_heads(q, heads, dh, s), self.split_heads(k, heads, dh, s),
                                self.split_heads(v, heads, dh, s), d, shape_of=s)
        return self.linear(o, d, d, base="out_proj")


def _model(graph: onnx.GraphProto, ms: bool = False, opset: int = OPSET) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", opset)]
    if ms:
        imports.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=imports, producer_name="xdna-ep-synthetic")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _vi(name: str, shape, dtype=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def encoder_layer(
    d: int = 32, heads: int = 4, ffn: int = 64, t: int = 20, layers: int = 1,
    front_end: bool = False, mels: int = 8, gelu: str = "erf", symbolic: bool = False,
    dynamic_shapes: bool = False, seed: int = 0,
) -> onnx.ModelProto:
    """Whisper encoder layer(s) as Optimum exports them (pre-LN, decomposed).

    dynamic_shapes: head reshapes take their target from Shape->Gather->Concat
    of the layer input (as torch.onnx does with dynamic axes) instead of a constant.
    """
    g = GraphBuilder(seed=seed)
    batch = "batch_size" if symbolic else 1
    if front_end:
        frames = "mel_frames" if symbolic else 2 * t
        inputs = [_vi("input_features", [batch, mels, frames])]
        h = g.op1("Conv", ["input_features", g.weight((d, mels, 3), "conv1.weight"),
                           g.weight((d,), "conv1.bias")], pads=[1, 1], strides=[1],
                  kernel_shape=[3])
        h = g.gelu(h, gelu)
        h = g.op1("Conv", [h, g.weight((d, d, 3), "conv2.weight"), g.weight((d,), "conv2.bias")],
                  pads=[1, 1], strides=[2], kernel_shape=[3])
        h = g.gelu(h, gelu)
        h = g.op1("Transpose", [h], perm=[0, 2, 1])
        x = g.op1("Add", [h, g.weight((t, d), "embed_positions.weight")])
    else:
        seq = "encoder_sequence_length / 2" if symbolic else t
        inputs = [_vi("hidden_states", [batch, seq, d])]
        x = "hidden_states"
    for _ in range(layers):
        a = g.self_attention(g.layernorm(x, d), d, heads, dynamic_shapes)
        x = g.op1("Add", [x, a])
        f = g.linear(g.gelu(g.linear(g.layernorm(x, d), d, ffn, base="fc1"), gelu), ffn, d,
                     base="fc2")
        x = g.op1("Add", [x, f])
    y = g.layernorm(x, d)
    g.nodes.append(helper.make_node("Identity", [y], ["last_hidden_state"], name="output_id"))
    graph = helper.make_graph(g.nodes, "encoder", inputs,
                              [_vi("last_hidden_state", [batch, "T" if symbolic else t, d])],
                              g.inits)
    return _model(graph)


def _decoder_body(
    g: GraphBuilder, x: str, d: int, heads: int, ffn: int, with_past: bool,
    outputs: dict[str, str], mask: str | None = "decoder_attention_bias",
) -> str:
    """One decoder layer; `outputs` receives present.* tensor names."""
    dh = d // heads
    ln = g.layernorm(x, d)
    q = g.op1("Mul", [g.linear(ln, d, d, base="self_q"), g.const(dh ** -0.5)])
    k = g.split_heads(g.linear(ln, d, d, bias=False, base="self_k"), heads, dh, shape_of=ln)
    v = g.split_heads(g.linear(ln, d, d, base="self_v"), heads, dh, shape_of=ln)
    if with_past:
        k = g.op1("Concat", ["past_key_values.0.decoder.key", k], axis=2,
                  outputs=[g.prefix + "present.0.decoder.key"])
        v = g.op1("Concat", ["past_key_values.0.decoder.value", v], axis=2,
                  outputs=[g.prefix + "present.0.decoder.value"])
    else:
        k = g.op1("Identity", [k], outputs=[g.prefix + "present.0.decoder.key"])
        v = g.op1("Identity", [v], outputs=[g.prefix + "present.0.decoder.value"])
    outputs["key"], outputs["value"] = k, v
    o = g.attention_core(g.split_heads(q, heads, dh, shape_of=ln), k, v, d,
                         mask=mask, shape_of=ln, nan_guard=mask is not None)
    x = g.op1("Add", [x, g.linear(o, d, d, base="self_out")])
    ln = g.layernorm(x, d)
    q = g.op1("Mul", [g.linear(ln, d, d, base="cross_q"), g.const(dh ** -0.5)])
    o = g.attention_core(g.split_heads(q, heads, dh), "past_key_values.0.encoder.key",
                         "past_key_values.0.encoder.value", d)
    x = g.op1("Add", [x, g.linear(o, d, d, base="cross_out")])
    f = g.linear(g.gelu(g.linear(g.layernorm(x, d), d, ffn, base="fc1")), ffn, d, base="fc2")
    x = g.op1("Add", [x, f])
    return g.op1("MatMul", [g.layernorm(x, d), g.weight((d, 2 * d), "proj_out.weight")],
                 base="lm_head")


def decoder_with_past_layer(
    d: int = 32, heads: int = 4, ffn: int = 64, tokens: int = 1, past: int = 6, enc: int = 10,
    seed: int = 1,
) -> onnx.ModelProto:
    """Optimum decoder_with_past (one layer): KV-cache Concat, cross-attention on
    past encoder k/v, an additive attention bias, and an lm head."""
    g = GraphBuilder(seed=seed)
    dh = d // heads
    outs: dict[str, str] = {}
    logits = _decoder_body(g, "hidden_states", d, heads, ffn, True, outs)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits_id"))
    inputs = [
        _vi("hidden_states", [1, tokens, d]),
        _vi("decoder_attention_bias", [1, 1, tokens, past + tokens]),
        _vi("past_key_values.0.decoder.key", [1, heads, past, dh]),
        _vi("past_key_values.0.decoder.value", [1, heads, past, dh]),
        _vi("past_key_values.0.encoder.key", [1, heads, enc, dh]),
        _vi("past_key_values.0.encoder.value", [1, heads, enc, dh]),
    ]
    outputs = [_vi("logits", [1, tokens, 2 * d]),
               _vi("present.0.decoder.key", [1, heads, past + tokens, dh]),
               _vi("present.0.decoder.value", [1, heads, past + tokens, dh])]
    return _model(helper.make_graph(g.nodes, "decoder_with_past", inputs, outputs, g.inits))


def merged_decoder(d: int = 32, heads: int = 4, ffn: int = 64, seed: int = 2) -> onnx.ModelProto:
    """decoder_model_merged: If(use_cache_branch) with both layer variants.

    The branches read their weights from the outer graph's initializers, as
    Optimum's merge does (shared weights are de-duplicated into the main graph).
    """
    dh = d // heads
    branches = {}
    outer_inits: list[onnx.TensorProto] = []
    for with_past in (True, False):
        g = GraphBuilder(prefix="wp_" if with_past else "np_", seed=seed)
        outs: dict[str, str] = {}
        logits = _decoder_body(g, "hidden_states", d, heads, ffn, with_past, outs,
                               mask="decoder_attention_bias" if with_past else None)
        g.nodes.append(helper.make_node("Identity", [logits], [g.prefix + "logits"],
                                        name=g.prefix + "logits_id"))
        outer_inits += g.inits
        branches[with_past] = helper.make_graph(
            g.nodes, "with_past" if with_past else "no_past", [],
            [_vi(g.prefix + "logits", [1, 1, 2 * d]), _vi(outs["key"], [1, heads, "P", dh]),
             _vi(outs["value"], [1, heads, "P", dh])])
    if_node = helper.make_node("If", ["use_cache_branch"],
                               ["logits", "present.0.decoder.key", "present.0.decoder.value"],
                               name="optimum::if", then_branch=branches[True],
                               else_branch=branches[False])
    inputs = [
        _vi("use_cache_branch", [1], TensorProto.BOOL),
        _vi("hidden_states", [1, 1, d]),
        _vi("decoder_attention_bias", [1, 1, 1, 7]),
        _vi("past_key_values.0.decoder.key", [1, heads, 6, dh]),
        _vi("past_key_values.0.decoder.value", [1, heads, 6, dh]),
        _vi("past_key_values.0.encoder.key", [1, heads, 10, dh]),
        _vi("past_key_values.0.encoder.value", [1, heads, 10, dh]),
    ]
    outputs = [_vi("logits", [1, 1, 2 * d]), _vi("present.0.decoder.key", [1, heads, "P", dh]),
               _vi("present.0.decoder.value", [1, heads, "P", dh])]
    return _model(helper.make_graph([if_node], "decoder_merged", inputs, outputs, outer_inits))


def fused_encoder_layer(
    d: int = 32, heads: int = 4, ffn: int = 64, t: int = 20, attention: str = "Attention",
    gelu: str = "BiasGelu", seed: int = 3,
) -> onnx.ModelProto:
    """The encoder layer after onnxruntime.transformers' optimizer (fused ops)."""
    g = GraphBuilder(seed=seed)
    x = "hidden_states"
    ln = g.op1("LayerNormalization", [x, g.const(np.ones(d), "ln1.weight"),
                                      g.const(np.zeros(d), "ln1.bias")], axis=-1, epsilon=1e-5)
    if attention == "Attention":
        a = g.op1("Attention", [ln, g.weight((d, 3 * d), "qkv.weight"),
                                g.weight((3 * d,), "qkv.bias")], domain=MS_DOMAIN,
                  num_heads=heads)
    elif attention == "MultiHeadAttention":
        q = g.linear(ln, d, d, bias=False, base="q_proj")
        k = g.linear(ln, d, d, bias=False, base="k_proj")
        v = g.linear(ln, d, d, bias=False, base="v_proj")
        a = g.op1("MultiHeadAttention", [q, k, v, g.weight((3 * d,), "qkv.bias")],
                  domain=MS_DOMAIN, num_heads=heads)
    else:
        raise ValueError(f"attention must be Attention or MultiHeadAttention, got {attention!r}")
    proj = g.op1("MatMul", [a, g.weight((d, d), "out_proj.weight")])
    ln2, _m, _s, resid = g.op("SkipLayerNormalization",
                              [proj, x, g.const(np.ones(d), "ln2.weight"),
                               g.const(np.zeros(d), "ln2.bias"), g.weight((d,), "out_proj.bias")],
                              n_out=4, domain=MS_DOMAIN, epsilon=1e-5)
    # unused optional outputs are left empty, as the optimizer does
    g.nodes[-1].output[1] = ""
    g.nodes[-1].output[2] = ""
    h = g.op1("MatMul", [ln2, g.weight((d, ffn), "fc1.weight")])
    if gelu == "BiasGelu":
        h = g.op1("BiasGelu", [h, g.weight((ffn,), "fc1.bias")], domain=MS_DOMAIN)
    elif gelu == "FastGelu":
        h = g.op1("FastGelu", [h, g.weight((ffn,), "fc1.bias")], domain=MS_DOMAIN)
    elif gelu == "Gelu":
        h = g.op1("Gelu", [g.op1("Add", [h, g.weight((ffn,), "fc1.bias")])], domain=MS_DOMAIN)
    else:
        raise ValueError(f"unknown fused gelu {gelu!r}")
    f = g.linear(h, ffn, d, base="fc2")
    y = g.op1("Add", [resid, f], outputs=["last_hidden_state"])
    graph = helper.make_graph(g.nodes, "encoder_fused", [_vi(x, [1, t, d])],
                              [_vi(y, [1, t, d])], g.inits)
    return _model(graph, ms=True)


def gelu_model(form: str, n: int = 16, opset: int = OPSET) -> onnx.ModelProto:
    """A MatMul followed by one Gelu in the given exported form.

    Forms: erf, erf-half-first, erf-half-middle, tanh, tanh-mul (patterns),
    onnx-Gelu / onnx-Gelu-tanh (opset 20 op).
    """
    g = GraphBuilder(seed=4)
    h = g.linear("x", n, n)
    if form.startswith("onnx-Gelu"):
        opset = max(opset, 20)
        y = g.op1("Gelu", [h], approximate="tanh" if form.endswith("tanh") else "none")
    else:
        y = g.gelu(h, form)
    g.nodes.append(helper.make_node("Identity", [y], ["y"], name="out_id"))
    graph = helper.make_graph(g.nodes, f"gelu_{form}", [_vi("x", [1, 4, n])], [_vi("y", [1, 4, n])],
                              g.inits)
    return _model(graph, opset=opset)


# Whisper tiny.en architecture: d_model 384, 4+4 layers, 6 heads, FFN 1536
TINY_EN = dict(vocab_size=51864, num_mel_bins=80, encoder_layers=4, decoder_layers=4,
               encoder_attention_heads=6, decoder_attention_heads=6, d_model=384,
               encoder_ffn_dim=1536, decoder_ffn_dim=1536, max_source_positions=1500,
               max_target_positions=448, decoder_start_token_id=50257, eos_token_id=50256,
               pad_token_id=50256, bos_token_id=50256)


def export_random_whisper(out_dir, seed: int = 0, **config) -> dict[str, str]:
    """Export a randomly initialised Whisper (tiny.en architecture by default)
    with Optimum, offline: the real exporter's graphs without any weights from a
    hub. Returns {"encoder_model": path, "decoder_model": ..., ...}.

    Needs the `export` extra (torch, transformers, optimum, optimum-onnx).
    """
    import os
    from pathlib import Path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from optimum.exporters.onnx import main_export
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    out = Path(out_dir)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**{**TINY_EN, **config})).eval()
    model.save_pretrained(out / "pt")
    main_export(str(out / "pt"), output=str(out / "onnx"),
                task="automatic-speech-recognition-with-past", do_validation=False)
    return {p.stem: str(p) for p in (out / "onnx").glob("*.onnx")}
