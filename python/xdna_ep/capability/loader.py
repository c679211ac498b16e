"""Loading an ONNX model for partitioning, with errors that name the file.

Why a wrapper around onnx.load: a truncated or malformed file makes protobuf
raise a bare DecodeError (or, worse, parse into an empty model); the user must
see which file is bad and why, and later stages must be able to rely on every
node having a unique name (regions, the report and the rewrite refer to nodes
by name).
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError


class ModelLoadError(ValueError):
    """The model file cannot be read as an ONNX model."""


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load `path` (external data included) and give every node a unique name."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelLoadError(f"model path is a directory, expected an .onnx file: {p}")
    if p.stat().st_size == 0:
        raise ModelLoadError(f"model file is empty: {p}")
    try:
        model = onnx.load(str(p))
    except DecodeError as exc:
        raise ModelLoadError(f"{p}: not a valid ONNX protobuf (truncated or corrupt): {exc}") from exc
    except (OSError, ValueError, RuntimeError) as exc:  # external data missing, ...
        raise ModelLoadError(f"{p}: cannot load ONNX model: {exc}") from exc
    validate_model(model, str(p))
    try:
        ensure_node_names(model)
    except UnicodeDecodeError as exc:  # protobuf parsed a corrupted string field
        raise ModelLoadError(f"{p}: corrupt ONNX model (invalid UTF-8 in a name: {exc})") from exc
    return model


def validate_model(model: onnx.ModelProto, label: str = "model") -> None:
    """Reject protobufs that parsed but are not usable models.

    protobuf happily parses many truncated byte strings into a partial message;
    a model without a graph or without an opset import is the usual symptom.
    """
    if not isinstance(model, onnx.ModelProto):
        raise ModelLoadError(f"{label}: expected onnx.ModelProto, got {type(model).__name__}")
    if not model.HasField("graph"):
        raise ModelLoadError(f"{label}: ONNX model has no graph (truncated or not an ONNX file)")
    if not model.opset_import:
        raise ModelLoadError(f"{label}: ONNX model has no opset_import (truncated or corrupt)")
    if len(model.graph.node) == 0:
        raise ModelLoadError(f"{label}: ONNX graph has no nodes")
    bad = _first_bad_name(model.graph)
    if bad is not None:
        raise ModelLoadError(f"{label}: corrupt ONNX model (a name is not valid UTF-8: {bad!r})")
    _check_element_types(model.graph, label)


_ELEM_TYPES = frozenset(onnx.TensorProto.DataType.values()) - {onnx.TensorProto.UNDEFINED}


def _check_element_types(graph: onnx.GraphProto, label: str) -> None:
    """Graph inputs/outputs/initializers must have a defined element type: an
    undefined one sends onnxruntime's symbolic shape inference into an endless
    loop (found by tests/test_reliability_models.py) and breaks later stages."""
    for kind, items in (("input", graph.input), ("output", graph.output)):
        for vi in items:
            if vi.type.HasField("tensor_type") and \
                    vi.type.tensor_type.elem_type not in _ELEM_TYPES:
                raise ModelLoadError(f"{label}: graph {kind} {vi.name!r} has an undefined or "
                                     f"unknown element type ({vi.type.tensor_type.elem_type})")
    for t in graph.initializer:
        if t.data_type not in _ELEM_TYPES:
            raise ModelLoadError(f"{label}: initializer {t.name!r} has an undefined or unknown "
                                 f"data type ({t.data_type})")


def _first_bad_name(graph: onnx.GraphProto) -> bytes | None:
    """protobuf hands back invalid UTF-8 string fields as bytes: a corrupt file."""
    names: list = [t.name for t in graph.initializer]
    names += [v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                sub = _first_bad_name(a.g)
                if sub is not None:
                    return sub
    return next((n for n in names if not isinstance(n, str)), None)


def ensure_node_names(model: onnx.ModelProto) -> None:
    """Name unnamed nodes and de-duplicate names, in place, deterministically.

    The names are `<op_type>_<index>` (with the subgraph path for If branches),
    so the same model always gets the same names and later stages (quantize,
    compile, rewrite) that receive the same ModelProto see the same names.
    """
    seen: set[str] = set()

    def visit(graph: onnx.GraphProto, prefix: str) -> None:
        for i, node in enumerate(graph.node):
            name = node.name or f"{prefix}{node.op_type}_{i}"
            base, k = name, 1
            while name in seen:
                name = f"{base}__{k}"
                k += 1
            node.name = name
            seen.add(name)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g, f"{name}/{attr.name}/")
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for j, g in enumerate(attr.graphs):
                        visit(g, f"{name}/{attr.name}{j}/")

    visit(model.graph, "")
