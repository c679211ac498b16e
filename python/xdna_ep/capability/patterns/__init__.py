"""Pattern matchers, one module per kernel family. Each matcher takes a
GraphView and an anchor node and returns an OpMatch or None; the order in
MATCHERS is the claiming order (larger patterns first)."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from ...plan import OpMatch
from ..graph import GraphView
from .add import match_position_add, match_residual_add
from .attention import match_attention
from .gelu import match_gelu
from .layernorm import match_layernorm
from .linear import match_conv1d, match_matmul

Matcher = Callable[[GraphView, onnx.NodeProto], "OpMatch | None"]

# (kind, matcher); kinds can be disabled through CapabilityOptions.disable_kinds
MATCHERS: tuple[tuple[str, Matcher], ...] = (
    ("attention", match_attention),
    ("layernorm", match_layernorm),
    ("gelu", match_gelu),
    ("conv1d", match_conv1d),
    ("matmul", match_matmul),
    ("add", match_position_add),
    ("add", match_residual_add),
)

KINDS = tuple(dict.fromkeys(k for k, _ in MATCHERS))

__all__ = ["KINDS", "MATCHERS", "Matcher"]
