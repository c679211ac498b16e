"""Each graph pass of passes/ run alone on a hand-built lowered region."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from xdna_ep.compile.ir import LOp, LoweredRegion
from xdna_ep.compile.model_index import ModelIndex, NotLowerable
from xdna_ep.kernel_specs.gelu import gelu_float
from xdna_ep.passes import PASSES, fold_bias, fuse_qkv, gelu_offset, split_outliers
from xdna_ep.passes.base import PassContext
from xdna_ep.quantize.calibration import Tap
from xdna_ep.quantize.region import QuantizedRegion

RNG = np.random.default_rng(13)
D, H = 16, 32


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _mlp_model(w1: np.ndarray, w2: np.ndarray, gb: np.ndarray):  # type: ignore[no-untyped-def]
    """x -> MatMul(W1) -> h -> Gelu -> g -> MatMul(W2) -> y (the FP32 model passes read)."""
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="fc1"),
             helper.make_node("Gelu", ["h"], ["g"], name="gelu"),
             helper.make_node("MatMul", ["g", "W2"], ["y"], name="fc2")]
    inits = [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
             numpy_helper.from_array(gb, "gb")]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 8, D])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, D])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def _mlp(w1: np.ndarray, w2: np.ndarray, b2: np.ndarray | None = None,
         fold: str | None = None) -> LoweredRegion:
    fc2_w = {"weight": w2} if b2 is None else {"weight": w2, "bias": b2}
    ops = [LOp("matmul", ("x",), ("h",), {"weight": w1}, {}, ("fc1",)),
           LOp("gelu", ("h",), ("g",), {}, {"approximate": "none", "fold_bias": fold}, ("gelu",)),
           LOp("matmul", ("g",), ("y",), fc2_w, {}, ("fc2",))]
    return LoweredRegion(0, ops, ["x"], ["y"], {t: Tap(t) for t in "xhgy"})


def _run_float(lr: LoweredRegion, x: np.ndarray) -> dict[str, np.ndarray]:
    """The lowered ops in float64 (what any correct rewrite must keep)."""
    env = {"x": x.astype(np.float64)}
    for op in lr.ops:
        a = [env[t] for t in op.inputs]
        if op.kernel == "matmul":
            y = a[0] @ op.weights["weight"].astype(np.float64)
            if "bias" in op.weights:
                y = y + op.weights["bias"]
            cuts = np.cumsum(op.attrs.get("split", [y.shape[-1]]))[:-1]
            env.update(zip(op.outputs, np.split(y, cuts, axis=-1), strict=True))
        elif op.kernel == "gelu":
            env[op.outputs[0]] = gelu_float(a[0], op.attrs["approximate"])
        elif op.kernel == "add":
            env[op.outputs[0]] = a[0] + a[1]
        else:
            raise AssertionError(op.kernel)
    return env


def test_the_pass_list_in_order() -> None:
    assert [(p.name, p.point) for p in PASSES] == [
        ("fold_bias", "lowered"), ("fuse_qkv", "lowered"),
        ("split_outliers", "calibrated"), ("gelu_offset", "quantized")]


def test_fold_bias_moves_a_gelu_bias_into_its_matmul() -> None:
    w1, w2, gb = _f32(D, H), _f32(H, D), _f32(H)
    lr = _mlp(w1, w2, fold="gb")
    x = _f32(1, 8, D)
    want = gelu_float((x @ w1).astype(np.float64) + gb, "none") @ w2
    fold_bias.run(lr, PassContext(ModelIndex(_mlp_model(w1, w2, gb))))
    mm, ge = lr.ops[0], lr.ops[1]
    assert mm.outputs == ("h::biased",) and ge.inputs == ("h::biased",)
    np.testing.assert_array_equal(mm.weights["bias"], gb)
    assert "fold_bias" not in ge.attrs
    assert lr.taps["h::biased"] == Tap("h", add="gb", add_cols=None)
    np.testing.assert_allclose(_run_float(lr, x)["y"], want, rtol=1e-5, atol=1e-5)


def test_fold_bias_refuses_a_matmul_output_read_elsewhere() -> None:
    w1, w2, gb = _f32(D, H), _f32(H, D), _f32(H)
    lr = _mlp(w1, w2, fold="gb")
    lr.outputs.append("h")  # h leaves the region: its value must stay bias-free
    with pytest.raises(NotLowerable, match="bias can only be folded"):
        fold_bias.run(lr, PassContext(ModelIndex(_mlp_model(w1, w2, gb))))


def _attention(inputs: tuple[str, str, str]) -> LoweredRegion:
    ops = [LOp("matmul", (inputs[i],), (r,), {"weight": _f32(D, D), "bias": _f32(D)}, {},
               (f"{r}_proj",)) for i, r in enumerate("qkv")]
    ops.append(LOp("attention", ("q", "k", "v"), ("o",), {}, {"num_heads": 2}, ("att",)))
    return LoweredRegion(0, ops, sorted(set(inputs)), ["o"], {})


def test_fuse_qkv_merges_projections_of_one_input() -> None:
    lr = _attention(("x", "x", "x"))
    before = [op.weights for op in lr.ops[:3]]
    fuse_qkv.run(lr, PassContext(None))  # type: ignore[arg-type]
    assert [op.kernel for op in lr.ops] == ["matmul", "attention"]
    mm = lr.ops[0]
    assert mm.outputs == ("q", "k", "v") and mm.attrs["split"] == [D, D, D]
    np.testing.assert_array_equal(mm.weights["weight"],
                                  np.concatenate([b["weight"] for b in before], axis=1))
    np.testing.assert_array_equal(mm.weights["bias"],
                                  np.concatenate([b["bias"] for b in before]))
    assert mm.source_nodes == ("q_proj", "k_proj", "v_proj")


def test_fuse_qkv_leaves_cross_attention_alone() -> None:
    lr = _attention(("dec", "enc", "enc"))
    fuse_qkv.run(lr, PassContext(None))  # type: ignore[arg-type]
    assert [op.kernel for op in lr.ops] == ["matmul", "matmul", "matmul", "attention"]


def test_split_outliers_splits_the_outlier_channels_and_keeps_the_function() -> None:
    w1, w2 = _f32(D, H) * 0.3, _f32(H, D)
    w1[:, 5] *= 60.0  # channel 5 of h: far beyond the others on any input
    model = _mlp_model(w1, w2, np.zeros(H, np.float32))
    lr = _mlp(w1, w2, b2=_f32(D))
    lr.ops[1].attrs.pop("fold_bias")
    x = _f32(1, 8, D)
    want = _run_float(lr, x)["y"]
    samples = [{"x": _f32(1, 8, D)} for _ in range(3)]
    ctx = PassContext(ModelIndex(model), model=model, samples=samples, fuse_qkv=True)
    split_outliers.run([lr], ctx)
    assert lr.meta["outlier_channels"] == {"h": [5]}
    assert [op.kernel for op in lr.ops] == ["matmul", "gelu", "gelu", "matmul", "matmul",
                                            "add"]
    assert lr.ops[0].attrs["split"] == [H - 1, 1]
    assert lr.taps["h::outl"].take == (5,) and lr.taps["g::outl"].gelu == "none"
    np.testing.assert_allclose(_run_float(lr, x)["y"], want, rtol=1e-5, atol=1e-4)


def test_split_outliers_leaves_an_ordinary_mlp_alone() -> None:
    w1, w2 = _f32(D, H), _f32(H, D)
    model = _mlp_model(w1, w2, np.zeros(H, np.float32))
    lr = _mlp(w1, w2)
    samples = [{"x": _f32(1, 8, D)} for _ in range(2)]
    split_outliers.run([lr], PassContext(ModelIndex(model), model=model, samples=samples))
    assert "outlier_channels" not in lr.meta and len(lr.ops) == 3


class _Buffers:
    def __init__(self, produced: dict[str, str]) -> None:
        self.produced = produced


def test_gelu_offset_centres_a_gelu_output_read_by_a_matmul() -> None:
    lr = _mlp(_f32(D, H), _f32(H, D))
    qr = QuantizedRegion(0, "static", "minmax", scales={"h": 0.05, "g": 0.04})
    gelu_offset.run(lr, _Buffers({"g": "int8"}), qr, PassContext(None))  # type: ignore[arg-type]
    offset, scale = qr.offsets["g"]
    vals = gelu_float(np.arange(-127, 128) * np.float64(np.float32(0.05)), "none")
    assert scale == pytest.approx((vals.max() - vals.min()) / 254.0, rel=1e-6)
    steps = offset / scale
    assert steps == pytest.approx(round(steps), abs=1e-4) and offset > 0  # whole steps
    # codes -127..127 cover GELU of the input's codes, up to the half step the whole-step
    # offset rounds away (the symmetric range would waste the negative half)
    lo, hi = offset - 127 * scale, offset + 127 * scale
    assert lo <= vals.min() + scale / 2 + 1e-9 and hi >= vals.max() - scale / 2 - 1e-9


def test_gelu_offset_only_where_every_consumer_is_a_matmul() -> None:
    lr = _mlp(_f32(D, H), _f32(H, D))
    lr.outputs.append("g")  # also a region output: stays symmetric
    qr = QuantizedRegion(0, "static", "minmax", scales={"h": 0.05, "g": 0.04})
    gelu_offset.run(lr, _Buffers({"g": "int8"}), qr, PassContext(None))  # type: ignore[arg-type]
    assert qr.offsets == {}
    dyn = QuantizedRegion(0, "dynamic", "dynamic")
    gelu_offset.run(_mlp(_f32(D, H), _f32(H, D)), _Buffers({"g": "int8"}), dyn,
                    PassContext(None))  # type: ignore[arg-type]
    assert dyn.offsets == {}
