"""Self-contained compiled models ("EPContext" models a user can ship).

ONNX Runtime's compile-based EPs write, on `ep.context_enable=1`, a model whose
fused nodes carry their compiled blob. Ours: each region node gets a tensor
attribute `program_blob` (uint8, Program.to_bytes(): JSON + npz, no pickle)
next to its `digest`. Loading such a model skips partition and compile; the
digest is verified before a program is used, and the blob attribute is
stripped before the model reaches ONNX Runtime (no second copy in memory).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..compile.program import Program
from ..rewrite.graph import node_program, region_nodes

BLOB_ATTR = "program_blob"


class EPContextError(ValueError):
    """A shipped compiled model is incomplete or its programs do not verify."""


def embed_programs(model: onnx.ModelProto, programs: dict[str, Program]) -> onnx.ModelProto:
    """A copy of the rewritten `model` with every program embedded in its node."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in region_nodes(out):
        ref, digest = node_program(node)
        prog = programs.get(ref)
        if prog is None:
            raise EPContextError(f"region node {node.name}: program {ref} is not available")
        if prog.digest() != digest:
            raise EPContextError(f"region node {node.name}: program {ref} digest mismatch")
        blob = np.frombuffer(prog.to_bytes(), dtype=np.uint8)
        kept = [a for a in node.attribute if a.name not in (BLOB_ATTR, "session")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute("session", ""))
        node.attribute.append(helper.make_attribute(
            BLOB_ATTR, numpy_helper.from_array(blob, name=ref)))
    return out


def has_region_nodes(model: onnx.ModelProto) -> bool:
    return bool(region_nodes(model))


def extract_programs(model: onnx.ModelProto) -> dict[str, Program]:
    """Programs embedded in a shipped model (verified); strips the blobs in place."""
    programs: dict[str, Program] = {}
    for node in region_nodes(model):
        ref, digest = node_program(node)
        blob_attr = next((a for a in node.attribute if a.name == BLOB_ATTR), None)
        if blob_attr is None:
            raise EPContextError(
                f"model contains XDNA region node {node.name} without an embedded program: "
                "it was not written with ep.context_enable=1 (a cache-internal model cannot be "
                "loaded on its own; load the original model instead)")
        blob = numpy_helper.to_array(blob_attr.t).tobytes()
        try:
            prog = Program.from_bytes(blob)
        except Exception as exc:  # noqa: BLE001 - zip/json/npz errors of a damaged blob
            raise EPContextError(f"region node {node.name}: embedded program does not "
                                 f"load ({exc})") from None
        if prog.digest() != digest:
            raise EPContextError(f"region node {node.name}: embedded program digest differs "
                                 "from the node's digest attribute (corrupt or modified)")
        programs[ref] = prog
        kept = [a for a in node.attribute if a.name != BLOB_ATTR]
        del node.attribute[:]
        node.attribute.extend(kept)
    return programs
