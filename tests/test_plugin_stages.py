"""Every stage kind through the plugin library's native runner equals the Python
emulator (EmulatorDevice) bit for bit: one-stage Programs, written as EPContext
models, run by ONNX Runtime on libxdna_ep_provider.so."""

from __future__ import annotations

import numpy as np
import pytest
from plugin_support import one_stage_program, plugin_session, write_program_model

from xdna_ep.compile.program import TensorSpec as T
from xdna_ep.runtime import EmulatorDevice

RNG = np.random.default_rng(7)


def i8(*shape: int) -> np.ndarray:
    return RNG.integers(-127, 128, size=shape, dtype=np.int8)


def f32(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def s(v: float) -> np.ndarray:
    return np.array([v], np.float32)


W = i8(16, 12)
CASES = {
    "quantize_static": (dict(kernel="quantize", inputs=[T("x", "float32", ("M", 8))],
                             outputs=[T("q", "int8", ("M", 8))], attrs={"out_scale": 0.02}),
                        {"x": f32(5, 8)}),
    "quantize_dynamic": (dict(kernel="quantize", inputs=[T("x", "float32", (3, 8))],
                              outputs=[T("q", "int8", (3, 8)), T("qs", "float32", (1,))],
                              attrs={"dynamic": True}), {"x": f32(3, 8)}),
    "dequantize_dynamic": (dict(kernel="dequantize", inputs=[T("q", "int8", (4, 3)),
                                                             T("qs", "float32", (1,))],
                                outputs=[T("x", "float32", (4, 3))], attrs={"dynamic": True}),
                           {"q": i8(4, 3), "qs": s(0.03)}),
    "matmul_split_int8_f32_input": (
        dict(kernel="matmul", inputs=[T("a", "float32", ("M", 16))],
             outputs=[T("y0", "int8", ("M", 4)), T("y1", "int8", ("M", 8))],
             consts={"weight": W, "w_scale": np.abs(f32(12, scale=0.01)) + 1e-3,
                     "bias": f32(12)},
             attrs={"in_scale": 0.05, "out_scales": [0.1, 0.2], "split": [4, 8],
                    "out": "int8"}),
        {"a": f32(5, 16)}),
    "matmul_dynamic_f32": (
        dict(kernel="matmul", inputs=[T("a", "int8", (2, 3, 16)), T("as", "float32", (1,))],
             outputs=[T("y", "float32", (2, 3, 12))],
             consts={"weight": W, "w_scale": np.abs(f32(12, scale=0.01)) + 1e-3},
             attrs={"dynamic": True, "out": "float32"}),
        {"a": i8(2, 3, 16), "as": s(0.04)}),
    "gelu_static_tanh_offset": (
        dict(kernel="gelu", inputs=[T("x", "int8", (6, 5))], outputs=[T("y", "int8", (6, 5))],
             attrs={"in_scale": 0.03, "out_scale": 0.02, "approximate": "tanh",
                    "out_offset": -0.1}),
        {"x": i8(6, 5)}),
    "gelu_dynamic": (dict(kernel="gelu", inputs=[T("x", "int8", (7,)), T("xs", "float32", (1,))],
                          outputs=[T("y", "int8", (7,)), T("ys", "float32", (1,))],
                          attrs={"dynamic": True}), {"x": i8(7), "xs": s(0.05)}),
    "add_int8_static_broadcast": (
        dict(kernel="add", inputs=[T("a", "int8", (4, 8)), T("b", "int8", (8,))],
             outputs=[T("c", "int8", (4, 8))],
             attrs={"a_scale": 0.04, "b_scale": 0.05, "out_scale": 0.06}),
        {"a": i8(4, 8), "b": i8(8)}),
    "add_int8_dynamic": (
        dict(kernel="add", inputs=[T("a", "int8", (3, 4)), T("as", "float32", (1,)),
                                   T("b", "int8", (3, 4)), T("bs", "float32", (1,))],
             outputs=[T("c", "int8", (3, 4)), T("cs", "float32", (1,))],
             attrs={"dynamic": True}),
        {"a": i8(3, 4), "as": s(0.02), "b": i8(3, 4), "bs": s(0.07)}),
    "add_int8_dynamic_broadcast": (  # b [5, 6] over a [2, 5, 6]: uneven column ranges
        dict(kernel="add", inputs=[T("a", "int8", (2, 5, 6)), T("as", "float32", (1,)),
                                   T("b", "int8", (5, 6)), T("bs", "float32", (1,))],
             outputs=[T("c", "int8", (2, 5, 6)), T("cs", "float32", (1,))],
             attrs={"dynamic": True}),
        {"a": i8(2, 5, 6), "as": s(0.03), "b": i8(5, 6), "bs": s(0.05)}),
    "add_f32_constant_b": (  # a constant table over the batch (ops/add.py match_table_add)
        dict(kernel="add", inputs=[T("a", "float32", (3, 6, 8))],
             outputs=[T("c", "float32", (3, 6, 8))], consts={"b": f32(6, 8)}),
        {"a": f32(3, 6, 8)}),
    "add_f32_activation_b_leading_ones": (  # issue 15: [B, T, D] + [1, T, D], b an input
        dict(kernel="add", inputs=[T("a", "float32", (3, 6, 8)), T("b", "float32", (1, 6, 8))],
             outputs=[T("c", "float32", (3, 6, 8))]),
        {"a": f32(3, 6, 8), "b": f32(1, 6, 8)}),
    "add_f32_activation_b_suffix": (
        dict(kernel="add", inputs=[T("a", "float32", (2, 6, 8)), T("b", "float32", (6, 8))],
             outputs=[T("c", "float32", (2, 6, 8))]),
        {"a": f32(2, 6, 8), "b": f32(6, 8)}),
    "add_position_table": (
        dict(kernel="add", inputs=[T("a", "float32", (2, 8, 6))],
             outputs=[T("c", "float32", (2, 6, 8))], consts={"b": f32(6, 8)},
             attrs={"transpose_a": True, "table_rows": 6}),
        {"a": f32(2, 8, 6)}),
    "layernorm_int8_dynamic": (
        dict(kernel="layernorm", inputs=[T("x", "int8", (3, 16)), T("xs", "float32", (1,))],
             outputs=[T("y", "int8", (3, 16)), T("ys", "float32", (1,))],
             consts={"gamma": f32(16), "beta": f32(16)},
             attrs={"dynamic": True, "out": "int8", "epsilon": 1e-5}),
        {"x": i8(3, 16), "xs": s(0.05)}),
    "layernorm_f32_to_int8_static": (
        dict(kernel="layernorm", inputs=[T("x", "float32", (2, 5, 16))],
             outputs=[T("y", "int8", (2, 5, 16))], consts={"gamma": f32(16), "beta": f32(16)},
             attrs={"out": "int8", "out_scale": 0.03, "epsilon": 1e-6}),
        {"x": f32(2, 5, 16, scale=3.0)}),
    "softmax_causal_mask": (
        dict(kernel="softmax", inputs=[T("x", "int8", (2, 4, 6)), T("m", "float32", (4, 6))],
             outputs=[T("p", "int8", (2, 4, 6))],
             attrs={"in_scale": 0.05, "scale": 0.7, "causal": True, "has_mask": True}),
        {"x": i8(2, 4, 6), "m": f32(4, 6)}),
    "softmax_dynamic": (
        dict(kernel="softmax", inputs=[T("x", "int8", (3, 5)), T("xs", "float32", (1,))],
             outputs=[T("p", "int8", (3, 5)), T("ps", "float32", (1,))],
             attrs={"dynamic": True, "scale": 1.0}),
        {"x": i8(3, 5), "xs": s(0.1)}),
    "attention_static_int8_mask": (
        dict(kernel="attention", inputs=[T("q", "int8", (1, 5, 8)), T("k", "int8", (1, 5, 8)),
                                         T("v", "int8", (1, 5, 8)),
                                         T("m", "float32", (1, 1, 5, 5))],
             outputs=[T("o", "int8", (1, 5, 8))],
             attrs={"num_heads": 2, "softmax_scale": 0.5, "q_scale": 0.02, "k_scale": 0.03,
                    "v_scale": 0.04, "out": "int8", "out_scale": 0.05, "has_mask": True}),
        {"q": i8(1, 5, 8), "k": i8(1, 5, 8), "v": i8(1, 5, 8), "m": f32(1, 1, 5, 5)}),
    "attention_dynamic_causal": (
        dict(kernel="attention",
             inputs=[T("q", "int8", (2, 3, 8)), T("qs", "float32", (1,)),
                     T("k", "int8", (2, 6, 8)), T("ks", "float32", (1,)),
                     T("v", "int8", (2, 6, 8)), T("vs", "float32", (1,))],
             outputs=[T("o", "int8", (2, 3, 8)), T("os", "float32", (1,))],
             attrs={"dynamic": True, "num_heads": 4, "softmax_scale": 0.7, "causal": True,
                    "out": "int8"}),
        {"q": i8(2, 3, 8), "qs": s(0.02), "k": i8(2, 6, 8), "ks": s(0.03), "v": i8(2, 6, 8),
         "vs": s(0.04)}),
    "conv1d_static": (
        dict(kernel="conv1d", inputs=[T("x", "float32", (1, 4, 10))],
             outputs=[T("y", "float32", (1, 6, 5))],
             consts={"weight": i8(6, 4, 3), "w_scale": np.abs(f32(6, scale=0.01)) + 1e-3,
                     "bias": f32(6)},
             attrs={"stride": 2, "pad": 1, "in_scale": 0.03, "out": "float32"}),
        {"x": f32(1, 4, 10)}),
    "conv1d_dynamic": (
        dict(kernel="conv1d", inputs=[T("x", "float32", (2, 4, 9))],
             outputs=[T("y", "float32", (2, 6, 9))],
             consts={"weight": i8(6, 4, 3), "w_scale": np.abs(f32(6, scale=0.01)) + 1e-3,
                     "bias": f32(6)},
             attrs={"stride": 1, "pad": 1, "dynamic": True, "out": "float32"}),
        {"x": f32(2, 4, 9)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stage_bit_exact_with_python_emulator(case, tmp_path):
    spec, feeds = CASES[case]
    prog = one_stage_program(case, **spec)
    want = EmulatorDevice().load(prog).run(feeds)
    sess = plugin_session(write_program_model(prog, tmp_path / f"{case}.onnx"))
    assert sess.get_providers()[0] == "XDNAExecutionProvider"
    got = sess.run(None, feeds)
    for t, g in zip(prog.outputs, got, strict=True):
        w = want[t.name]
        assert g.dtype == w.dtype and g.shape == w.shape, t.name
        assert g.tobytes() == w.tobytes(), f"{case}: output {t.name} differs"


def test_every_registered_kernel_has_a_case():
    from xdna_ep.kernel_specs import registry

    registry.get("matmul")  # imports every kernel module
    assert {c["kernel"] for c, _ in CASES.values()} == set(registry.KERNELS)
