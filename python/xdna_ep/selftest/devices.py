"""The two sides of a selftest comparison, and the pyxrt recorder.

ReferenceDevice runs a Program stage by stage through each kernel's numpy
integer reference (`KernelSpec.reference`), the baseline of `--device
emulator`. RecordingXrt wraps a pyxrt module (real or the tests' fake) and
records, per kernel launch, the ERT state `run.wait` returned and the seconds
from the call to that return, so the selftest can report each launch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..compile.program import Program
from ..kernel_specs import registry
from ..runtime.device import check_inputs, collect_outputs
from ..runtime.layout import stage_consts


class ReferenceProgram:
    def __init__(self, program: Program) -> None:
        self.program = program

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = dict(check_inputs(self.program, inputs))
        for st in self.program.stages():
            spec = registry.get(st.kernel)
            outs = spec.reference(stage_consts(self.program, st), [env[b] for b in st.inputs],
                                  dict(st.attrs))
            env.update(zip(st.outputs, outs, strict=True))
        return collect_outputs(self.program, env)

    def close(self) -> None:
        pass


class ReferenceDevice:
    """Programs through the kernels' numpy references (slow, trusted)."""

    name = "reference"

    def load(self, program: Program) -> ReferenceProgram:
        return ReferenceProgram(program)

    def close(self) -> None:
        pass


@dataclass
class Launch:
    """One kernel command as the recorder saw it."""

    xclbin: str
    state: str = ""
    seconds: float = 0.0


@dataclass
class LaunchLog:
    launches: list[Launch] = field(default_factory=list)

    def since(self, n: int) -> list[Launch]:
        return self.launches[n:]


class _Run:
    def __init__(self, inner: Any, rec: Launch, t0: float) -> None:
        self._inner, self._rec, self._t0 = inner, rec, t0

    def wait(self, *args: Any) -> Any:
        state = self._inner.wait(*args)
        self._rec.seconds = time.perf_counter() - self._t0
        self._rec.state = getattr(state, "name", str(state))
        return state

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Kernel:
    def __init__(self, inner: Any, log: LaunchLog, xclbin: str) -> None:
        self._inner, self._log, self._xclbin = inner, log, xclbin

    def __call__(self, *args: Any) -> _Run:
        rec = Launch(self._xclbin)
        self._log.launches.append(rec)
        t0 = time.perf_counter()
        return _Run(self._inner(*args), rec, t0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def recording_xrt(pyxrt: ModuleType, log: LaunchLog) -> ModuleType:
    """A module that is `pyxrt` except that kernel launches are recorded in `log`."""
    mod = ModuleType(getattr(pyxrt, "__name__", "pyxrt"))
    mod.__dict__.update({k: v for k, v in vars(pyxrt).items() if not k.startswith("__")})
    mod.__version__ = getattr(pyxrt, "__version__", "")
    real_kernel = pyxrt.kernel

    def kernel(ctx: Any, name: str) -> _Kernel:
        xclbin = getattr(getattr(ctx, "xclbin", None), "path", "") or ""
        return _Kernel(real_kernel(ctx, name), log, str(xclbin))

    mod.kernel = kernel
    return mod
