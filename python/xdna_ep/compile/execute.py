"""ProgramRunner: runs a compiled Program on the host emulator, for compile/'s own
SQNR figures and for tests.

It is a thin wrapper over the runtime's EmulatorDevice (the production host
executor), so a figure measured here is the kernels' own arithmetic: every stage
kernel is looked up in the KernelSpec table (xdna_ep.kernel_specs.registry), and
a kernel that is not registered raises there instead of falling back to another
implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .program import Program


@dataclass
class ExecResult:
    outputs: dict[str, np.ndarray]
    used: dict[str, str] = field(default_factory=dict)  # kernel -> executor ("emulator-device")


class ProgramRunner:
    """Prepared program: constants bound per stage once, then run(feeds) per inference."""

    def __init__(self, program: Program) -> None:
        from ..runtime.emulator import EmulatorDevice

        program.validate()
        self.program = program
        self._loaded = EmulatorDevice().load(program)
        self.used: dict[str, str] = {k: "emulator-device"
                                     for k in sorted({st.kernel for st in program.stages()})}

    def run(self, feeds: Mapping[str, np.ndarray]) -> ExecResult:
        return ExecResult(dict(self._loaded.run(feeds)), dict(self.used))


def run_program(program: Program, feeds: Mapping[str, np.ndarray]) -> ExecResult:
    return ProgramRunner(program).run(feeds)
