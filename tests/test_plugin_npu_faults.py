"""Faults on the plugin's NPU path (FAKE XRT library, NOT XRT): clear errors with
fallback=error, the emulator's numbers and one warning with fallback=allow, a
program broken by a failed command never submitted again, and the plugin without
its backend library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from npu_support import FakeNpu, env_without_backend, npu_session
from plugin_support import one_stage_program, write_program_model
from test_plugin_stages import CASES

from xdna_ep.runtime import EmulatorDevice
from xdna_ep.runtime.xclbins import design_entries, load_manifest

from fakes.fake_hardware import Faults  # isort: skip

FALLBACK_LINE = "failed on the NPU and runs on the host emulator from now on"


@pytest.fixture()
def gelu(tmp_path: Path):
    spec, feeds = CASES["gelu_static_tanh_offset"]
    prog = one_stage_program("g", **spec)
    want = EmulatorDevice().load(prog).run(feeds)["y"]
    return write_program_model(prog, tmp_path / "g.onnx"), feeds, want


def test_no_device_is_an_error_for_npu_and_the_emulator_for_auto(fake_npu: FakeNpu, gelu,
                                                                 capfd) -> None:
    model, feeds, want = gelu
    fake_npu.reset(Faults(open_error="no amdxdna device node"))
    with pytest.raises(Exception, match="device=npu, but the NPU is unavailable: cannot open "
                                        "NPU device 0 through XRT: FAKE: no amdxdna device node"):
        npu_session(model)
    capfd.readouterr()
    sess = npu_session(model, {"device": "auto"})
    (got,) = sess.run(None, feeds)
    assert got.tobytes() == want.tobytes()
    err = capfd.readouterr().err
    assert err.count("device=auto: no NPU (cannot open NPU device 0") == 1
    assert not fake_npu.calls("kernel.call")


def test_auto_takes_the_npu_when_it_opens(fake_npu: FakeNpu, gelu) -> None:
    model, feeds, want = gelu
    (got,) = npu_session(model, {"device": "auto"}).run(None, feeds)
    assert got.tobytes() == want.tobytes()
    assert len(fake_npu.calls("device.completed")) == 1


def test_emulator_device_never_opens_the_npu(fake_npu: FakeNpu, gelu) -> None:
    model, feeds, want = gelu
    (got,) = npu_session(model, {"device": "emulator"}).run(None, feeds)
    assert got.tobytes() == want.tobytes()
    assert not fake_npu.hardware.calls


def test_missing_xclbin(fake_npu: FakeNpu, gelu, capfd) -> None:
    model, feeds, want = gelu
    (fake_npu.xclbin_dir / design_entries(load_manifest())["gelu"].xclbin).unlink()
    with pytest.raises(Exception, match=r"cannot run on the NPU \(provider option fallback=error\)"
                                        r".*program 'g', launch 0 \(design 'gelu', kernels "
                                        r"\[gelu\]\): missing xclbin for design 'gelu'.*"
                                        r"XDNA_EP_XCLBIN_DIR"):
        npu_session(model, {"fallback": "error"})
    capfd.readouterr()
    (got,) = npu_session(model).run(None, feeds)   # fallback=allow (the default)
    assert got.tobytes() == want.tobytes()
    err = capfd.readouterr().err
    assert err.count("runs on the host emulator, not the NPU (fallback=allow)") == 1
    assert "missing xclbin for design 'gelu'" in err


def test_weights_allocation_failure_at_load(fake_npu: FakeNpu, gelu, capfd) -> None:
    model, feeds, want = gelu
    fake_npu.reset(Faults(fail_alloc_at=2))        # 1: instruction BO, 2: WEIGHTS
    with pytest.raises(Exception, match=r"cannot allocate a \d+-byte buffer for kernel argument 5"
                                        ".*injected allocation failure"):
        npu_session(model, {"fallback": "error"})
    fake_npu.reset(Faults(fail_alloc_at=2))
    capfd.readouterr()
    (got,) = npu_session(model).run(None, feeds)
    assert got.tobytes() == want.tobytes()
    assert capfd.readouterr().err.count("not the NPU (fallback=allow)") == 1


@pytest.mark.parametrize("fault, match", [
    (Faults(fail_alloc_at=3), r"cannot allocate a 4096-byte buffer for kernel argument 3"),
    (Faults(run_states={1: "ERT_CMD_STATE_ERROR"}), r"launch 0 of program 'g' \(design 'gelu', "
     r"kernels \[gelu\], xrt kernel 'MLIR_AIE'\) ended in ERT_CMD_STATE_ERROR"),
    (Faults(run_states={1: "ERT_CMD_STATE_TIMEOUT"}), r"ended in ERT_CMD_STATE_TIMEOUT after "
     r"10000 ms"),
])
def test_a_failed_run_with_fallback_error_is_a_clear_error(fake_npu: FakeNpu, gelu, fault,
                                                          match) -> None:
    model, feeds, _ = gelu
    fake_npu.reset(fault)
    sess = npu_session(model, {"fallback": "error"})
    with pytest.raises(Exception, match=r"region xdna_region_0 failed: NPU run failed \(provider "
                                        r"option fallback=error\): .*" + match):
        sess.run(None, feeds)
    submitted = len(fake_npu.calls("kernel.call"))
    if fault.run_states:   # a failed command: the program is broken, never re-submitted
        with pytest.raises(Exception, match="unusable after an earlier NPU failure"):
            sess.run(None, feeds)
        assert len(fake_npu.calls("kernel.call")) == submitted == 1
    if "TIMEOUT" in str(fault.run_states):
        assert len(fake_npu.calls("run.abort")) == 1
    else:
        assert not fake_npu.calls("run.abort")


@pytest.mark.parametrize("fault", [
    Faults(fail_alloc_at=3),
    Faults(run_states={1: "ERT_CMD_STATE_ERROR"}),
    Faults(run_states={1: "ERT_CMD_STATE_TIMEOUT"}),
])
def test_a_failed_run_with_fallback_allow_stays_on_the_emulator(fake_npu: FakeNpu, gelu, fault,
                                                                capfd) -> None:
    model, feeds, want = gelu
    fake_npu.reset(fault)
    sess = npu_session(model)
    capfd.readouterr()
    for _ in range(3):
        (got,) = sess.run(None, feeds)
        assert got.tobytes() == want.tobytes()
    err = capfd.readouterr().err
    assert err.count(FALLBACK_LINE) == 1
    assert len(fake_npu.calls("kernel.call")) <= 1      # nothing after the failure
    assert not fake_npu.calls("device.completed")


def test_the_library_counts_npu_fallbacks_for_tools(fake_npu: FakeNpu, gelu) -> None:
    """XdnaEpNpuFallbacks (ort/taps.npu_fallbacks): each region moved from the NPU
    to the emulator counts once, with the latest reason."""
    from xdna_ep.ort.taps import npu_fallbacks

    model, feeds, want = gelu
    before, _ = npu_fallbacks()
    fake_npu.reset(Faults(run_states={1: "ERT_CMD_STATE_ERROR"}))
    sess = npu_session(model)
    for _ in range(2):
        (got,) = sess.run(None, feeds)
        assert got.tobytes() == want.tobytes()
    count, reason = npu_fallbacks()
    assert count == before + 1
    assert "ERT_CMD_STATE_ERROR" in reason


def test_symbolic_program_has_no_image(fake_npu: FakeNpu, tmp_path: Path, capfd) -> None:
    spec, feeds = CASES["quantize_static"]       # x: ("M", 8)
    prog = one_stage_program("q", **spec)
    model = write_program_model(prog, tmp_path / "q.onnx")
    with pytest.raises(Exception, match=r"has no NPU image: symbolic input dims x\[0\]=M.*"
                                        r"compile with concrete dims \(xdna-ep compile --dims"):
        npu_session(model, {"fallback": "error"})
    capfd.readouterr()
    (got,) = npu_session(model).run(None, feeds)
    assert got.tobytes() == EmulatorDevice().load(prog).run(feeds)["q"].tobytes()
    assert capfd.readouterr().err.count("--dims") == 1
    assert not fake_npu.calls("kernel.call")


SHAPE_LINE = "compiled for the NPU at shape x[1,8]; this run's shape x[2,8] runs on the host emulator"


def test_symbolic_program_compiled_with_sizes_runs_that_shape_on_the_npu(
        fake_npu: FakeNpu, tmp_path: Path, capfd) -> None:
    """M=1 known at compile time: batch 1 runs on the FAKE NPU; batch 2 on the
    emulator for that call (one warning), and batch 1 stays on the FAKE NPU."""
    spec, feeds = CASES["quantize_static"]       # x: ("M", 8)
    prog = one_stage_program("q", **spec)
    model = write_program_model(prog, tmp_path / "q.onnx", dims={"M": 1})
    emu = EmulatorDevice().load(prog)
    one, two = {"x": feeds["x"][:1]}, {"x": feeds["x"][1:3]}
    sess = npu_session(model, {"fallback": "allow"})
    capfd.readouterr()
    (got,) = sess.run(None, one)
    assert got.tobytes() == emu.run(one)["q"].tobytes()
    assert len(fake_npu.calls("kernel.call")) == 1
    for _ in range(2):
        (got,) = sess.run(None, two)
        assert got.shape == (2, 8) and got.tobytes() == emu.run(two)["q"].tobytes()
    assert len(fake_npu.calls("kernel.call")) == 1
    assert capfd.readouterr().err.count(SHAPE_LINE) == 1
    (got,) = sess.run(None, one)
    assert got.tobytes() == emu.run(one)["q"].tobytes()
    assert len(fake_npu.calls("kernel.call")) == 2


def test_other_shape_with_fallback_error_names_both_shapes(fake_npu: FakeNpu,
                                                           tmp_path: Path) -> None:
    spec, feeds = CASES["quantize_static"]
    model = write_program_model(one_stage_program("q", **spec), tmp_path / "q.onnx",
                                dims={"M": 1})
    sess = npu_session(model, {"fallback": "error"})
    with pytest.raises(Exception, match=r"compiled for the NPU at shape x\[1,8\]; this run's "
                                        r"shape x\[2,8\] has no NPU image \(provider option "
                                        r"fallback=error\)"):
        sess.run(None, {"x": feeds["x"][:2]})
    assert not fake_npu.calls("kernel.call")


def test_plugin_without_the_backend_library(tmp_path: Path, monkeypatch, gelu, capfd) -> None:
    model, feeds, want = gelu
    env_without_backend(monkeypatch, tmp_path)
    with pytest.raises(Exception, match=r"device=npu, but the NPU is unavailable: the NPU backend "
                                        r"library .*libxdna_ep_npu.so cannot be loaded"):
        npu_session(model)
    capfd.readouterr()
    (got,) = npu_session(model, {"device": "auto"}).run(None, feeds)
    assert got.tobytes() == want.tobytes()
    assert capfd.readouterr().err.count("device=auto: no NPU (the NPU backend library") == 1


def test_backend_library_of_another_kind_is_refused(tmp_path: Path, monkeypatch, gelu) -> None:
    """A library that is not the backend (no xdna_npu_* symbols) is refused by name."""
    import xdna_ep

    model, _, _ = gelu
    monkeypatch.setenv("XDNA_EP_NPU_LIBRARY", xdna_ep.get_library_path())
    with pytest.raises(Exception, match="has no symbol xdna_npu_abi_version"):
        npu_session(model)


def test_npu_outputs_do_not_depend_on_a_stale_out_buffer(fake_npu: FakeNpu, gelu) -> None:
    """Runs with different inputs on the same BOs give each its own answer."""
    model, feeds, _ = gelu
    sess = npu_session(model, {"fallback": "error"})
    emu = EmulatorDevice().load(one_stage_program("g", **CASES["gelu_static_tanh_offset"][0]))
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.integers(-127, 128, feeds["x"].shape, dtype=np.int8)
        (got,) = sess.run(None, {"x": x})
        assert got.tobytes() == emu.run({"x": x})["y"].tobytes()


def test_command_timeout_comes_from_the_environment(fake_npu: FakeNpu, gelu,
                                                     monkeypatch) -> None:
    """$XDNA_EP_NPU_TIMEOUT_MS sets the plugin's command timeout (read when the NPU
    opens); a bad value keeps the NPU closed and says why, never the default."""
    model, feeds, want = gelu
    monkeypatch.setenv("XDNA_EP_NPU_TIMEOUT_MS", "2500")
    (got,) = npu_session(model).run(None, feeds)
    assert got.tobytes() == want.tobytes()
    waits = fake_npu.calls("run.wait")
    assert waits and all(w["timeout_ms"] == 2500 for w in waits)
    monkeypatch.setenv("XDNA_EP_NPU_TIMEOUT_MS", "ten seconds")
    with pytest.raises(Exception, match=r"NPU is unavailable: \$XDNA_EP_NPU_TIMEOUT_MS='ten "
                                        r"seconds' is not a command timeout"):
        npu_session(model)
