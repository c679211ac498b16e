"""Choosing the device at session start: device="auto" | "npu" | "emulator".

auto takes the NPU only when every piece is there (amdxdna device node, driver
loaded, firmware new enough, pyxrt importable, the needed xclbins found) and
otherwise the emulator; either way it says which and why, in one log line and
in DeviceChoice.reason (which the report prints). "npu" that cannot be
satisfied raises DeviceUnavailableError naming the missing piece. `fallback`
governs faults *after* selection: "allow" wraps the NPU so a failed load or run
is announced and recomputed on the emulator; "error" raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .device import Device
from .discovery import Probes, SystemInfo, probe_system
from .emulator import EmulatorDevice
from .errors import DeviceUnavailableError
from .fallback import FallbackDevice
from .xrt import XrtDevice

log = logging.getLogger("xdna_ep.runtime")

DEVICES = ("auto", "npu", "emulator")
FALLBACKS = ("allow", "error")


@dataclass(frozen=True)
class DeviceChoice:
    requested: str
    name: str              # "npu" or "emulator"
    reason: str
    fallback: str
    info: SystemInfo | None = field(default=None, repr=False)
    probes: Probes = field(default_factory=Probes, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"requested": self.requested, "device": self.name, "reason": self.reason,
                "fallback": self.fallback}

    def open(self, *, timeout_ms: int | None = None) -> Device:
        """The device object for this choice (the NPU wrapped for fallback="allow")."""
        if self.name == "emulator":
            return EmulatorDevice()
        pyxrt = self.info.pyxrt if self.info is not None else None
        npu = XrtDevice(pyxrt, timeout_ms=timeout_ms, manifest=self.probes.manifest,
                        xclbin_dirs=self.probes.xclbin_dirs)
        return FallbackDevice(npu) if self.fallback == "allow" else npu


def _describe_npu(info: SystemInfo) -> str:
    n = info.npu_nodes[0]
    return (f"NPU at {n.path} ({n.vbnv or 'amdxdna'}; driver {info.driver_version or 'loaded'}, "
            f"firmware {n.firmware or 'unknown'}; pyxrt {info.pyxrt_version}; "
            f"{len(info.xclbins_found)} xclbin(s) found)")


def select_device(device: str = "auto", fallback: str = "allow", *,
                  probes: Probes | None = None,
                  designs: Sequence[str] | None = None) -> DeviceChoice:
    """Picks the device; `designs` are the xclbins the session needs (None: all)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    probes = probes or Probes()
    if device == "emulator":
        choice = DeviceChoice(device, "emulator", "emulator requested (device='emulator')",
                              fallback, None, probes)
        log.info("xdna-ep device: emulator (%s)", choice.reason)
        return choice
    info = probe_system(probes, designs)
    if info.problems:
        first = info.problems[0]
        if device == "npu":
            others = "; ".join(p.message for p in info.problems[1:])
            raise DeviceUnavailableError(
                f"device='npu' cannot be used: {first.message}"
                + (f" (also: {others})" if others else ""), missing=first.missing)
        reason = f"no usable NPU: {first.message}; using the emulator (CPU)"
        choice = DeviceChoice(device, "emulator", reason, fallback, info, probes)
    else:
        choice = DeviceChoice(device, "npu", _describe_npu(info), fallback, info, probes)
    log.info("xdna-ep device: %s (%s)", choice.name, choice.reason)
    return choice
