"""Shape inference leaves nothing behind in the working directory.

onnxruntime's SymbolicShapeInference.infer_shapes saves `sym_shape_infer_temp.onnx`
(+ external data) into the cwd when it cannot finish a graph; xdna-ep drives the
same steps without that side effect (capability/shapes.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

from xdna_ep.capability.shapes import infer_shapes


def _model():  # type: ignore[no-untyped-def]
    mm = helper.make_node("MatMul", ["x", "w"], ["y"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.5] * 12)
    g = helper.make_graph([mm], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                    ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def incomplete(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every graph is one that symbolic inference cannot finish."""
    def give_up(self) -> bool:  # type: ignore[no-untyped-def]
        self.run_ = False
        return False
    monkeypatch.setattr(SymbolicShapeInference, "_infer_impl", give_up)


def test_incomplete_inference_writes_no_file_and_falls_back(
        incomplete: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # the library call this replaces does leave files here (so the check below can fail)
    with pytest.raises(Exception, match="Incomplete"):
        SymbolicShapeInference.infer_shapes(_model(), auto_merge=True, guess_output_rank=True)
    assert (tmp_path / "sym_shape_infer_temp.onnx").exists()
    for f in tmp_path.iterdir():
        f.unlink()

    result = infer_shapes(_model())
    assert list(tmp_path.iterdir()) == []
    # onnx's own inference took over: the MatMul output shape is still known
    vi = {v.name: v for v in result.model.graph.value_info} | {
        v.name: v for v in result.model.graph.output}
    dims = [d.dim_value for d in vi["y"].type.tensor_type.shape.dim]
    assert dims == [1, 3]


def test_infer_shapes_binds_exactly_the_symbolic_input_dims(monkeypatch: pytest.MonkeyPatch) -> None:
    """infer_shapes binds the dims symbolic_input_dims lists (one walk, not two):
    named and unnamed dims, a name shared by two inputs bound once, an
    initializer listed as an input and a fixed dim left alone."""
    from xdna_ep.capability import shapes

    add = helper.make_node("Add", ["x", "b"], ["s"])
    mm = helper.make_node("MatMul", ["s", "w"], ["y"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3], [0.5] * 12)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n", 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", None, 4])
    b.type.tensor_type.shape.dim[1].Clear()  # no dim_param: named "b:1"
    w_in = helper.make_tensor_value_info("w", TensorProto.FLOAT, ["rows", 3])
    g = helper.make_graph([add, mm], "g", [x, b, w_in],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])

    calls: list[int] = []
    walk = shapes.symbolic_input_dims

    def counted(m):  # type: ignore[no-untyped-def]
        calls.append(1)
        return walk(m)

    monkeypatch.setattr(shapes, "symbolic_input_dims", counted)
    result = shapes.infer_shapes(model, {"n": 7})
    assert calls, "infer_shapes walks the input dims itself"
    assert list(result.bindings) == list(dict.fromkeys(d.name for d in walk(model)))
    assert result.bindings == {"batch": 1, "n": 7, "b:1": 1}
    assert result.guessed == ["b:1"]
    assert result.notes[:1] == ["symbolic dim 'b:1' assumed 1 for MAC counts"]
    ins = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
           for vi in result.model.graph.input}
    assert ins["x"] == [1, 7, 4] and ins["b"] == [1, 1, 4]
    assert ins["w"] == [0, 3]  # an initializer's dims are not bound


def test_fold_shape_nodes_folds_a_gather_of_the_shape() -> None:
    """Shape -> Gather(1) of a [batch, seq] input: the Gather folds with the Shape
    (onnxruntime's symbolic inference asserts on a Gather past the first element
    of a Constant, which would leave every shape behind it unknown)."""
    import numpy as np
    from onnx import numpy_helper

    from xdna_ep.capability.shapes import fold_shape_nodes, symbolic_shapes

    nodes = [helper.make_node("Shape", ["ids"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "one"], ["seq"], name="gather", axis=0),
             helper.make_node("Range", ["zero", "seq", "step"], ["r"], name="range"),
             helper.make_node("Cast", ["r"], ["y"], name="cast", to=TensorProto.FLOAT)]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("one", 1), ("zero", 0), ("step", 1))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    folded, count = fold_shape_nodes(model, {"batch": 2, "seq": 7})
    assert count == 1
    ops = {n.name: n for n in folded.graph.node}
    assert ops["shape"].op_type == ops["gather"].op_type == "Constant"
    assert numpy_helper.to_array(ops["gather"].attribute[0].t) == 7
    shapes = {vi.name: vi for vi in symbolic_shapes(folded)}
    assert [d.dim_value for d in shapes["y"].type.tensor_type.shape.dim] == [7]
