"""Runs the selftest cases and the encoder window; collects the results."""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..runtime import EmulatorDevice, XrtDevice
from ..runtime.errors import XdnaDeviceError
from .cases import Case, all_cases
from .compare import Difference, first_difference
from .devices import Launch, LaunchLog, ReferenceDevice, recording_xrt

DEVICES = ("npu", "emulator")
BASELINE = {"npu": "emulator", "emulator": "reference"}


@dataclass
class CaseResult:
    design: str
    kernels: tuple[str, ...]
    shape: str
    status: str = "pass"                  # pass | fail (bytes differ) | error (did not run)
    difference: Difference | None = None
    error: str = ""
    seconds: float = 0.0                  # device under test, whole run (load excluded)
    baseline_seconds: float = 0.0
    launches: list[Launch] = field(default_factory=list)   # NPU only: ERT state + time

    def to_json(self) -> dict[str, Any]:
        return {"design": self.design, "kernels": list(self.kernels), "shape": self.shape,
                "status": self.status,
                "first_difference": self.difference.to_json() if self.difference else None,
                "error": self.error, "seconds": self.seconds,
                "baseline_seconds": self.baseline_seconds,
                "launches": [{"xclbin": x.xclbin, "ert_state": x.state, "seconds": x.seconds}
                             for x in self.launches]}

    def note(self) -> str:
        if self.status == "fail":
            return f"{self.design} [{self.shape}]: {self.difference}"
        return self.error


@dataclass
class EncoderResult:
    model: str
    status: str = "pass"        # pass | fail | error
    regions: int = 0
    calls: int = 0              # region calls compared
    difference: str = ""        # region + Difference of the first mismatch
    error: str = ""
    seconds: float = 0.0            # device under test: its share of the window
    baseline_seconds: float = 0.0   # baseline: its share of the window

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class SelftestResult:
    device: str
    baseline: str
    cases: list[CaseResult]
    encoder: EncoderResult | None
    system: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        enc_ok = self.encoder is None or self.encoder.status == "pass"
        return enc_ok and all(c.status == "pass" for c in self.cases)

    @property
    def failures(self) -> list[str]:
        out = [c.note() for c in self.cases if c.status != "pass"]
        if self.encoder is not None and self.encoder.status != "pass":
            out.append(f"encoder window: {self.encoder.difference or self.encoder.error}")
        return out

    def to_json(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "selftest_version": 1, "xdna_ep_version": __version__, "device": self.device,
            "baseline": self.baseline, "passed": self.passed, "started": self.started,
            "seconds": self.seconds,
            "ran_on_npu": self.device == "npu",
            "note": ("bytes of the device under test against the baseline; emulator timings "
                     "are CPU timings" + ("" if self.device == "npu" else
                                          ", no NPU was involved")),
            "host": {"python": platform.python_version(), "machine": platform.machine(),
                     "system": platform.platform()},
            "system": self.system,
            "cases": [c.to_json() for c in self.cases],
            "encoder": self.encoder.to_json() if self.encoder else None,
            "failures": self.failures,
        }


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_case(case: Case, dut: Any, baseline: Any, log: LaunchLog | None) -> CaseResult:
    res = CaseResult(case.design, case.kernels, case.shape)
    names = [t.name for t in case.program.outputs]
    try:
        want, res.baseline_seconds = _timed(
            lambda: baseline.load(case.program).run(case.inputs))
    except Exception as exc:  # noqa: BLE001 - a baseline failure is a finding too
        res.status, res.error = "error", f"baseline failed: {type(exc).__name__}: {exc}"
        return res
    n0 = len(log.launches) if log else 0
    try:
        loaded = dut.load(case.program)
        got, res.seconds = _timed(lambda: loaded.run(case.inputs))
    except XdnaDeviceError as exc:
        res.status, res.error = "error", str(exc)
        if log:
            res.launches = log.since(n0)
        return res
    except Exception as exc:  # noqa: BLE001 - recorded, the selftest goes on
        res.status, res.error = "error", f"{type(exc).__name__}: {exc}"
        return res
    if log:
        res.launches = log.since(n0)
    res.difference = first_difference(want, got, names)
    if res.difference is not None:
        res.status = "fail"
    return res


def open_npu(pyxrt: ModuleType | None, manifest: Mapping[str, Any] | None,
             xclbin_dirs: Sequence[Path] | None, probes: Any, log: LaunchLog) -> XrtDevice:
    """The NPU through (recorded) pyxrt. Without `pyxrt` the machine is probed and a
    missing piece raises DeviceUnavailableError naming it (no NPU, driver, firmware,
    pyxrt or xclbins)."""
    if pyxrt is None:
        from ..runtime.selection import select_device

        choice = select_device("npu", fallback="error", probes=probes)
        pyxrt = choice.info.pyxrt if choice.info is not None else None
        manifest, xclbin_dirs = choice.probes.manifest, choice.probes.xclbin_dirs
    return XrtDevice(recording_xrt(pyxrt, log), manifest=manifest, xclbin_dirs=xclbin_dirs)


def run_selftest(device: str = "emulator", *, pyxrt: ModuleType | None = None,
                 manifest: Mapping[str, Any] | None = None,
                 xclbin_dirs: Sequence[Path] | None = None, probes: Any = None,
                 encoder: bool = True, model: str | Path | None = None, seed: int = 0,
                 only: Sequence[str] | None = None, system: bool = True) -> SelftestResult:
    """Every case on `device` against its baseline, then (encoder=True) one Whisper
    encoder window. `pyxrt`/`manifest`/`xclbin_dirs` inject the NPU side (tests pass
    the FAKE pyxrt); otherwise the machine is probed."""
    if device not in DEVICES:
        raise ValueError(f"selftest device must be one of {DEVICES}, got {device!r}")
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    log = LaunchLog() if device == "npu" else None
    if device == "npu":
        dut, baseline = open_npu(pyxrt, manifest, xclbin_dirs, probes, log), EmulatorDevice()
    else:
        dut, baseline = EmulatorDevice(), ReferenceDevice()
    cases = [c for c in all_cases(seed) if not only or c.design in only]
    results = [run_case(c, dut, baseline, log) for c in cases]
    enc = None
    if encoder:
        from .encoder import run_encoder_window

        # the window runs on the emulator; the other side replays every region call
        enc = run_encoder_window(dut if device == "npu" else ReferenceDevice(), model, seed,
                                 other_is_dut=device == "npu")
    info: dict[str, Any] = {}
    if system:
        from ..runtime.cli import collect

        info = collect(probes)
    return SelftestResult(device, BASELINE[device], results, enc, info, started,
                          time.perf_counter() - t0)


def seeded_mel(n_mels: int, frames: int, seed: int) -> np.ndarray:
    """A log-mel-like input window (values in Whisper's normalised range)."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(-0.2, 0.5, (1, n_mels, frames)), -1.5, 1.5).astype(np.float32)
