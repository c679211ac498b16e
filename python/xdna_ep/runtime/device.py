"""The device interface every runtime backend implements.

Two calls carry all the cost structure of an NPU: ``load`` (once per session:
xclbins registered, contexts opened, constants uploaded and kept resident) and
``LoadedProgram.run`` (per inference: only activations move). Structural
typing (Protocol) keeps the backends independent: no base class to inherit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from ..compile.program import Program


@runtime_checkable
class LoadedProgram(Protocol):
    program: Program

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs the program; thread-safe; returns every program output or raises."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Device(Protocol):
    name: str   # "emulator" or "npu"

    def load(self, program: Program) -> LoadedProgram: ...

    def close(self) -> None: ...


def check_inputs(program: Program, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validated, C-contiguous program inputs, or a clear error naming the input.

    Symbolic dims (strings) may take any size but must agree across inputs.
    """
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a dict name -> array, got {type(inputs).__name__}")
    expected = {t.name for t in program.inputs}
    extra = sorted(set(inputs) - expected)
    if extra:
        raise ValueError(f"program {program.name!r}: unexpected inputs {extra} "
                         f"(expects {sorted(expected)})")
    bound: dict[str, int] = {}
    out: dict[str, np.ndarray] = {}
    for t in program.inputs:
        if t.name not in inputs:
            raise ValueError(f"program {program.name!r}: input {t.name!r} is missing")
        a = inputs[t.name]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"input {t.name!r} must be a numpy array, got {type(a).__name__}")
        if str(a.dtype) != t.dtype:
            raise TypeError(f"input {t.name!r} has dtype {a.dtype}, expected {t.dtype}")
        if a.ndim != len(t.shape):
            raise ValueError(f"input {t.name!r} has shape {list(a.shape)}, expected rank "
                             f"{len(t.shape)} ({list(t.shape)})")
        for axis, (dim, want) in enumerate(zip(a.shape, t.shape, strict=True)):
            if isinstance(want, str):
                if bound.setdefault(want, dim) != dim:
                    raise ValueError(f"input {t.name!r} axis {axis} ({want}) is {dim}, but "
                                     f"another input fixed {want}={bound[want]}")
            elif dim != want:
                raise ValueError(f"input {t.name!r} axis {axis} is {dim}, expected {want}")
        out[t.name] = np.ascontiguousarray(a)
    return out


def collect_outputs(program: Program, env: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The program outputs from a finished run's buffers (dtype checked)."""
    result = {}
    for t in program.outputs:
        a = env[t.name]
        if str(a.dtype) != t.dtype:
            raise RuntimeError(f"program {program.name!r}: output {t.name!r} came out as "
                               f"{a.dtype}, the program declares {t.dtype}")
        result[t.name] = a
    return result
