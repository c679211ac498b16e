"""rewrite stage of xdna-ep: each NPU region becomes one custom node."""

from .graph import (
    DOMAIN,
    OP_PREFIX,
    RegionNode,
    check_program_ref,
    iter_graphs,
    node_program,
    op_type_for,
    program_ref,
    region_nodes,
    rewrite_model,
)

__all__ = [
    "DOMAIN", "OP_PREFIX", "RegionNode", "check_program_ref", "iter_graphs", "node_program",
    "op_type_for", "program_ref", "region_nodes", "rewrite_model",
]
