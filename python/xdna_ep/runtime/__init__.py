"""runtime stage of xdna-ep: one device API, two devices.

    choice = select_device("auto")        # or "npu" / "emulator"; says which and why
    device = choice.open()                # XrtDevice (pyxrt) or EmulatorDevice
    loaded = device.load(program)         # constants uploaded once, kept resident
    outputs = loaded.run({"x": x})        # only activations move; thread-safe

The xrt path is complete but not yet validated on NPU hardware (see
docs/RUNTIME.md); tests drive it through a fake pyxrt.
"""

from __future__ import annotations

from .device import Device, LoadedProgram
from .discovery import Probes, SystemInfo, probe_system
from .emulator import EmulatorDevice
from .ep_devices import EpDevice, HardwareDevice, get_ep_devices
from .errors import DeviceUnavailableError, FallbackEvent, XdnaDeviceError, fallback_events
from .fallback import FallbackDevice
from .selection import DeviceChoice, select_device
from .xrt import XrtDevice

__all__ = [
    "Device", "DeviceChoice", "DeviceUnavailableError", "EmulatorDevice", "EpDevice",
    "FallbackDevice", "FallbackEvent", "HardwareDevice", "LoadedProgram", "Probes",
    "SystemInfo", "XdnaDeviceError", "XrtDevice", "fallback_events", "get_ep_devices",
    "probe_system", "select_device",
]
