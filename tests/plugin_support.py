"""Helpers of the plugin tests: one-stage Programs wrapped as EPContext models,
and ONNX Runtime sessions on libxdna_ep_provider.so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

import xdna_ep
from xdna_ep.compile.program import Launch, Program, Stage, TensorSpec
from xdna_ep.ort.epcontext import write_epcontext_model
from xdna_ep.rewrite.graph import DOMAIN, DOMAIN_VERSION, op_type_for, program_ref

EP = "XDNAExecutionProvider"
ONNX_TYPES = {"float32": onnx.TensorProto.FLOAT, "int8": onnx.TensorProto.INT8}


def one_stage_program(name: str, kernel: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                      consts: dict[str, np.ndarray] | None = None, attrs: dict | None = None
                      ) -> Program:
    """A Program of one stage reading the program inputs and writing its outputs."""
    consts = consts or {}
    stage = Stage(kernel, tuple(t.name for t in inputs), tuple(t.name for t in outputs),
                  {role: f"{name}.{role}" for role in consts}, dict(attrs or {}))
    prog = Program(name, tuple(inputs), tuple(outputs), (Launch(kernel, (stage,)),),
                   {f"{name}.{role}": a for role, a in consts.items()}, "test")
    prog.validate()
    return prog


def region_model(program: Program) -> tuple[onnx.ModelProto, dict[str, Program]]:
    """A model whose only node is the XDNA region node of `program` (what the rewrite
    makes), with the program by reference."""
    ref = program_ref(0, program)
    ins = [t.name for t in program.inputs]
    outs = [t.name for t in program.outputs]
    node = helper.make_node(op_type_for(len(ins), len(outs)), ins, outs, name="xdna_region_0",
                            domain=DOMAIN, program=ref, digest=program.digest(), session="",
                            region="0")

    def vi(t: TensorSpec) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(t.name, ONNX_TYPES[t.dtype], list(t.shape))

    graph = helper.make_graph([node], "g", [vi(t) for t in program.inputs],
                              [vi(t) for t in program.outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(DOMAIN, DOMAIN_VERSION)])
    return model, {ref: program}


def write_program_model(program: Program, path: Path, embed_mode: int = 1,
                        dims: dict[str, int] | None = None) -> Path:
    """The EPContext model of `program`; `dims`: sizes of its symbolic dims, as a
    compile that knew them writes it (NPU images for those sizes)."""
    model, programs = region_model(program)
    return write_epcontext_model(model, programs, path, embed_mode=embed_mode, dims=dims)


def plugin_session(model: str | Path | bytes, options: dict[str, str] | None = None
                   ) -> ort.InferenceSession:
    """An ONNX Runtime session with XDNAExecutionProvider selected through its OrtEpDevice."""
    xdna_ep.register()
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_provider_for_devices(devices, {"device": "emulator", **(options or {})})
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=so)
