"""In-place edits of an ONNX graph shared by the rewrites that run before
capability (ops/patch_conv.py, ops/attention_masks.py) and are partly undone
after placement: take out the nodes a rewrite added, put an original node back
where its replacement started, and drop the initializers nobody reads any more.

Why a module of its own: both undo steps edit the same repeated proto fields the
same way (node order matters to ONNX Runtime's topological checks, and an
unread initializer left behind still costs its bytes in every saved model), and
a third rewrite of that kind should not write a third copy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import onnx

from ..capability.graph import node_inputs


def remove_nodes(model: onnx.ModelProto, names: Iterable[str],
                 restore: Mapping[str, onnx.NodeProto] | None = None) -> None:
    """Remove the nodes named `names` from the main graph, keeping the order of
    the rest; `restore` maps a removed node's name to the node that takes its
    place (the original a rewrite replaced, put back where the rewrite began)."""
    gone = set(names)
    if not gone:
        return
    put_back = dict(restore or {})
    order: list[onnx.NodeProto] = []
    for n in model.graph.node:
        if n.name not in gone:
            order.append(n)
        elif n.name in put_back:
            order.append(put_back[n.name])
    del model.graph.node[:]
    model.graph.node.extend(order)


def drop_unread_initializers(model: onnx.ModelProto, candidates: Iterable[str]) -> set[str]:
    """Remove the initializers among `candidates` that no node and no graph output
    reads; returns the names removed."""
    maybe = set(candidates)
    if not maybe:
        return set()
    read = {t for n in model.graph.node for t in node_inputs(n)}
    read |= {o.name for o in model.graph.output}
    gone = {t.name for t in model.graph.initializer if t.name in maybe and t.name not in read}
    if gone:
        keep = [t for t in model.graph.initializer if t.name not in gone]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return gone
