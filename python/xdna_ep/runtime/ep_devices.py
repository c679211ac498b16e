"""Device listing in the shape of ONNX Runtime's plugin EPs (`ort.get_ep_devices()`).

Plugin execution providers describe each device they can run on as an
OrtEpDevice (EP name and vendor, a hardware device with type/vendor/ids and
metadata). These data classes mirror that so users and reports see the same
vocabulary; the metadata says plainly whether a device is real hardware or
the host emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .discovery import Probes, probe_system

EP_NAME = "XDNAExecutionProvider"
AMD_VENDOR_ID = 0x1022


@dataclass(frozen=True)
class HardwareDevice:
    type: str                       # "NPU", or "CPU" for the emulator
    vendor: str                     # "AMD" ("host" for the emulator)
    vendor_id: int
    device_id: int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EpDevice:
    ep_name: str
    ep_vendor: str
    device: HardwareDevice
    ep_metadata: dict[str, str] = field(default_factory=dict)
    ep_options: dict[str, str] = field(default_factory=dict)


def get_ep_devices(probes: Probes | None = None) -> list[EpDevice]:
    """NPUs the amdxdna driver exposes (backend "npu", usable or not: metadata
    "usable" says which and why), then the emulator. The plugin library's own list
    (`xdna_ep.get_ep_devices()`) has an NPU entry only when one is usable."""
    from .. import __version__
    from .._native import emulator

    info = probe_system(probes)
    ep_meta = {"version": __version__}
    out = []
    for n in info.npu_nodes:
        dev_id = int(n.device_id, 16) if n.device_id else 0
        meta = {"backend": "npu", "device_node": n.path,
                "driver": f"amdxdna {info.driver_version or ''}".strip() if info.driver_loaded
                else "amdxdna not loaded",
                "firmware": n.firmware or "unknown",
                "usable": "yes" if not info.problems else
                "no: " + "; ".join(p.message for p in info.problems)}
        out.append(EpDevice(EP_NAME, "AMD", HardwareDevice(
            "NPU", "AMD", AMD_VENDOR_ID, dev_id, meta), ep_meta, {"device": "npu"}))
    meta = {"backend": "emulator", "driver": "none (host CPU)", "firmware": "none",
            "kernel_path": emulator.active_kernel_path(),
            "kernel_paths": ",".join(emulator.kernel_paths()),
            "threads": str(emulator.num_threads()), "device_node": "none"}
    # the emulator runs on the host CPU and is listed as such (never as NPU hardware)
    out.append(EpDevice(EP_NAME, "AMD", HardwareDevice("CPU", "host", 0, 0, meta),
                        ep_meta, {"device": "emulator"}))
    return out
