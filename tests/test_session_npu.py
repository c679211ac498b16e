"""The providers-list route with device=npu: regions run on the plugin library's
native NPU backend, here built against the FAKE XRT library (tests/fakes/fake_xrt,
NOT XRT; nothing here ran on an NPU). The session keeps its fallback semantics:
device=auto without an NPU runs the emulator announced, a failing NPU region with
fallback=allow runs on the plugin's emulator announced (warning, notes, plan), and
with fallback=error the run raises XDNARegionError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from npu_support import FakeNpu

from xdna_ep.ort import InferenceSession
from xdna_ep.ort.errors import XDNAFallbackWarning, XDNARegionError, XDNAUnavailableError

from fakes.fake_hardware import Faults  # isort: skip

EP = "XDNAExecutionProvider"


@pytest.fixture
def x():
    return np.random.default_rng(5).standard_normal((256, 384)).astype(np.float32)


def _session(lm, tmp_path, **opts) -> InferenceSession:
    return InferenceSession(lm.model.SerializeToString(), providers=[EP],
                            provider_options=[{"cache_dir": str(tmp_path / "cache"), **opts}])


def _emulator(lm, tmp_path, x) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _session(lm, tmp_path, device="emulator").run(None, {"x": x})


def test_device_npu_runs_on_the_plugins_npu_with_the_emulators_bytes(
        fake_npu: FakeNpu, lm, x, tmp_path) -> None:
    want = _emulator(lm, tmp_path, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", XDNAFallbackWarning)
        sess = _session(lm, tmp_path, device="npu", fallback="error")
        got = sess.run(None, {"x": x})
    assert sess._xdna_native and sess.xdna_start.device == "npu"
    assert sess.get_providers()[0] == EP
    for a, b in zip(got, want, strict=True):
        assert a.tobytes() == b.tobytes()
    assert len(fake_npu.calls("device.completed")) >= 2   # both regions ran on the FAKE NPU


def test_auto_without_an_npu_runs_the_emulator_announced(fake_npu: FakeNpu, lm, x, tmp_path,
                                                         caplog) -> None:
    from xdna_ep.ort import plugin_route

    fake_npu.reset(Faults(open_error="no amdxdna device node"))
    plugin_route._AUTO_TOLD.clear()
    with caplog.at_level("WARNING", logger="xdna_ep"):
        sess = _session(lm, tmp_path, device="auto")
    assert sess.xdna_start.device == "emulator"
    assert "no amdxdna device node" in sess.xdna_start.device_reason
    told = [r for r in caplog.records if "device=auto" in r.getMessage()]
    assert len(told) == 1 and "no amdxdna device node" in told[0].getMessage()
    got = sess.run(None, {"x": x})
    for a, b in zip(got, _emulator(lm, tmp_path, x), strict=True):
        assert a.tobytes() == b.tobytes()
    assert not fake_npu.calls("kernel.call")
    with pytest.raises(XDNAUnavailableError, match="device=npu.*no amdxdna device node"):
        _session(lm, tmp_path, device="npu")


def test_a_failing_npu_region_falls_back_announced(fake_npu: FakeNpu, lm, x, tmp_path) -> None:
    want = _emulator(lm, tmp_path, x)
    fake_npu.reset(Faults(run_states={1: "ERT_CMD_STATE_ERROR"}))
    sess = _session(lm, tmp_path, device="npu")
    with pytest.warns(XDNAFallbackWarning, match="failed on the NPU"):
        got = sess.run(None, {"x": x})
    for a, b in zip(got, want, strict=True):
        assert a.tobytes() == b.tobytes()
    assert any("failed on the NPU" in n for n in sess.xdna_start.notes)
    assert any("failed on the NPU" in f for f in sess.xdna_plan.fallbacks)
    with warnings.catch_warnings():  # announced once: the region stays on the emulator
        warnings.simplefilter("error", XDNAFallbackWarning)
        again = sess.run(None, {"x": x})
    assert again[0].tobytes() == want[0].tobytes()


def test_a_failing_npu_region_with_fallback_error_raises(fake_npu: FakeNpu, lm, x,
                                                         tmp_path) -> None:
    fake_npu.reset(Faults(run_states={1: "ERT_CMD_STATE_ERROR"}))
    sess = _session(lm, tmp_path, device="npu", fallback="error")
    with pytest.raises(XDNARegionError, match="fallback=error"):
        sess.run(None, {"x": x})


def test_a_region_the_npu_cannot_load_falls_back_announced(fake_npu: FakeNpu, lm, x,
                                                           tmp_path) -> None:
    want = _emulator(lm, tmp_path, x)
    fake_npu.reset(Faults(register_error="driver rejected the xclbin (EINVAL)"))
    with pytest.warns(XDNAFallbackWarning, match="cannot run on the NPU"):
        sess = _session(lm, tmp_path, device="npu")
    got = sess.run(None, {"x": x})
    for a, b in zip(got, want, strict=True):
        assert a.tobytes() == b.tobytes()
    with pytest.raises(XDNAUnavailableError, match="cannot run on the NPU.*EINVAL"):
        _session(lm, tmp_path, device="npu", fallback="error")


def test_symbolic_batch_runs_its_compiled_shape_on_the_npu_and_others_announced(
        fake_npu: FakeNpu, tmp_path) -> None:
    """An encoder layer with its batch symbolic, sized by the calibration arrays
    (batch 1), as the Whisper encoder compiles: batch 1 runs on the FAKE NPU, batch 2
    on the plugin's emulator with the emulator's bytes, announced by the session."""
    import onnx
    from synthetic.graphs import encoder_layer

    path = tmp_path / "m.onnx"
    onnx.save(encoder_layer(d=256, heads=4, ffn=1024, t=200, front_end=True, mels=80,
                            symbolic=True), str(path))
    x = np.random.default_rng(6).standard_normal((1, 80, 400)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", input_features=x * 0.9)
    opts = {"cache_dir": str(tmp_path / "cache"), "quantization": "static",
            "calibration": str(tmp_path / "calib.npz")}
    two = np.concatenate([x, x[:, :, ::-1].copy()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emu = InferenceSession(str(path), providers=[EP],
                               provider_options=[{**opts, "device": "emulator"}])
        want1, want2 = emu.run(None, {"input_features": x}), emu.run(None, {"input_features": two})
    with warnings.catch_warnings():
        warnings.simplefilter("error", XDNAFallbackWarning)
        sess = InferenceSession(str(path), providers=[EP],
                                provider_options=[{**opts, "device": "npu"}])
        got1 = sess.run(None, {"input_features": x})
    assert sess._xdna_native and sess.xdna_start.device == "npu"
    on_npu = len(fake_npu.calls("kernel.call"))
    assert on_npu > 0
    with pytest.warns(XDNAFallbackWarning, match=r"compiled for the NPU at shape "
                                                 r"input_features\[1,80,400\]; a run of shape "
                                                 r"input_features\[2,80,400\]"):
        got2 = sess.run(None, {"input_features": two})
    assert len(fake_npu.calls("kernel.call")) == on_npu
    for got, want in ((got1, want1), (got2, want2)):
        assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))
