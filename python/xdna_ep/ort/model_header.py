"""What a session start needs to know about the user's model, without parsing it.

A warm start (compiled model in the cache) needs only the model's graph inputs
(symbolic dims: placement shapes, free-dimension overrides, per-shape routing)
and whether it is already a compiled model (XDNA region nodes, EPContext nodes).
Parsing the whole model for that costs time and memory: the Whisper decoders
are ~190 MB protos each, read in ~0.2 s and, when kept for the session's life
(per-shape compiles need the model), ~280 MB of resident memory for the three
Whisper sessions. So the header - a skeleton model holding only the graph
inputs, and two counts - is remembered in the cache's digest index
(digest_index.py: valid while the file is unchanged) and the full model is
parsed only when a compile needs it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass

import onnx

from .. import EP_NAME


@dataclass(frozen=True)
class ModelHeader:
    """The user's model as a session start sees it before any compile."""

    skeleton: onnx.ModelProto  # graph inputs (initializers excluded) and opsets only
    region_nodes: int  # XDNA region nodes (a shipped compiled model)
    epcontext_nodes: int  # com.microsoft EPContext nodes of ours (xdna-ep compile)

    def to_json(self) -> str:
        return json.dumps({"skeleton": base64.b64encode(self.skeleton.SerializeToString())
                           .decode(), "region_nodes": self.region_nodes,
                           "epcontext_nodes": self.epcontext_nodes})

    @classmethod
    def from_json(cls, text: str) -> ModelHeader:
        doc = json.loads(text)
        skeleton = onnx.ModelProto()
        skeleton.ParseFromString(base64.b64decode(doc["skeleton"]))
        return cls(skeleton, int(doc["region_nodes"]), int(doc["epcontext_nodes"]))


def header_of(model: onnx.ModelProto) -> ModelHeader:
    """The header of a parsed model."""
    from ..rewrite.graph import region_nodes

    init = {t.name for t in model.graph.initializer}
    skeleton = onnx.ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.graph.name = model.graph.name
    skeleton.graph.input.extend(vi for vi in model.graph.input if vi.name not in init)
    return ModelHeader(skeleton, len(region_nodes(model)), len(epcontext_nodes(model)))


def epcontext_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The main graph's com.microsoft EPContext nodes whose source is XDNA."""
    found = []
    for node in model.graph.node:
        if node.op_type != "EPContext" or node.domain != "com.microsoft":
            continue
        source = next((a.s.decode() for a in node.attribute if a.name == "source"), "")
        if source == EP_NAME:
            found.append(node)
    return found


def read_header(src: str | os.PathLike[str], index) -> tuple[ModelHeader, onnx.ModelProto | None]:
    """(header, the parsed model when this call had to parse it, else None).

    `index` is the cache's DigestIndex: the header of an unchanged file comes from
    it; otherwise the model is parsed (and validated, load_model) once, and the
    caller may use that parse for its compile."""
    from .provider import load_model

    parsed: list[onnx.ModelProto] = []

    def compute(path):
        model = load_model(path)
        parsed.append(model)
        return header_of(model).to_json(), []

    try:
        text = index.digest("header", src, compute)
        header = ModelHeader.from_json(text)
    except (ValueError, KeyError, TypeError):  # a damaged record: parse the model
        model = load_model(src)
        return header_of(model), model
    return header, (parsed[0] if parsed else None)
