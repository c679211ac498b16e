"""compile stage of xdna-ep: each NPU region becomes one Program.

Entry point: compile_plan(model, plan, CompileOptions(...)) -> {region id: Program}.

The names below are imported on first use (PEP 562): the runtime needs only
`compile.program` (the Program data classes), and importing the compiler with
it (onnx, onnxruntime.quantization, the passes; ~1 s) made `--device auto`'s
NPU probe as slow as a compile.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import CompileOptions, compile_plan, compile_region
    from .execute import ProgramRunner, run_program
    from .model_index import NotLowerable
    from .program import Launch, Program, Stage, TensorSpec

_WHERE = {
    "CompileOptions": "api", "compile_plan": "api", "compile_region": "api",
    "ProgramRunner": "execute", "run_program": "execute",
    "NotLowerable": "model_index",
    "Launch": "program", "Program": "program", "Stage": "program", "TensorSpec": "program",
}

__all__ = ["CompileOptions", "Launch", "NotLowerable", "Program", "ProgramRunner", "Stage",
           "TensorSpec", "compile_plan", "compile_region", "run_program"]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
