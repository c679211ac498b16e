"""Issue 15: a 2-D Conv whose kernel equals its stride (ViT/DeiT/CLIP patch
embedding) runs as CPU re-layout nodes + an INT8 MatMul on the NPU path
(ops/patch_conv.py); other 2-D Convs stay on the CPU with their reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import xdna_ep
from xdna_ep.partition import partition_model

EP = "XDNAExecutionProvider"


def _conv_model(x_shape: list, cout: int, kernel: tuple[int, int], *, strides=None,
                pads=None, dilations=None, group: int = 1, auto_pad: str | None = None,
                bias: bool = True, seed: int = 0) -> onnx.ModelProto:
    """x -> Conv -> y, the Conv's weight and bias random constants."""
    rng = np.random.default_rng(seed)
    cin = x_shape[1] // group
    w = (rng.standard_normal((cout, cin, *kernel)) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    ins = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), "b"))
        ins.append("b")
    kw = {"kernel_shape": list(kernel), "strides": list(strides or kernel), "group": group}
    if auto_pad is not None:
        kw["auto_pad"] = auto_pad
    else:
        kw["pads"] = list(pads or [0, 0, 0, 0])
    if dilations is not None:
        kw["dilations"] = list(dilations)
    g = helper.make_graph(
        [helper.make_node("Conv", ins, ["y"], name="conv", **kw)], "patch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _session(model: onnx.ModelProto, cache) -> xdna_ep.InferenceSession:
    return xdna_ep.InferenceSession(
        model.SerializeToString(), providers=[EP, "CPUExecutionProvider"],
        provider_options=[{"device": "emulator", "cache_dir": str(cache)}, {}])


def _ort_cpu(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    return ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feed)[0]


SHAPES = {
    # x shape, cout, kernel
    "vit-like-rgb": ([1, 3, 32, 32], 48, (8, 8)),
    "non-square-image": ([1, 3, 24, 40], 32, (8, 8)),
    "grey-batch2": ([2, 1, 28, 28], 16, (4, 4)),
    "non-square-patch": ([2, 3, 16, 24], 24, (4, 8)),
    "remainder-dropped": ([1, 3, 30, 35], 16, (8, 8)),  # the Conv floors 30/8, 35/8
}


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_patch_conv_matmul_on_npu_matches_ort_cpu(case, tmp_path, no_cost_model):
    x_shape, cout, kernel = SHAPES[case]
    model = _conv_model(x_shape, cout, kernel)
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    sess = _session(model, tmp_path)
    rows = {n.name: n for n in sess.xdna_plan.nodes}
    assert rows["conv/patch_matmul"].placement == "npu", rows["conv/patch_matmul"].reason
    assert rows["conv/patch_bias"].placement == "npu"
    assert "conv" not in rows  # replaced by its re-layout + MatMul form
    relayout = [n for n in sess.xdna_plan.nodes if "/xdna_patch/" in n.name]
    assert relayout and all(n.placement == "cpu" and n.reason.startswith("patch extraction")
                            for n in relayout)
    assert sess.xdna_plan.npu_mac_share == pytest.approx(1.0)
    got = sess.run(None, {"x": x})[0]
    ref = _ort_cpu(model, {"x": x})
    assert got.shape == ref.shape
    assert _cos(got, ref) >= 0.999, _cos(got, ref)


def test_patch_conv_without_bias(tmp_path, no_cost_model):
    model = _conv_model([1, 3, 16, 16], 8, (4, 4), bias=False)
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)
    sess = _session(model, tmp_path)
    rows = {n.name: n for n in sess.xdna_plan.nodes}
    assert rows["conv/patch_matmul"].placement == "npu"
    assert "conv/patch_bias" not in rows
    assert _cos(sess.run(None, {"x": x})[0], _ort_cpu(model, {"x": x})) >= 0.999


def test_symbolic_batch_and_image_size_run_at_two_sizes(tmp_path, no_cost_model):
    """Height and width symbolic: the re-layout reads them at run time (Shape nodes);
    each input shape compiles its own program."""
    model = _conv_model(["batch", 3, "height", "width"], 16, (8, 8))
    sess = _session(model, tmp_path)
    rng = np.random.default_rng(3)
    for shape in ((1, 3, 32, 24), (2, 3, 17, 40)):
        x = rng.standard_normal(shape).astype(np.float32)
        got = sess.run(None, {"x": x})[0]
        ref = _ort_cpu(model, {"x": x})
        assert got.shape == ref.shape
        assert _cos(got, ref) >= 0.999, (shape, _cos(got, ref))
        rows = {n.name: n for n in sess.xdna_plan.nodes}
        assert rows["conv/patch_matmul"].placement == "npu"
        assert any(n.op_type == "Shape" for n in rows.values())  # H, W read at run time


def test_plugin_region_bytes_equal_the_python_emulators(tmp_path, no_cost_model):
    """The region runs in the plugin library; a region tap sees its inputs and
    outputs, and the Python emulator running the same program on those inputs
    gives the same bytes (the patch re-layout feeds it what the compile expects)."""
    from xdna_ep.runtime import EmulatorDevice

    calls: list = []

    class Tapped(xdna_ep.InferenceSession):
        def _xdna_on_region_call(self):  # type: ignore[no-untyped-def]
            return calls.append

    model = _conv_model([2, 3, 24, 16], 32, (8, 8))
    x = np.random.default_rng(4).standard_normal((2, 3, 24, 16)).astype(np.float32)
    sess = Tapped(model.SerializeToString(), providers=[EP, "CPUExecutionProvider"],
                  provider_options=[{"device": "emulator", "cache_dir": str(tmp_path)}, {}])
    assert sess._xdna_native
    got = sess.run(None, {"x": x})[0]
    assert len(calls) == 1
    _, program = sess._xdna_provider_core.region_of(calls[0].region)
    again = EmulatorDevice().load(program).run(calls[0].inputs)
    for name, out in calls[0].outputs.items():
        assert out.dtype == again[name].dtype and out.tobytes() == again[name].tobytes()
    assert _cos(got, _ort_cpu(model, {"x": x})) >= 0.999
    sess._xdna_tap.close()


REFUSED = {
    "overlapping": (dict(x_shape=[1, 3, 16, 16], cout=8, kernel=(3, 3), strides=(1, 1)),
                    "overlapping windows"),
    "gapped": (dict(x_shape=[1, 3, 16, 16], cout=8, kernel=(2, 2), strides=(4, 4)),
               "gapped windows"),
    "padded": (dict(x_shape=[1, 3, 16, 16], cout=8, kernel=(4, 4), pads=(1, 1, 1, 1)),
               "pads [1, 1, 1, 1]"),
    "auto-pad": (dict(x_shape=[1, 3, 18, 18], cout=8, kernel=(4, 4), auto_pad="SAME_UPPER"),
                 "auto_pad SAME_UPPER"),
    "dilated": (dict(x_shape=[1, 3, 16, 16], cout=8, kernel=(2, 2), dilations=(2, 2)),
                "dilations [2, 2]"),
    "grouped": (dict(x_shape=[1, 4, 16, 16], cout=8, kernel=(4, 4), group=2), "group 2"),
    # a malformed node (ONNX Runtime would not load it): a reason, not a crash
    "strides-rank": (dict(x_shape=[1, 3, 16, 16], cout=8, kernel=(4, 4), strides=(4,)),
                     "of another rank"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_other_2d_convs_stay_on_cpu_with_their_reason(case):
    kw, why = REFUSED[case]
    model = _conv_model(**kw)
    plan = partition_model(model, use_cost_model=False)
    row = {n.name: n for n in plan.nodes}["conv"]
    assert row.placement == "cpu"
    assert row.reason.startswith("shape: 2-D Conv") and why in row.reason, row.reason
    assert [n.op_type for n in model.graph.node] == ["Conv"]  # the model is unchanged


def test_3d_conv_and_runtime_weight_are_refused():
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((4, 2, 2, 2, 2)).astype(np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[2, 2, 2],
                          strides=[2, 2, 2])], "c3",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    plan = partition_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                           use_cost_model=False)
    reason = {n.name: n for n in plan.nodes}["conv"].reason
    assert reason.startswith("shape: 3-D Conv"), reason

    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "wx"], ["y"], name="conv", kernel_shape=[4, 4],
                          strides=[4, 4])], "wrt",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("wx", TensorProto.FLOAT, [8, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    plan = partition_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]),
                           use_cost_model=False)
    reason = {n.name: n for n in plan.nodes}["conv"].reason
    assert reason.startswith("non-constant weight"), reason


def test_excluded_conv_is_left_as_it_is():
    model = _conv_model([1, 3, 16, 16], 8, (4, 4))
    plan = partition_model(model, use_cost_model=False, exclude_ops=["Conv"])
    row = {n.name: n for n in plan.nodes}["conv"]
    assert row.placement == "cpu" and row.reason.startswith("excluded"), row.reason
    assert [n.op_type for n in model.graph.node] == ["Conv"]


def test_matmul_not_on_npu_puts_the_conv_back():
    """A rewrite whose MatMul no NPU region runs is undone: the model gets its Conv
    (and weight) back, the report one Conv row with the MatMul's reason."""
    model = _conv_model([1, 3, 16, 16], 8, (4, 4))
    before = model.SerializeToString()
    plan = partition_model(model, use_cost_model=False, exclude_ops=["MatMul"])
    rows = {n.name: n for n in plan.nodes}
    assert set(rows) == {"conv"}
    assert rows["conv"].placement == "cpu" and rows["conv"].reason.startswith("excluded")
    assert rows["conv"].macs == 8 * 3 * 4 * 4 * 16
    assert model.SerializeToString() == before


def test_kept_rewrite_drops_the_conv_weight():
    model = _conv_model([1, 3, 16, 16], 8, (4, 4))
    partition_model(model, use_cost_model=False)
    names = {t.name for t in model.graph.initializer}
    assert "w" not in names and "w::xdna_patch_matrix" in names
    mat = numpy_helper.to_array({t.name: t for t in model.graph.initializer}[
        "w::xdna_patch_matrix"])
    assert mat.shape == (3 * 4 * 4, 8)


def test_disabled_matmul_kind_keeps_the_conv_with_its_reason():
    model = _conv_model([1, 3, 16, 16], 8, (4, 4))
    plan = partition_model(model, use_cost_model=False, disable_kinds=["matmul"])
    row = {n.name: n for n in plan.nodes}["conv"]
    assert row.placement == "cpu" and row.reason.startswith("excluded") \
        and "disable_kinds" in row.reason, row.reason
    assert [n.op_type for n in model.graph.node] == ["Conv"]
