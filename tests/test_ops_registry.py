"""The op registry is the one extension point: a toy region op (tests/toy_ops/scale.py,
one module) registered with one line is recognised, lowered, quantized, emitted
and run like the built-in families."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from toy_ops import scale

from xdna_ep.compile import CompileOptions, ProgramRunner, compile_plan
from xdna_ep.ops import registry
from xdna_ep.ops.base import OpFamily
from xdna_ep.partition import partition_model

D = 16


def _model():  # type: ignore[no-untyped-def]
    """y = (x * 2.5) @ W."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((D, D)) / 4).astype(np.float32)
    nodes = [helper.make_node("Mul", ["x", "c"], ["s"], name="scale"),
             helper.make_node("MatMul", ["s", "W"], ["y"], name="proj")]
    g = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 12, D])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12, D])],
                          [numpy_helper.from_array(np.array(2.5, np.float32), "c"),
                           numpy_helper.from_array(w, "W")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), w


@pytest.fixture
def toy() -> Iterator[OpFamily]:
    registry.register(scale.OP)  # the one line a new region op needs
    try:
        yield scale.OP
    finally:
        registry.unregister(scale.OP.kind)


def _placement(model, name: str) -> str:  # type: ignore[no-untyped-def]
    plan = partition_model(model, use_cost_model=False)
    return next(n.placement for n in plan.nodes if n.name == name)


def test_without_the_toy_the_mul_stays_on_cpu() -> None:
    model, _ = _model()
    assert "toy_scale" not in registry.kinds()
    assert _placement(model, "scale") == "cpu"


def test_toy_region_op_runs_end_to_end(toy: OpFamily) -> None:
    model, w = _model()
    plan = partition_model(model, use_cost_model=False)
    (region,) = plan.regions
    kinds = [m.kind for m in region.matches]
    assert kinds == ["toy_scale", "matmul"]
    assert region.matches[0].attrs == scale.ScaleAttrs(factor=2.5, channels=D,
                                                       elements=12 * D)
    rng = np.random.default_rng(4)
    samples = [{"x": rng.standard_normal((1, 12, D)).astype(np.float32)} for _ in range(4)]
    programs = compile_plan(model, plan, CompileOptions("static", samples))
    prog = programs[region.id]
    assert [st.kernel for st in prog.stages()].count("matmul") == 2
    x = samples[0]["x"]
    got = ProgramRunner(prog).run({"x": x}).outputs["y"]
    want = (x * np.float32(2.5)) @ w
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert rel < 0.02  # two int8 matmuls
    assert plan.regions[0].sqnr_db is not None and plan.regions[0].sqnr_db > 30.0


def test_unregister_restores_the_table(toy: OpFamily) -> None:
    model, _ = _model()
    assert _placement(model, "scale") == "npu"
    registry.unregister(toy.kind)
    assert _placement(model, "scale") == "cpu"
    registry.register(toy)  # the fixture unregisters it again


def test_a_family_is_registered_once_and_owns_its_stage_kernels(toy: OpFamily) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(toy)
    clash = OpFamily("other", toy.attrs_type, (), toy.lower, toy.stages)
    with pytest.raises(ValueError, match="already emitted"):
        registry.register(clash)
