"""EmulatorDevice: the program's kernels run on the host CPU (xdna_ep._emulator).

Each stage's constants are prepared once at load (packed weights, tables) and
kept; a run executes every launch's stages in order, resolving buffers by
name. The kernels are the host build of the NPU kernels, so every buffer
equals, byte for byte, what the xrt launch reads and writes (the fake pyxrt in
tests checks this through runtime.layout).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..compile.program import Program, Stage
from ..kernel_specs import registry
from .device import check_inputs, collect_outputs
from .layout import stage_consts


def execute_stages(stages: Sequence[Stage], specs: Sequence[Any], states: Sequence[Any],
                   env: dict[str, np.ndarray]) -> None:
    """Runs stages in order; reads inputs from and writes outputs into `env`.

    Shared by EmulatorDevice and the fake pyxrt, so both compute identically.
    """
    for st, spec, state in zip(stages, specs, states, strict=True):
        outs = spec.run(state, [env[b] for b in st.inputs], st.attrs)
        if len(outs) != len(st.outputs):
            raise RuntimeError(f"kernel {st.kernel!r} returned {len(outs)} buffers, the "
                               f"stage names {len(st.outputs)} ({list(st.outputs)})")
        for name, arr in zip(st.outputs, outs, strict=True):
            env[name] = np.ascontiguousarray(arr)


@dataclass
class EmulatorProgram:
    """A program loaded on the emulator: prepared stage states, kept resident."""

    program: Program
    specs: list[list[Any]]        # per launch, per stage
    states: list[list[Any]]
    closed: bool = False
    runs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.closed:
            raise RuntimeError(f"program {self.program.name!r} was closed")
        env = dict(check_inputs(self.program, inputs))
        for ln, specs, states in zip(self.program.launches, self.specs, self.states,
                                     strict=True):
            execute_stages(ln.stages, specs, states, env)
        with self._lock:
            self.runs += 1
        return collect_outputs(self.program, env)

    def close(self) -> None:
        self.closed = True
        self.states = []


@dataclass
class EmulatorDevice:
    """The host emulator: always available, results identical to the NPU kernels."""

    name: str = "emulator"

    def load(self, program: Program) -> EmulatorProgram:
        program.validate()
        specs = [[registry.get(st.kernel) for st in ln.stages] for ln in program.launches]
        states = [[spec.prepare(stage_consts(program, st), st.attrs)
                   for st, spec in zip(ln.stages, lspecs, strict=True)]
                  for ln, lspecs in zip(program.launches, specs, strict=True)]
        return EmulatorProgram(program, specs, states)

    def close(self) -> None:
        """Nothing to release: prepared states belong to the loaded programs."""
