"""Shared helpers for the rewrite / ORT / cache tests (no tests in this module).

Models are built in code; their NPU parts are compiled by the real compile
stage (xdna_ep.compile.compile_plan). Expected values come from numpy float32
(x @ W + b): an independent derivation, compared with an INT8 tolerance, and
from running the same Program directly (no ONNX Runtime), compared exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from xdna_ep.compile import CompileOptions, Program, ProgramRunner, compile_plan
from xdna_ep.plan import NodePlacement, OpMatch, PartitionPlan, Region

K, N = 64, 32


@dataclass
class LinearModel:
    """x[M,K] -> MatMul(W) -> Add(b) -> h -> Relu -> y, and optionally a second
    branch z = Sigmoid(x @ W2 + b2) (a second region), with W shared by a CPU
    node when `share_weight`."""

    model: onnx.ModelProto
    W: np.ndarray
    b: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    def fp32(self, x: np.ndarray) -> dict[str, np.ndarray]:
        h = x @ self.W + self.b
        return {"y": np.maximum(h, 0), "z": 1 / (1 + np.exp(-(x @ self.W2 + self.b2)))}


def linear_model(seed: int = 0, two_regions: bool = False, share_weight: bool = False,
                 opset: int = 17, rows: int | str = "M", k: int = K, n: int = N) -> LinearModel:
    """Small by default (hand-made plans); big=fixed rows and 384 wide for the real
    partitioner, whose cost model keeps tiny matmuls on the CPU."""
    K, N = k, n  # noqa: N806 - the module constants' names, locally resized
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((K, N)) * 0.1).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    W2 = (rng.standard_normal((K, N)) * 0.1).astype(np.float32)
    b2 = rng.standard_normal(N).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm0"),
             helper.make_node("Add", ["mm", "b"], ["h"], name="add0"),
             helper.make_node("Relu", ["h"], ["y"], name="relu0")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, N])]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")]
    if two_regions:
        nodes += [helper.make_node("MatMul", ["x", "W2"], ["mm2"], name="mm1"),
                  helper.make_node("Add", ["mm2", "b2"], ["h2"], name="add1"),
                  helper.make_node("Sigmoid", ["h2"], ["z"], name="sig0")]
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [rows, N]))
        inits += [numpy_helper.from_array(W2, "W2"), numpy_helper.from_array(b2, "b2")]
    if share_weight:
        nodes.append(helper.make_node("Shape", ["W"], ["wshape"], name="shape0"))
        outputs.append(helper.make_tensor_value_info("wshape", TensorProto.INT64, [2]))
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [rows, K])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return LinearModel(model, W, b, W2, b2)


def big_linear_model(**kw) -> LinearModel:
    """A model the real partitioner places on the NPU (256 x 384 x 384 per matmul)."""
    return linear_model(rows=256, k=384, n=384, **kw)


def _match(mm: str, add: str, w: str, bias: str, out: str) -> OpMatch:
    return OpMatch("matmul", (mm, add), ("x",), (out,),
                   {"weight": w, "bias": bias, "transpose_b": False}, K * N, "MatMul+Add")


def linear_plan(model: onnx.ModelProto, graph: str = "") -> PartitionPlan:
    """The partition of linear_model() made by hand (one region per MatMul+Add)."""
    names = {n.name for n in model.graph.node}
    regions = [Region(0, [_match("mm0", "add0", "W", "b", "h")], ["x"], ["h"], K * N,
                      graph=graph)]
    if "mm1" in names:
        regions.append(Region(1, [_match("mm1", "add1", "W2", "b2", "h2")], ["x"], ["h2"],
                              K * N, graph=graph))
    placed = {"mm0": 0, "add0": 0, "mm1": 1, "add1": 1}
    nodes = [NodePlacement(n.name, n.op_type, "npu" if n.name in placed else "cpu",
                           "matmul" if n.name in placed else "not an NPU op",
                           placed.get(n.name)) for n in model.graph.node]
    return PartitionPlan("linear", nodes, regions, total_macs=K * N * len(regions))


def compile_linear(model: onnx.ModelProto, plan: PartitionPlan) -> dict[int, Program]:
    return compile_plan(model, plan, CompileOptions(quantization="dynamic"))


class RunnerLoaded:
    """A loaded program executed by compile's ProgramRunner (the compile stage's
    executor: registered emulator kernels where importable, else its contract
    references). Thread-safe: the runner keeps no per-call state."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.runner = ProgramRunner(program)
        self.calls = 0

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return dict(self.runner.run(dict(inputs)).outputs)

    def close(self) -> None:
        pass


class RunnerDevice:
    name = "emulator"

    def __init__(self) -> None:
        self.loaded: list[RunnerLoaded] = []

    def load(self, program: Program) -> RunnerLoaded:
        lp = RunnerLoaded(program)
        self.loaded.append(lp)
        return lp

    def close(self) -> None:
        pass


def direct(program: Program, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The program run without ONNX Runtime (exact expected region outputs)."""
    return dict(ProgramRunner(program).run(dict(feeds)).outputs)
