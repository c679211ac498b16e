"""What this machine offers for the NPU: device nodes, driver, firmware, pyxrt, xclbins.

Every probe goes through `Probes` (paths and the pyxrt importer), so tests can
describe a machine with an NPU without having one. Only nodes owned by the
amdxdna driver count: /dev/accel is shared with other accelerators (e.g. the
Intel NPU's ivpu driver).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .xclbins import ManifestError, design_entries, find_designs, load_manifest

DRIVER = "amdxdna"
# Oldest npu1 firmware accepted: the 1.5 line that MLIR-AIE's driver build
# installs for Phoenix. Conservative and not validated on hardware here.
MIN_FIRMWARE: tuple[int, ...] = (1, 5, 0, 0)


def _import_pyxrt() -> ModuleType:
    return importlib.import_module("pyxrt")


@dataclass(frozen=True)
class Probes:
    """Where to look. Defaults describe the real machine."""

    dev_root: Path = Path("/dev/accel")
    sys_root: Path = Path("/sys")
    proc_modules: Path = Path("/proc/modules")
    import_pyxrt: Callable[[], ModuleType] = _import_pyxrt
    manifest: Mapping[str, Any] | None = None        # None: the package's manifest
    xclbin_dirs: Sequence[Path] | None = None         # None: the default search path
    min_firmware: tuple[int, ...] = MIN_FIRMWARE


@dataclass(frozen=True)
class AccelNode:
    path: str
    driver: str | None          # None when sysfs does not say
    firmware: str | None        # amdxdna's fw_version attribute, e.g. "1.5.5.391"
    vbnv: str | None            # board name the driver reports
    device_id: str | None       # PCI device id, e.g. "0x1502"


@dataclass(frozen=True)
class Problem:
    missing: str                # "device-node", "driver", "firmware", "pyxrt", "xclbin"
    message: str


@dataclass(frozen=True)
class SystemInfo:
    nodes: tuple[AccelNode, ...]
    driver_loaded: bool
    driver_version: str | None
    pyxrt_version: str | None
    pyxrt_error: str | None
    xclbins_found: dict[str, str]
    xclbins_missing: dict[str, str]
    problems: tuple[Problem, ...]     # in check order; empty = the NPU is usable
    pyxrt: ModuleType | None = field(default=None, repr=False, compare=False)

    @property
    def npu_nodes(self) -> tuple[AccelNode, ...]:
        return tuple(n for n in self.nodes if n.driver in (DRIVER, None))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("pyxrt", None)
        return d


def _read(p: Path) -> str | None:
    try:
        return p.read_text().strip() or None
    except OSError:
        return None


def parse_version(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    nums = re.findall(r"\d+", text)
    return tuple(int(n) for n in nums) if nums else None


def _node(probes: Probes, path: Path) -> AccelNode:
    dev = probes.sys_root / "class" / "accel" / path.name / "device"
    drv_link = dev / "driver"
    driver = None
    try:
        driver = drv_link.resolve(strict=True).name if drv_link.exists() else None
    except OSError:
        driver = None
    return AccelNode(str(path), driver, _read(dev / "fw_version"), _read(dev / "vbnv"),
                     _read(dev / "device"))


def _driver(probes: Probes) -> tuple[bool, str | None]:
    mod = probes.sys_root / "module" / DRIVER
    loaded = mod.is_dir()
    if not loaded:
        text = _read(probes.proc_modules) or ""
        loaded = any(line.split(" ", 1)[0] == DRIVER for line in text.splitlines())
    version = _read(mod / "version") or _read(mod / "srcversion") if loaded else None
    return loaded, version


def _pyxrt(probes: Probes) -> tuple[ModuleType | None, str | None, str | None]:
    try:
        mod = probes.import_pyxrt()
    except Exception as exc:  # noqa: BLE001 - any import failure means "no pyxrt"
        return None, None, f"{type(exc).__name__}: {exc}"
    version = getattr(mod, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version("pyxrt")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (pyxrt has no version attribute)"
    return mod, str(version), None


def probe_system(probes: Probes | None = None,
                 designs: Sequence[str] | None = None) -> SystemInfo:
    """Everything `select_device` and `xdna-ep devices` need, in one pass."""
    probes = probes or Probes()
    try:
        paths = sorted(probes.dev_root.glob("accel*"))
    except OSError:
        paths = []
    nodes = tuple(_node(probes, p) for p in paths)
    loaded, drv_version = _driver(probes)
    mod, py_version, py_error = _pyxrt(probes)
    if designs is None:
        # every design's own files; a dynamic form's are looked up when a program
        # needs them (its launches then run on the emulator, announced, if absent):
        # a build that ships only the static forms must not make the NPU unusable
        try:
            entries = design_entries(probes.manifest if probes.manifest is not None
                                     else load_manifest())
            designs = [n for n, e in entries.items() if not e.design]
        except ManifestError:
            designs = None   # find_designs reports the manifest problem
    lookup = find_designs(designs, manifest=probes.manifest, dirs=probes.xclbin_dirs)
    found = {k: str(v.xclbin) for k, v in lookup.found.items()}

    problems: list[Problem] = []
    npu = [n for n in nodes if n.driver in (DRIVER, None)]
    if not nodes:
        problems.append(Problem("device-node", f"no NPU device node ({probes.dev_root}/accel* "
                                               "not found)"))
    elif not npu:
        owners = ", ".join(f"{Path(n.path).name}: {n.driver}" for n in nodes)
        problems.append(Problem("device-node", f"no {DRIVER} device node (accel nodes belong "
                                               f"to other drivers: {owners})"))
    if not loaded:
        problems.append(Problem("driver", f"the {DRIVER} driver is not loaded (not in "
                                          f"{probes.proc_modules} or {probes.sys_root}/module)"))
    for n in npu:
        fw = parse_version(n.firmware)
        if fw is not None and fw < probes.min_firmware:
            want = ".".join(map(str, probes.min_firmware))
            problems.append(Problem("firmware", f"NPU firmware {n.firmware} on {n.path} is "
                                                f"too old (need >= {want})"))
    if mod is None:
        problems.append(Problem("pyxrt", f"pyxrt cannot be imported ({py_error}); install "
                                         "XRT with its Python bindings"))
    if not found or lookup.missing:
        if lookup.missing:
            name, why = next(iter(sorted(lookup.missing.items())))
            label = "no xclbins" if name == "*" else f"no xclbin {name}"
            problems.append(Problem("xclbin", f"{label}: {why}"))
        else:
            problems.append(Problem("xclbin", "no xclbins: the kernel manifest lists none"))
    return SystemInfo(nodes, loaded, drv_version, py_version, py_error, found,
                      dict(lookup.missing), tuple(problems), mod)
