"""A FAKE amdxdna NPU described as files, for the device probes (the plugin library's
provider/npu_probe.cc and the Python runtime/discovery.py).

The layout is what the amdxdna driver gives a Phoenix (npu1) machine, cut down to
what provider/npu_probe.cc reads:

    dev/accel/accel0                                  the device node (a plain file)
    sys/class/accel/accel0/device -> the PCI device   symlink
    sys/devices/pci0000:00/0000:c5:00.1/{vendor,device,vbnv,fw_version,driver}
    sys/bus/pci/drivers/<driver>                       what `driver` links to
    sys/module/amdxdna/version                         the driver is loaded
    proc/modules                                       ditto, the other place looked at

`env()` gives the variables that point the plugin library at the tree
(XDNA_EP_DEV_ROOT, XDNA_EP_SYS_ROOT, XDNA_EP_PROC_ROOT), at the NPU backend
library (XDNA_EP_NPU_LIBRARY: the backend built against the FAKE XRT library,
tests/npu_support.py, or a path that does not exist) and at FAKE xclbins
(XDNA_EP_XCLBIN_DIR). The FAKE XRT library plays the hardware in Python
(fakes/fake_xrt_host.py), so the tests directory goes on PYTHONPATH for child
interpreters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PCI_DEVICE_ID = "0x1502"   # Phoenix NPU
BOARD = "RyzenAI-npu1"


@dataclass(frozen=True)
class FakeNpuTree:
    root: Path
    backend_library: str | None   # None: the variable points at a file that does not exist
    xclbin_dir: str | None = None

    @property
    def dev_root(self) -> Path:
        return self.root / "dev" / "accel"

    @property
    def sys_root(self) -> Path:
        return self.root / "sys"

    @property
    def proc_modules(self) -> Path:
        return self.root / "proc" / "modules"

    def env(self) -> dict[str, str]:
        tests = str(Path(__file__).resolve().parent.parent)
        env = {"XDNA_EP_DEV_ROOT": str(self.dev_root), "XDNA_EP_SYS_ROOT": str(self.sys_root),
               "XDNA_EP_PROC_ROOT": str(self.root / "proc"),
               "XDNA_EP_NPU_LIBRARY": self.backend_library
               or str(self.root / "missing" / "libxdna_ep_npu.so"),
               "PYTHONPATH": os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH"))
                                             if p)}
        if self.xclbin_dir is not None:
            env["XDNA_EP_XCLBIN_DIR"] = self.xclbin_dir
        return env


def make_fake_npu_tree(root: Path, *, node: bool = True, driver: str = "amdxdna",
                       loaded: bool = True, firmware: str | None = "1.5.5.391",
                       vendor: str = "0x1022", backend_library: str | None = None,
                       xclbin_dir: str | None = None) -> FakeNpuTree:
    """A FAKE machine with one accel node owned by `driver` (amdxdna: an NPU);
    `backend_library` None: no NPU backend library."""
    dev = root / "dev" / "accel"
    dev.mkdir(parents=True)
    sys_ = root / "sys"
    pci = sys_ / "devices" / "pci0000:00" / "0000:c5:00.1"
    pci.mkdir(parents=True)
    drv = sys_ / "bus" / "pci" / "drivers" / driver
    drv.mkdir(parents=True)
    (pci / "driver").symlink_to(drv)
    (pci / "vendor").write_text(vendor + "\n")
    (pci / "device").write_text(PCI_DEVICE_ID + "\n")
    (pci / "vbnv").write_text(BOARD + "\n")
    if firmware is not None:
        (pci / "fw_version").write_text(firmware + "\n")
    if node:
        (dev / "accel0").write_text("")
        cls = sys_ / "class" / "accel" / "accel0"
        cls.mkdir(parents=True)
        (cls / "device").symlink_to(pci)
    (root / "proc").mkdir()
    (root / "proc" / "modules").write_text(
        "amdxdna 200704 0 - Live 0x0\n" if loaded else "snd 1 0 - Live 0x0\n")
    if loaded:
        (sys_ / "module" / "amdxdna").mkdir(parents=True)
        (sys_ / "module" / "amdxdna" / "version").write_text("2.19.0\n")
    return FakeNpuTree(root, backend_library, xclbin_dir)
