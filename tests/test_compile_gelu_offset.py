"""Static GELU outputs read only by a matmul get a centred int8 range (passes/gelu_offset.py):
the offset is in the GELU table and in the matmul's bias."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from xdna_ep.compile import CompileOptions, compile_region
from xdna_ep.compile.execute import run_program
from xdna_ep.compile.observe import sqnr_db
from xdna_ep.kernel_specs.gelu import build_table
from xdna_ep.plan import OpMatch, Region

K, N = 64, 256
RNG = np.random.default_rng(5)


def _mlp(gelu_is_output: bool = False) -> tuple[onnx.ModelProto, Region]:
    """y = Gelu(x W1 + b1) W2 + b2 (a Whisper FFN without the layer norm)."""
    w1 = (RNG.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    w2 = (RNG.standard_normal((N, K)) / np.sqrt(N)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
             numpy_helper.from_array(np.full(N, -0.3, np.float32), "b1"),
             numpy_helper.from_array(np.full(K, 0.05, np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["m1"], name="fc1"),
             helper.make_node("Add", ["m1", "b1"], ["h"], name="fc1_b"),
             helper.make_node("Gelu", ["h"], ["g"], name="gelu"),
             helper.make_node("MatMul", ["g", "W2"], ["m2"], name="fc2"),
             helper.make_node("Add", ["m2", "b2"], ["y"], name="fc2_b")]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", K])]
    if gelu_is_output:
        outs.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, ["n", N]))
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", K])],
                          outs, inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    region = Region(0, [
        OpMatch("matmul", ("fc1", "fc1_b"), ("x",), ("h",), {"weight": "W1", "bias": "b1"}),
        OpMatch("gelu", ("gelu",), ("h",), ("g",), {"approximate": "none", "bias": None}),
        OpMatch("matmul", ("fc2", "fc2_b"), ("g",), ("y",), {"weight": "W2", "bias": "b2"}),
    ], ["x"], ["y", "g"] if gelu_is_output else ["y"])
    return model, region


def _samples() -> list[dict[str, np.ndarray]]:
    return [{"x": (RNG.standard_normal((48, K)) * 2).astype(np.float32)} for _ in range(4)]


def _fp32(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return [s.run(["y"], f)[0] for f in samples]


def test_offset_in_table_and_bias_and_better_than_symmetric() -> None:
    model, region = _mlp()
    samples = _samples()
    progs = {}
    for offset in (False, True):
        prog, plan = compile_region(model, region,
                                    CompileOptions("static", samples, "minmax",
                                                   gelu_offset=offset))
        assert prog is not None, plan.fallbacks
        progs[offset] = prog
    sym, cen = (progs[False].stages(), progs[True].stages())
    assert [s.kernel for s in cen] == ["matmul", "gelu", "matmul"]
    assert "out_offset" not in sym[1].attrs
    gelu, fc2 = cen[1].attrs, cen[2]
    off, scale = gelu["out_offset"], gelu["out_scale"]
    # a whole number of steps (0 stays a code), about half the symmetric step
    assert off / scale == pytest.approx(round(off / scale), abs=1e-4) and off > 0
    assert scale < 0.6 * sym[1].attrs["out_scale"]
    assert fc2.attrs["in_scale"] == scale
    assert progs[True].meta["offsets"] == {"g": off}
    np.testing.assert_array_equal(
        progs[True].constants[cen[1].consts["table"]],
        build_table(gelu["in_scale"], scale, "none", off))
    # the fc2 bias carries offset x sum_k W[k, n] (the device's int8 weights x scales)
    c = progs[True].constants
    w = c[fc2.consts["weight"]].astype(np.float64) * c[fc2.consts["w_scale"]]
    np.testing.assert_allclose(c[fc2.consts["bias"]], 0.05 + off * w.sum(axis=0), rtol=1e-6,
                               atol=1e-6)
    # and it is more accurate than the symmetric range on the same data
    ref = _fp32(model, samples)
    db = {k: sqnr_db(ref, [run_program(p, s).outputs["y"] for s in samples])
          for k, p in progs.items()}
    assert db[True] > db[False] + 0.5, db


def test_no_offset_for_a_gelu_output_that_leaves_the_region_or_in_dynamic_mode() -> None:
    model, region = _mlp(gelu_is_output=True)
    samples = _samples()
    prog, plan = compile_region(model, region, CompileOptions("static", samples, "minmax"))
    assert prog is not None, plan.fallbacks
    assert all("out_offset" not in s.attrs for s in prog.stages())
    assert prog.meta["offsets"] == {}
    model, region = _mlp()
    prog, plan = compile_region(model, region, CompileOptions("dynamic"))
    assert prog is not None, plan.fallbacks
    assert all("out_offset" not in s.attrs for s in prog.stages())
