"""The plugin library as ONNX Runtime sees it: registration, devices, provider
options, device-selection policy, and a raw (uncompiled) model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

import xdna_ep

EP = "XDNAExecutionProvider"


def _xdna_devices() -> list:
    return [d for d in ort.get_ep_devices() if d.ep_name == EP]


def _raw_model(tmp_path: Path) -> Path:
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [2, 3])],
                          [helper.make_tensor_value_info("y", 1, [2, 3])])
    path = tmp_path / "raw.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_library_path_is_the_built_plugin():
    path = Path(xdna_ep.get_library_path())
    assert path.name == "libxdna_ep_provider.so" and path.is_file()
    assert path.parent == Path(xdna_ep.__file__).parent


def test_register_is_idempotent():
    first = xdna_ep.register()
    second = xdna_ep.register()
    assert first == second == xdna_ep.get_library_path()
    assert len(_xdna_devices()) == 1


def test_emulator_device_on_the_host_cpu():
    xdna_ep.register()
    (dev,) = _xdna_devices()
    assert dev.ep_vendor == "AMD"
    assert dev.device.type == ort.OrtHardwareDeviceType.CPU  # never presented as an NPU
    assert dev.ep_metadata["backend"] == "emulator"
    assert dev.ep_metadata["library_path"] == xdna_ep.get_library_path()
    assert dev.ep_options == {}  # no defaults: a selection policy must not switch it on


def _session(model: Path, options: dict[str, str]) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_provider_for_devices(_xdna_devices(), options)
    return ort.InferenceSession(str(model), sess_options=so)


def test_documented_options_are_accepted(tmp_path):
    xdna_ep.register()
    sess = _session(_raw_model(tmp_path), {"device": "emulator", "num_threads": "1",
                                           "fallback": "allow", "quantization": "dynamic",
                                           "cache_dir": str(tmp_path)})
    x = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], np.maximum(x, 0))


@pytest.mark.parametrize("options, match", [
    ({"colour": "blue"}, "unknown provider option 'colour'"),
    ({"device": "gpu"}, "device='gpu' is not one of"),
    ({"device": "npu"}, "device=npu, but no NPU device was selected: this machine has no NPU entry"),
    ({"num_threads": "0"}, "num_threads='0' must be an integer >= 1"),
    ({"fallback": "maybe"}, "fallback='maybe'"),
])
def test_bad_options_are_clear_errors(tmp_path, options, match):
    xdna_ep.register()
    with pytest.raises(Exception, match=match):
        _session(_raw_model(tmp_path), options)


def test_raw_model_runs_on_cpu_with_one_line_saying_how_to_compile(tmp_path, capfd):
    xdna_ep.register()
    so = ort.SessionOptions()
    so.log_severity_level = 2  # warnings
    so.add_provider_for_devices(_xdna_devices(), {"device": "emulator"})
    sess = ort.InferenceSession(str(_raw_model(tmp_path)), sess_options=so)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x)
    err = capfd.readouterr().err
    assert err.count("xdna-ep compile MODEL.onnx -o MODEL_ctx.onnx") == 1
    assert "runs on CPUExecutionProvider" in err


def test_raw_model_with_fallback_error_is_refused(tmp_path):
    xdna_ep.register()
    with pytest.raises(Exception, match="no XDNA EPContext nodes.*fallback=error"):
        _session(_raw_model(tmp_path), {"device": "emulator", "fallback": "error"})
    with pytest.raises(Exception, match="no device was named.*device=emulator"):
        _session(_raw_model(tmp_path), {"fallback": "error"})


def test_prefer_npu_does_not_run_on_the_emulator(tmp_path, capfd):
    """ONNX Runtime's PREFER_NPU policy falls back to the first CPU-hosted EP, which is
    our emulator entry; without device=emulator it claims nothing and says why."""
    from plugin_support import one_stage_program, write_program_model

    from xdna_ep.compile.program import TensorSpec as T

    xdna_ep.register()
    so = ort.SessionOptions()
    so.log_severity_level = 2
    so.set_provider_selection_policy(ort.OrtExecutionProviderDevicePolicy.PREFER_NPU)
    sess = ort.InferenceSession(str(_raw_model(tmp_path)), sess_options=so)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x)
    assert "emulator, which is not an NPU, so it claims no node" in capfd.readouterr().err
    prog = one_stage_program("q", "quantize", [T("x", "float32", (2, 3))],
                             [T("q", "int8", (2, 3))], attrs={"out_scale": 0.1})
    ctx = write_program_model(prog, tmp_path / "ctx.onnx")
    with pytest.raises(Exception, match="EPContext"):  # nothing on the CPU can run it
        ort.InferenceSession(str(ctx), sess_options=so)
