"""Runtime errors and the fallback record.

Every device failure is raised as an XdnaDeviceError that names *what* failed
(design, kernels, xclbin, ERT state) so a user reading one line knows whether
the xclbin, the driver or the run was at fault. DeviceUnavailableError is the
"you asked for the NPU but this machine cannot give it" error: it names the
missing piece (no device node, driver not loaded, no pyxrt, no xclbin, firmware
too old).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


class XdnaDeviceError(RuntimeError):
    """A device operation failed (load, allocation, launch, wait)."""

    def __init__(self, message: str, *, phase: str, design: str = "",
                 kernels: tuple[str, ...] = (), state: str = "") -> None:
        super().__init__(message)
        self.phase = phase          # "load" | "alloc" | "run"
        self.design = design        # manifest design (xclbin) name
        self.kernels = kernels      # stage kernels of the failing launch
        self.state = state          # ERT command state name, when a run failed


class DeviceUnavailableError(RuntimeError):
    """device="npu" was requested but a required piece is missing."""

    def __init__(self, message: str, *, missing: str) -> None:
        super().__init__(message)
        self.missing = missing      # short tag: "device-node", "driver", "pyxrt", ...


@dataclass(frozen=True)
class FallbackEvent:
    """One announced switch from the NPU to the emulator (shown in reports)."""

    program: str
    phase: str                      # "load" or "run"
    reason: str
    design: str = ""
    kernels: tuple[str, ...] = ()
    state: str = ""
    unix_time: float = field(default_factory=time.time)


_EVENTS: list[FallbackEvent] = []
_EVENTS_LOCK = threading.Lock()


def record_fallback(event: FallbackEvent) -> None:
    with _EVENTS_LOCK:
        _EVENTS.append(event)


def fallback_events() -> list[FallbackEvent]:
    """Every fallback announced in this process, oldest first (for the report)."""
    with _EVENTS_LOCK:
        return list(_EVENTS)
