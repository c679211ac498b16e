"""Announced fallback from the NPU to the emulator (fallback="allow").

Users hate silent CPU fallback, so a switch is always announced three ways:
warnings.warn (visible in notebooks/scripts), a logging warning, and a
FallbackEvent record (per device and process-wide) that the report shows.
A program falls back as a whole and for good: after an NPU failure the device
state is unknown, and mixing devices mid-program would hide the failure. The
failing run is recomputed from its inputs on the emulator, so no partial NPU
output is ever returned.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..compile.program import Program
from .device import Device, LoadedProgram
from .emulator import EmulatorDevice
from .errors import FallbackEvent, XdnaDeviceError, record_fallback

log = logging.getLogger("xdna_ep.runtime")


@dataclass
class FallbackProgram:
    program: Program
    owner: FallbackDevice
    primary: LoadedProgram | None
    _emulated: LoadedProgram | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active_device(self) -> str:
        return self.owner.name if self.primary is not None else "emulator"

    def _emulator(self) -> LoadedProgram:
        with self._lock:
            if self._emulated is None:
                self._emulated = self.owner.emulator.load(self.program)
            return self._emulated

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        primary = self.primary
        if primary is not None:
            try:
                return primary.run(inputs)
            except XdnaDeviceError as exc:
                with self._lock:
                    if self.primary is primary:
                        self.primary = None
                        self.owner.announce(self.program, "run", exc)
                        try:
                            primary.close()
                        except Exception:  # noqa: BLE001 - already failing over
                            log.debug("closing the failed NPU program raised", exc_info=True)
        return self._emulator().run(inputs)

    def close(self) -> None:
        for p in (self.primary, self._emulated):
            if p is not None:
                p.close()


@dataclass
class FallbackDevice:
    """Wraps the NPU device; device faults switch the program to the emulator."""

    primary: Device
    emulator: Device = field(default_factory=EmulatorDevice)
    events: list[FallbackEvent] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.primary.name

    def announce(self, program: Program, phase: str, exc: XdnaDeviceError) -> None:
        msg = (f"xdna-ep: the NPU failed during {phase} of program {program.name!r} "
               f"({exc}); falling back to the emulator (CPU) for this program")
        event = FallbackEvent(program.name, phase, str(exc), exc.design, exc.kernels, exc.state)
        self.events.append(event)
        record_fallback(event)
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)

    def load(self, program: Program) -> FallbackProgram:
        try:
            primary: Any = self.primary.load(program)
        except XdnaDeviceError as exc:
            self.announce(program, "load", exc)
            primary = None
        fp = FallbackProgram(program, self, primary)
        if primary is None:
            fp._emulator()
        return fp

    def close(self) -> None:
        self.primary.close()
        self.emulator.close()
