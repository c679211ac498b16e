"""Activation ranges through onnxruntime's calibrators, on exactly the tapped tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import CalibrationMethod

from xdna_ep.quantize import (
    CalibrationError,
    ListCalibrationReader,
    NpzCalibrationReader,
    Tap,
    collect_ranges,
    materialize,
    method_name,
    scale_from_range,
)


def _model() -> onnx.ModelProto:
    """y = Relu(x @ W); z = y * 3 (two tensors to tap, one constant to add)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.full(8, 2.5, np.float32), "b")
    three = numpy_helper.from_array(np.array(3.0, np.float32), "three")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm"),
             helper.make_node("Relu", ["mm"], ["y"], name="relu"),
             helper.make_node("Mul", ["y", "three"], ["z"], name="mul")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     ["n", 16])],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 8])],
                          [w, b, three])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _samples(n: int = 5, heavy: bool = False) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        x = rng.standard_normal((32, 16)).astype(np.float32)
        if heavy and i == 0:
            x[0, 0] = 60.0  # one outlier row in mm: histogram methods should clip it
        out.append({"x": x})
    return out


def _fp32(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    w = numpy_helper.to_array(model.graph.initializer[0])
    mm = np.concatenate([s["x"] @ w for s in samples])
    return {"mm": mm, "y": np.maximum(mm, 0), "x": np.concatenate([s["x"] for s in samples])}


def test_minmax_ranges_equal_numpy_max_abs() -> None:
    m, s = _model(), _samples()
    ref = _fp32(m, s)
    taps = {"x": Tap("x"), "mm": Tap("mm"), "y": Tap("y"), "mm+b": Tap("mm", add="b")}
    r = collect_ranges(m, taps, s, "minmax")
    assert set(r) == set(taps)
    for key, arr in (("x", ref["x"]), ("mm", ref["mm"]), ("y", ref["y"]),
                     ("mm+b", ref["mm"] + 2.5)):
        a = np.abs(arr).max()
        assert r[key][0] == pytest.approx(-a, rel=1e-5) and r[key][1] == pytest.approx(a, rel=1e-5)
    assert scale_from_range(r["y"]) == pytest.approx(np.abs(ref["y"]).max() / 127, rel=1e-5)


def test_entropy_clips_an_outlier() -> None:
    m, s = _model(), _samples(heavy=True)
    mm = _fp32(m, s)["mm"]
    lo, hi = collect_ranges(m, {"mm": Tap("mm")}, s, "entropy")["mm"]
    amax = np.abs(mm).max()
    assert lo == pytest.approx(-hi, rel=0.02)  # symmetric histogram thresholds
    # strictly inside the min/max range, but still covering the bulk of the data
    assert 0 < hi < 0.9 * amax
    assert hi > np.percentile(np.abs(mm), 90)


def test_percentile_matches_numpy_percentile_of_abs() -> None:
    m, s = _model(), _samples(heavy=True)
    a = np.abs(_fp32(m, s)["mm"])
    lo, hi = collect_ranges(m, {"mm": Tap("mm")}, s, "percentile", percentile=99.0)["mm"]
    th = max(abs(lo), abs(hi))
    bin_width = a.max() / 2048  # onnxruntime's default histogram of |x|
    assert abs(th - np.percentile(a, 99.0)) <= 2 * bin_width
    assert th < 0.9 * a.max()


def test_method_names() -> None:
    assert method_name("MinMax") == "minmax"
    assert method_name(CalibrationMethod.Entropy) == "entropy"
    assert method_name("percentile") == "percentile"
    with pytest.raises(ValueError, match="calibrate_method"):
        method_name("kl")
    with pytest.raises(ValueError, match="calibrate_method"):
        method_name(CalibrationMethod.Distribution)


def test_npz_reader_directory_and_file(tmp_path: Path) -> None:
    s = _samples(3)
    for i, d in enumerate(s):
        np.savez(tmp_path / f"s{i:02d}.npz", **d)
    r = NpzCalibrationReader(tmp_path)
    got = []
    while (item := r.get_next()) is not None:
        got.append(item)
    assert len(got) == 3
    for a, b in zip(got, s, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
    r.rewind()
    assert r.get_next() is not None
    one = materialize(tmp_path / "s01.npz", ["x"])
    np.testing.assert_array_equal(one[0]["x"], s[1]["x"])


def test_materialize_reader_and_errors(tmp_path: Path) -> None:
    s = _samples(2)
    assert len(materialize(ListCalibrationReader(s), ["x"])) == 2
    with pytest.raises(CalibrationError, match="empty"):
        materialize([], ["x"])
    with pytest.raises(CalibrationError, match="lacks model input"):
        materialize([{"y": s[0]["x"]}], ["x"])
    bad = {"x": s[0]["x"].copy()}
    bad["x"][3, 3] = np.nan
    with pytest.raises(CalibrationError, match="sample 1, input 'x'.*NaN"):
        materialize([s[0], bad], ["x"])
    with pytest.raises(CalibrationError, match="does not exist"):
        materialize(tmp_path / "missing.npz")
    with pytest.raises(CalibrationError, match="no .npz"):
        materialize(tmp_path)
