"""capability stage of xdna-ep: which nodes the NPU can take, and why not.

    analyze(model, CapabilityOptions(...)) -> CapabilityResult
    load_model(path) -> onnx.ModelProto (clear ModelLoadError on bad files)
"""

from .analyze import MAX_OPSET, MIN_OPSET, CapabilityOptions, CapabilityResult, analyze
from .loader import ModelLoadError, ensure_node_names, load_model

__all__ = [
    "MAX_OPSET", "MIN_OPSET", "CapabilityOptions", "CapabilityResult", "ModelLoadError",
    "analyze", "ensure_node_names", "load_model",
]
