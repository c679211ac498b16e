"""Fixtures of the plugin's NPU tests: the native NPU backend (provider/npu/) built
against the FAKE XRT library (tests/fakes/fake_xrt, NOT XRT), FAKE xclbins for
every manifest design, and ONNX Runtime sessions on the plugin with it.

The backend library is built once per test session with CMake into a temporary
folder; `FakeBackend.build_seconds` records how long that took.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort
import pytest

import xdna_ep
from xdna_ep.runtime.xclbins import design_entries, load_manifest

from fakes import fake_xrt_host  # isort: skip
from fakes.fake_hardware import FakeHardware, Faults, write_fake_xclbin, write_instructions  # isort: skip

ROOT = Path(__file__).resolve().parents[1]
EP = "XDNAExecutionProvider"
INSTRUCTIONS = [0x06030100, 0x00000105, 0x0000000B]


@dataclass(frozen=True)
class FakeBackend:
    """libxdna_ep_npu.so built against the FAKE XRT library."""

    library: Path
    build_seconds: float


def build_fake_backend(out: Path) -> FakeBackend:
    cmake = Path(sys.executable).with_name("cmake")
    cmake_cmd = str(cmake) if cmake.exists() else "cmake"
    t0 = time.perf_counter()
    configure = [cmake_cmd, "-S", str(ROOT / "tests" / "fakes" / "fake_xrt"), "-B", str(out),
                 f"-DXDNA_EP_SOURCE_DIR={ROOT}", f"-DPython_EXECUTABLE={sys.executable}",
                 "-DCMAKE_BUILD_TYPE=Release"]
    for cmd in (configure, [cmake_cmd, "--build", str(out), "-j", "2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building the FAKE XRT backend failed: {' '.join(cmd)}\n"
                               f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    lib = out / "npu" / "libxdna_ep_npu.so"
    if not lib.is_file():
        raise RuntimeError(f"the FAKE XRT backend build made no {lib}")
    return FakeBackend(lib, time.perf_counter() - t0)


def write_fake_designs(folder: Path, skip: tuple[str, ...] = ()) -> Path:
    """A FAKE xclbin + instruction file for every design of the package's manifest,
    named as the manifest names them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, e in design_entries(load_manifest()).items():
        if name in skip:
            continue
        write_fake_xclbin(folder / e.xclbin, e.launch_design, (e.kernel,))
        write_instructions(folder / e.insts, INSTRUCTIONS)
    return folder


@dataclass
class FakeNpu:
    """The FAKE NPU of one test: its hardware (calls, uploads, faults) and folders."""

    backend: FakeBackend
    xclbin_dir: Path

    @property
    def hardware(self) -> FakeHardware:
        return fake_xrt_host.HARDWARE

    def reset(self, faults: Faults | None = None) -> FakeHardware:
        return fake_xrt_host.reset(faults)

    def calls(self, name: str) -> list[dict]:
        return [d for n, d in self.hardware.calls if n == name]


def fake_npu_for_test(fake_backend: FakeBackend, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNpu]:
    """The plugin finds the FAKE backend ($XDNA_EP_NPU_LIBRARY) and FAKE xclbins
    ($XDNA_EP_XCLBIN_DIR); a fresh FAKE hardware without faults (the `fake_npu`
    fixture of conftest.py)."""
    xdir = write_fake_designs(tmp_path / "xclbin")
    monkeypatch.setenv("XDNA_EP_NPU_LIBRARY", str(fake_backend.library))
    monkeypatch.setenv("XDNA_EP_XCLBIN_DIR", str(xdir))
    fake_xrt_host.reset()
    yield FakeNpu(fake_backend, xdir)
    fake_xrt_host.reset()


def npu_session(model: str | Path, options: dict[str, str] | None = None,
                log_level: int = 2) -> ort.InferenceSession:
    """A session on the plugin, device=npu unless `options` says otherwise; warnings
    (log_level 2) reach stderr, where tests read the announcements."""
    xdna_ep.register()
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP]
    so = ort.SessionOptions()
    so.log_severity_level = log_level
    so.add_provider_for_devices(devices, {"device": "npu", **(options or {})})
    return ort.InferenceSession(str(model), sess_options=so)


def env_without_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The plugin as on a machine without the backend library."""
    monkeypatch.setenv("XDNA_EP_NPU_LIBRARY", str(tmp_path / "no" / "libxdna_ep_npu.so"))
    monkeypatch.delenv("XDNA_EP_XCLBIN_DIR", raising=False)
