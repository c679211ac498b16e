"""Device faults injected through the FAKE pyxrt: clear errors, or announced fallback."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xdna_ep.runtime import (
    EmulatorDevice,
    FallbackDevice,
    XdnaDeviceError,
    XrtDevice,
    fallback_events,
)

from fakes.fake_pyxrt import Faults, make_fake_pyxrt  # isort: skip
from fakes.kernels_for_tests import fake_kernels, make_npu_files, make_program  # isort: skip


@dataclass(frozen=True)
class Case:
    name: str
    phase: str                       # where it surfaces: "load" or "run"
    must_say: tuple[str, ...]        # fragments of the error message
    faults: Faults = field(default_factory=Faults)
    files: dict[str, Any] = field(default_factory=dict)


# allocation order at load: instr(d_sq)=1, weights(launch 0)=2, instr(d_da)=3,
# weights(launch 1)=4, weights(launch 2)=5; the first run allocates from 6 on.
CASES = [
    Case("missing_xclbin", "load", ("missing xclbin", "d_da", "t_deq", "t_affine"),
         files={"skip_xclbin": ("d_da",)}),
    Case("register_failure", "load", ("register_xclbin failed", "d_sq", "t_scale", "EINVAL"),
         Faults(register_error="driver rejected the xclbin (EINVAL)")),
    Case("kernel_not_found", "load", ("'MLIR_AIE' not found", "OTHER", "t_scale"),
         files={"kernels": ("OTHER",)}),
    Case("bo_alloc_failure_at_load", "load", ("cannot allocate", "argument 5", "t_quant"),
         Faults(fail_alloc_at=2)),
    Case("bo_alloc_failure_at_run", "run", ("cannot allocate", "argument 3", "t_scale"),
         Faults(fail_alloc_at=6)),
    Case("ert_error_state", "run", ("ERT_CMD_STATE_ERROR", "d_da", "t_deq", "t_affine",
                                    "MLIR_AIE"),
         Faults(run_states={2: "ERT_CMD_STATE_ERROR"})),
    Case("run_times_out", "run", ("ERT_CMD_STATE_TIMEOUT", "after 250 ms", "d_sq", "t_scale"),
         Faults(run_states={1: "ERT_CMD_STATE_TIMEOUT"})),
    Case("run_still_running_after_wait", "run", ("ERT_CMD_STATE_TIMEOUT", "still",
                                                 "t_quant"),
         Faults(run_states={3: "ERT_CMD_STATE_RUNNING"})),
]


@pytest.fixture()
def kernels():
    with fake_kernels():
        yield


def _x(m: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (m, 8)).astype(np.float32)


def _device(tmp_path: Path, case: Case):
    manifest, xdir = make_npu_files(tmp_path, **case.files)
    fake = make_fake_pyxrt(case.faults)
    return fake, XrtDevice(fake, manifest=manifest, xclbin_dirs=[xdir], timeout_ms=250)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_is_a_clear_error_with_fallback_error(case: Case, tmp_path: Path,
                                                    kernels) -> None:
    fake, dev = _device(tmp_path, case)
    with pytest.raises(XdnaDeviceError) as info:
        dev.load(make_program()).run({"x": _x()})
    msg = str(info.value)
    for frag in case.must_say:
        assert frag in msg, (frag, msg)
    assert info.value.phase in ({"load", "alloc"} if case.phase == "load" else {"run", "alloc"})
    if "TIMEOUT" in msg:
        assert any(n == "run.abort" for n, _ in fake.calls)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_falls_back_announced_with_correct_results(case: Case, tmp_path: Path,
                                                         kernels, caplog) -> None:
    fake, npu = _device(tmp_path, case)
    dev = FallbackDevice(npu)
    prog = make_program()
    want = EmulatorDevice().load(prog).run({"x": _x()})
    before = len(fallback_events())
    with caplog.at_level(logging.WARNING, logger="xdna_ep.runtime"), \
            pytest.warns(RuntimeWarning, match="falling back to the emulator"):
        loaded = dev.load(prog)
        got = loaded.run({"x": _x()})
    for k in want:
        assert got[k].tobytes() == want[k].tobytes(), k   # never the half-written output
    assert loaded.active_device == "emulator"
    assert [e.phase for e in dev.events] == [case.phase]
    assert dev.events[0].program == prog.name and dev.events[0].reason
    assert fallback_events()[before:] == dev.events
    assert any("falling back" in r.getMessage() for r in caplog.records)
    # announced once; later runs stay on the emulator quietly and correctly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = loaded.run({"x": _x(3, 9)})
    assert again["q2"].tobytes() == EmulatorDevice().load(prog).run({"x": _x(3, 9)})["q2"] \
        .tobytes()


def test_failed_program_refuses_further_npu_runs(tmp_path: Path, kernels) -> None:
    case = Case("x", "run", (), Faults(run_states={1: "ERT_CMD_STATE_ERROR"}))
    _, dev = _device(tmp_path, case)
    loaded = dev.load(make_program())
    with pytest.raises(XdnaDeviceError, match="ERT_CMD_STATE_ERROR"):
        loaded.run({"x": _x()})
    with pytest.raises(XdnaDeviceError, match="unusable after an earlier NPU failure"):
        loaded.run({"x": _x()})


def test_random_faults_never_lose_a_result(tmp_path: Path, kernels) -> None:
    prog = make_program()
    emu = EmulatorDevice().load(prog)
    fell_back = 0
    for seed in range(6):
        case = Case("r", "run", (), Faults(random_rate=0.3, random_alloc_rate=0.05, seed=seed))
        _, npu = _device(tmp_path / str(seed), case)
        dev = FallbackDevice(npu)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            loaded = dev.load(prog)
            for i in range(5):
                x = _x(2 + i, seed * 10 + i)
                got, want = loaded.run({"x": x}), emu.run({"x": x})
                for k in want:
                    assert got[k].tobytes() == want[k].tobytes()
        assert len(dev.events) <= 1
        fell_back += len(dev.events)
    assert fell_back >= 2          # the seeds do inject faults (else the test proves nothing)
