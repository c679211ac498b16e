"""Bad input: clear errors naming the file, or an announced CPU placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from synthetic import graphs as ms

from xdna_ep.capability import ModelLoadError, analyze, load_model
from xdna_ep.partition import partition


def _matmul_model(a_shape, w: np.ndarray | None, dtype=TensorProto.FLOAT, opset: int = 17):
    inits = []
    inputs = [helper.make_tensor_value_info("a", dtype, a_shape)]
    if w is None:  # weight is a graph input: dynamic
        inputs.append(helper.make_tensor_value_info("w", dtype, [a_shape[-1], 8]))
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    node = helper.make_node("MatMul", ["a", "w"], ["y"], name="mm")
    g = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", dtype, None)],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_truncated_file_names_the_file(tmp_path: Path) -> None:
    good = ms.encoder_layer().SerializeToString()
    p = tmp_path / "truncated.onnx"
    p.write_bytes(good[: len(good) // 3])
    with pytest.raises(ModelLoadError, match="truncated.onnx"):
        load_model(p)
    with pytest.raises(ModelLoadError, match="truncated.onnx"):
        partition(p)


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all \x00\xff\x13",
                                     b"\x08\x07"])
def test_garbage_files(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "garbage.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        load_model(p)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("opset", [11, 12, 22])
def test_opset_outside_range_places_everything_on_cpu(opset: int) -> None:
    model = _matmul_model([4, 16], np.ones((16, 8), np.float32), opset=opset)
    res = analyze(model)
    assert res.matches == []
    assert all(p.placement == "cpu" and p.reason.startswith("opset") for p in res.placements)
    assert any(f"opset {opset}" in f for f in res.fallbacks)
    plan = partition(model)
    assert plan.regions == [] and plan.npu_mac_share == 0.0
    assert any(f"opset {opset}" in f for f in plan.fallbacks)


def test_custom_domain_op_is_not_matched_as_the_onnx_op() -> None:
    """A "MatMul" of another domain may compute anything: it stays on CPU, named
    (finding F3 of docs/RELIABILITY.md). The same node in the ONNX domain matches."""
    w = np.ones((384, 8), np.float32)
    plain = _matmul_model([1500, 384], w)
    assert analyze(plain).placements[0].reason.startswith("matmul")
    custom = _matmul_model([1500, 384], w)
    custom.graph.node[0].domain = "fuzz.domain"
    custom.opset_import.append(helper.make_opsetid("fuzz.domain", 1))
    (p,) = analyze(custom).placements
    assert p.placement == "cpu"
    assert p.reason == ("unsupported op: fuzz.domain.MatMul has no NPU kernel (custom domain: "
                        "only ONNX and com.microsoft ops are matched)")


def test_dynamic_weight_stays_on_cpu_with_reason() -> None:
    res = analyze(_matmul_model([4, 16], None))
    (p,) = res.placements
    assert p.placement == "cpu" and p.reason.startswith("non-constant weight")
    assert "'w'" in p.reason
    plan = partition(_matmul_model([4, 16], None))
    assert any("non-constant weight" in f for f in plan.fallbacks)


@pytest.mark.parametrize("np_dtype,onnx_dtype,name", [
    (np.float16, TensorProto.FLOAT16, "float16"),
    (np.float64, TensorProto.DOUBLE, "float64"),
])
def test_float16_float64_stay_on_cpu(np_dtype, onnx_dtype, name: str) -> None:
    model = _matmul_model([4, 16], np.ones((16, 8), np_dtype), dtype=onnx_dtype)
    res = analyze(model)
    (p,) = res.placements
    assert p.placement == "cpu" and p.reason.startswith(f"dtype {name}")
    assert any(name in f for f in partition(model).fallbacks)


def test_zero_size_shape_stays_on_cpu() -> None:
    res = analyze(_matmul_model([4, 0, 16], np.ones((16, 8), np.float32)))
    (p,) = res.placements
    assert p.placement == "cpu" and p.reason.startswith("shape: zero-size")


def test_conv2d_and_grouped_conv_stay_on_cpu() -> None:
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv2d", pads=[1, 1, 1, 1])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", 1, None)], [w])
    res = analyze(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert res.placements[0].reason.startswith("shape: 2-D Conv")


def test_model_without_graph_is_rejected() -> None:
    with pytest.raises(ModelLoadError, match="no graph"):
        analyze(onnx.ModelProto())


def test_unknown_custom_op_is_announced() -> None:
    node = helper.make_node("Frobnicate", ["x"], ["y"], name="f", domain="my.domain")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [2])],
                          [helper.make_tensor_value_info("y", 1, [2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("my.domain", 1)])
    res = analyze(model)
    assert res.placements[0].reason == ("unsupported op: my.domain.Frobnicate has no NPU kernel "
                                        "(custom domain: only ONNX and com.microsoft ops are "
                                        "matched)")
    assert partition(model).npu_mac_share == 0.0


def test_corrupted_name_bytes(tmp_path: Path) -> None:
    data = bytearray(ms.gelu_model("erf").SerializeToString())
    at = data.find(b"fc_matmul")
    assert at > 0
    data[at + 2] = 0xC7  # invalid UTF-8 inside a node/tensor name
    p = tmp_path / "flipped.onnx"
    p.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="flipped.onnx.*UTF-8"):
        partition(p)


def test_random_byte_flips_never_crash(tmp_path: Path) -> None:
    """Corrupt files either load (and partition) or raise ModelLoadError."""
    rng = np.random.default_rng(7)
    data = ms.encoder_layer().SerializeToString()
    p = tmp_path / "fuzz.onnx"
    outcomes = set()
    for _ in range(25):
        b = bytearray(data)
        for j in rng.integers(0, len(b), size=3):
            b[j] = int(rng.integers(0, 256))
        p.write_bytes(bytes(b))
        try:
            plan = partition(p)
        except ModelLoadError:
            outcomes.add("error")
            continue
        assert 0.0 <= plan.npu_mac_share <= 1.0
        outcomes.add("ok")
    assert outcomes  # ran
