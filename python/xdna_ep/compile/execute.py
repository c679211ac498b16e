"""A small Program executor for compile/'s own tests and accuracy figures.

When every stage kernel is registered, the program runs on the runtime's
EmulatorDevice (xdna_ep.runtime), the production executor. Otherwise stages run in
order on named buffers here: each stage uses the registered
emulator kernel (xdna_ep.kernel_specs registry: prepare + run) when its module is
importable, else the contract-level numpy version in reference.py; which one
ran is reported, so no figure is mistaken for a bit-exact emulator result.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kernel_api import matmul_supports_split
from .program import Program
from .reference import REFERENCES

_MODULE_OF = {"dequantize": "quantize"}


def registered_kernel(name: str) -> Any | None:
    """The KernelSpec of `name` if its module imports and registers it, else None."""
    from ..kernel_specs import registry

    if name not in registry.KERNELS:
        try:
            importlib.import_module(f"xdna_ep.kernel_specs.{_MODULE_OF.get(name, name)}")
        except ImportError:
            return None
    return registry.KERNELS.get(name)


@dataclass
class ExecResult:
    outputs: dict[str, np.ndarray]
    used: dict[str, str] = field(default_factory=dict)  # kernel -> "emulator" | "contract-ref"


class ProgramRunner:
    """Prepared program: constants bound per stage once, then run(feeds) per inference."""

    def __init__(self, program: Program, prefer_registry: bool = True) -> None:
        program.validate()
        self.program = program
        self.used: dict[str, str] = {}
        self._steps: list[tuple[Any, Any, Any]] = []
        self._device: Any = None
        kernels = {st.kernel for st in program.stages()}
        split_ok = matmul_supports_split() or not any(
            "split" in st.attrs for st in program.stages() if st.kernel == "matmul")
        if prefer_registry and split_ok and all(registered_kernel(k) is not None
                                                for k in kernels):
            try:  # the runtime's production executor
                from ..runtime.emulator import EmulatorDevice
            except ImportError:
                EmulatorDevice = None  # noqa: N806
            if EmulatorDevice is not None:
                self._device = EmulatorDevice().load(program)
                self.used = {k: "emulator-device" for k in sorted(kernels)}
                return
        for st in program.stages():
            consts = {role: program.constants[c] for role, c in st.consts.items()}
            spec = registered_kernel(st.kernel) if prefer_registry else None
            if spec is not None and st.kernel == "matmul" and "split" in st.attrs \
                    and not matmul_supports_split():
                spec = None  # the registered matmul has no split outputs yet
            if spec is not None:
                state = spec.prepare(consts, dict(st.attrs))
                self._steps.append((st, spec.run, state))
                self._note(st.kernel, "emulator")
            elif st.kernel in REFERENCES:
                self._steps.append((st, REFERENCES[st.kernel], consts))
                self._note(st.kernel, "contract-ref")
            else:
                raise NotImplementedError(f"no executor for stage kernel {st.kernel!r}")

    def _note(self, kernel: str, how: str) -> None:
        """used[kernel]: every executor its stages ran on, e.g. "contract-ref+emulator"."""
        seen = set(self.used[kernel].split("+")) if kernel in self.used else set()
        self.used[kernel] = "+".join(sorted(seen | {how}))

    def run(self, feeds: Mapping[str, np.ndarray]) -> ExecResult:
        if self._device is not None:
            return ExecResult(dict(self._device.run(feeds)), dict(self.used))
        bufs: dict[str, np.ndarray] = {}
        for spec in self.program.inputs:
            if spec.name not in feeds:
                raise KeyError(f"program {self.program.name!r}: missing input {spec.name!r}")
            a = np.asarray(feeds[spec.name])
            if a.dtype != np.dtype(spec.dtype):
                raise TypeError(f"input {spec.name!r}: expected {spec.dtype}, got {a.dtype}")
            bufs[spec.name] = np.ascontiguousarray(a)
        for st, fn, state in self._steps:
            outs = fn(state, [bufs[b] for b in st.inputs], dict(st.attrs))
            if len(outs) != len(st.outputs):
                raise RuntimeError(f"stage {st.kernel}: {len(outs)} outputs for "
                                   f"{len(st.outputs)} buffers")
            bufs.update(zip(st.outputs, outs, strict=True))
        return ExecResult({t.name: bufs[t.name] for t in self.program.outputs}, dict(self.used))


def run_program(program: Program, feeds: Mapping[str, np.ndarray],
                prefer_registry: bool = True) -> ExecResult:
    return ProgramRunner(program, prefer_registry).run(feeds)
