"""The ORT integration: providers list, a real ORT session, fallbacks, threads."""

from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_ort_support import linear_model

import xdna_ep
from xdna_ep.compile import Program
from xdna_ep.ort import (
    InferenceSession,
    ProviderOptionError,
    XDNAFallbackWarning,
    XDNAUnavailableError,
)
from xdna_ep.ort.session import XDNARegionError, split_providers
from xdna_ep.runtime import EmulatorDevice

EP = "XDNAExecutionProvider"


@pytest.fixture
def x():
    return np.random.default_rng(5).standard_normal((256, 384)).astype(np.float32)


def _programs(sess: InferenceSession) -> dict[str, Program]:
    return sess.xdna_programs


def _expected(sess: InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    """Region outputs computed by loading the session's programs on a separate
    emulator device, without ONNX Runtime."""
    out = {}
    for prog in _programs(sess).values():
        out.update(EmulatorDevice().load(prog).run({"x": x}))
    return out


def test_session_runs_regions_on_xdna(lm, x, tmp_path):
    sess = InferenceSession(lm.model.SerializeToString(), providers=[EP, "CPUExecutionProvider"],
                            provider_options=[{"cache_dir": str(tmp_path)}, {}])
    assert sess.get_providers()[0] == EP
    assert sess.xdna_start.regions == 2 and sess.xdna_start.source == "compiled"
    assert [i.name for i in sess.get_inputs()] == ["x"]
    assert [o.name for o in sess.get_outputs()] == ["y", "z"]
    y, z = sess.run(None, {"x": x})
    exp = _expected(sess, x)
    np.testing.assert_array_equal(y, np.maximum(exp["h"], 0))
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-exp["h2"])), rtol=1e-6, atol=1e-7)
    ref = lm.fp32(x)
    for got, want in ((y, ref["y"]), (z, ref["z"])):
        cos = float(np.dot(got.ravel(), want.ravel())
                    / (np.linalg.norm(got) * np.linalg.norm(want)))
        assert cos > 0.999


def test_install_makes_onnxruntime_accept_the_name(lm, x, tmp_path):
    orig_cls, orig_fn = ort.InferenceSession, ort.get_available_providers
    xdna_ep.install()
    xdna_ep.install()  # idempotent
    try:
        assert ort.get_available_providers()[0] == EP
        assert "CPUExecutionProvider" in ort.get_available_providers()
        opts = {"cache_dir": str(tmp_path)}
        by_name = ort.InferenceSession(lm.model.SerializeToString(), providers=[EP],
                                       provider_options=[opts])
        as_tuple = ort.InferenceSession(lm.model.SerializeToString(),
                                        providers=[(EP, opts), "CPUExecutionProvider"])
        for s in (by_name, as_tuple):
            assert s.get_providers() == [EP, "CPUExecutionProvider"]
            assert isinstance(s, orig_cls)
        np.testing.assert_array_equal(by_name.run(None, {"x": x})[0],
                                      as_tuple.run(None, {"x": x})[0])
        # without the name it is a plain ORT session and the options are untouched
        so = ort.SessionOptions()
        plain = ort.InferenceSession(lm.model.SerializeToString(), so,
                                     providers=["CPUExecutionProvider"])
        assert plain.get_providers() == ["CPUExecutionProvider"]
        with pytest.raises(RuntimeError):
            so.get_session_config_entry("xdna_ep.custom_ops_library")
        np.testing.assert_allclose(plain.run(None, {"x": x})[0], lm.fp32(x)["y"], rtol=1e-4,
                                   atol=1e-4)
    finally:
        xdna_ep.uninstall()
    assert ort.InferenceSession is orig_cls and ort.get_available_providers is orig_fn
    # ORT itself lists the name exactly when the plugin library is registered in
    # this process (sessions on the emulator register it)
    assert (EP in ort.get_available_providers()) == xdna_ep.plugin.is_registered()
    xdna_ep.uninstall()  # idempotent


def test_ort_api_surface(lm, x, tmp_path):
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = xdna_ep.InferenceSession(lm.model.SerializeToString(), so, providers=[EP],
                                    provider_options=[{"cache_dir": str(tmp_path)}])
    want = sess.run(["y"], {"x": x})[0]
    ov = sess.run_with_ort_values(["y"], {"x": ort.OrtValue.ortvalue_from_numpy(x)})
    np.testing.assert_array_equal(ov[0].numpy(), want)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    binding.bind_output("y")
    binding.bind_output("z")
    sess.run_with_iobinding(binding)
    np.testing.assert_array_equal(binding.copy_outputs_to_cpu()[0], want)
    prof = sess.end_profiling()
    with open(prof) as f:
        events = json.load(f)
    # region nodes are ORT nodes of XDNAExecutionProvider in ORT's own profile
    assert any(e.get("cat") == "Node" and e.get("args", {}).get("provider") == EP
               for e in events)
    assert sess.get_provider_options()[EP]["device"] == "emulator"


def test_model_as_path_and_with_external_data(lm, x, tmp_path):
    path = tmp_path / "m" / "model.onnx"
    path.parent.mkdir()
    copy = onnx.ModelProto()
    copy.CopyFrom(lm.model)  # onnx.save with external data rewrites the proto it saves
    onnx.save(copy, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert (path.parent / "weights.bin").stat().st_size > 384 * 384 * 4
    cache = str(tmp_path / "cache")
    from_path = InferenceSession(str(path), providers=[EP], provider_options=[{"cache_dir": cache}])
    from_bytes = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                                  provider_options=[{"cache_dir": cache}])
    np.testing.assert_array_equal(from_path.run(None, {"x": x})[0],
                                  from_bytes.run(None, {"x": x})[0])


def test_nothing_on_npu_warns_never_silent(tmp_path):
    tiny = linear_model()  # 64x32 matmuls: the cost model keeps them on the CPU
    for fallback in ("allow", "error"):
        # a cost decision is announced in both modes; fallback=error is about failures
        with pytest.warns(XDNAFallbackWarning, match="no node on the NPU.*launch overhead"):
            # rows "M" sized by the dims option: without a size the session would
            # compile at the first run's shape (test_shapes.py)
            sess = InferenceSession(tiny.model.SerializeToString(), providers=[EP],
                                    provider_options=[{"cache_dir": str(tmp_path),
                                                       "fallback": fallback, "dims": "M=2"}])
        assert EP not in sess.get_providers()
        assert sess.xdna_start.source == "cpu-by-cost"
        assert all(r.placement == "cpu" for r in sess.xdna_plan.regions)
        x = np.ones((2, 64), np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], tiny.fp32(x)["y"], rtol=1e-5)


def test_device_npu_without_hardware_is_an_error(lm, tmp_path):
    with pytest.raises(XDNAUnavailableError, match="device=npu"):
        InferenceSession(lm.model.SerializeToString(), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path), "device": "npu"}])


def test_report_written_on_compile_and_on_cache_hit(lm, tmp_path):
    for i in range(2):
        rep = tmp_path / f"report{i}.json"
        sess = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                                provider_options=[{"cache_dir": str(tmp_path / "c"),
                                                   "report": str(rep)}])
        assert sess.xdna_start.source == ("compiled", "cache")[i]
        doc = json.loads(rep.read_text())
        assert doc["npu_mac_share"] == pytest.approx(1.0)
        assert {n["name"] for n in doc["nodes"] if n["placement"] == "npu"} == {
            "mm0", "add0", "mm1", "add1"}


def _shape_broken_epcontext(lm, tmp_path):
    """An EPContext model whose graph input admits any row count while its
    compiled program takes 256 rows: a run with other rows fails inside the plugin
    library's region (a real run-time failure of the native route)."""
    from xdna_ep.ort.compile_cli import compile_to_epcontext

    src = tmp_path / "lm.onnx"
    onnx.save(lm.model, src)
    out = compile_to_epcontext(src, tmp_path / "lm_ctx.onnx",
                               options={"cache_dir": str(tmp_path / "cache")})
    ctx = onnx.load(out)
    ctx.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "rows"
    onnx.save(ctx, out)
    return out


def test_plugin_region_failure_raises_from_run(lm, x, tmp_path):
    sess = InferenceSession(str(_shape_broken_epcontext(lm, tmp_path)), providers=[EP],
                            provider_options=[{"device": "emulator"}])
    assert sess.xdna_start.source == "epcontext" and sess._xdna_native
    sess.run(None, {"x": x})  # 256 rows: the program's shape
    with pytest.raises(XDNARegionError, match="axis 0 is 100, expected 256"):
        sess.run(None, {"x": x[:100]})
    sess.run(None, {"x": x})  # the session still works


def test_four_threads_one_session(lm, tmp_path):
    sess = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                            provider_options=[{"cache_dir": str(tmp_path)}])
    rng = np.random.default_rng(11)
    feeds = [rng.standard_normal((256, 384)).astype(np.float32) for _ in range(4)]
    want = [sess.run(None, {"x": f}) for f in feeds]
    errors: list[BaseException] = []

    def work(i):
        try:
            for _ in range(5):
                got = sess.run(None, {"x": feeds[i]})
                for g, w in zip(got, want[i], strict=True):
                    np.testing.assert_array_equal(g, w)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_bad_option_fails_at_session_creation(lm, tmp_path):
    with pytest.raises(ProviderOptionError, match="Valid options: device"):
        InferenceSession(lm.model.SerializeToString(), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path), "devise": "npu"}])


def test_split_providers_forms():
    assert split_providers([EP, "CPUExecutionProvider"], None) == (
        {}, ["CPUExecutionProvider"], [{}])
    assert split_providers([(EP, {"device": "emulator"})], None)[0] == {"device": "emulator"}
    assert split_providers(["CPUExecutionProvider", EP], [{}, {"fallback": "error"}])[0] == {
        "fallback": "error"}
    assert split_providers(["CPUExecutionProvider"], None)[0] is None
    with pytest.raises(ValueError, match="one entry per provider"):
        split_providers([EP], [{}, {}])
    with pytest.raises(ValueError, match="twice"):
        split_providers([EP, EP], None)
    with pytest.raises(TypeError, match="list of provider names"):
        split_providers(EP, None)


def test_bad_model_input_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a valid ONNX"):
        InferenceSession(b"\x08\x07garbage", providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path)}])
    with pytest.raises(TypeError, match="path_or_bytes"):
        InferenceSession(12, providers=[EP])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Exception, match="not found"):
            InferenceSession(str(tmp_path / "missing.onnx"), providers=[EP],
                             provider_options=[{"cache_dir": str(tmp_path)}])


def test_model_path_and_set_providers(lm, x, tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(lm.model, str(path))
    sess = InferenceSession(str(path), providers=[EP],
                            provider_options=[{"cache_dir": str(tmp_path / "c")}])
    assert sess._model_path == str(path)  # what Optimum reads (save_pretrained, model dir)
    with pytest.raises(NotImplementedError, match="create a new InferenceSession"):
        sess.set_providers([EP])
    sess.set_providers(["CPUExecutionProvider"])  # the list decides: plain ORT now
    assert sess.get_providers() == ["CPUExecutionProvider"]
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], lm.fp32(x)["y"], rtol=1e-4,
                               atol=1e-4)


def test_fallback_keeps_external_data_of_a_path_model(tmp_path):
    tiny = linear_model()
    path = tmp_path / "tiny.onnx"
    copy = onnx.ModelProto()
    copy.CopyFrom(tiny.model)
    onnx.save(copy, str(path), save_as_external_data=True, location="tiny.bin",
              size_threshold=0)
    with pytest.warns(XDNAFallbackWarning):
        sess = InferenceSession(str(path), providers=[EP],
                                provider_options=[{"cache_dir": str(tmp_path / "c"),
                                                   "dims": {"M": 3}}])
    x = np.ones((3, 64), np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], tiny.fp32(x)["y"], rtol=1e-5)


def test_get_ep_devices_are_onnxruntime_devices():
    devices = xdna_ep.get_ep_devices()
    assert devices and all(isinstance(d, ort.OrtEpDevice) and d.ep_name == EP
                           for d in devices)
    emulator = [d for d in devices if d.ep_metadata.get("backend") == "emulator"]
    assert emulator and all(d.device.type == ort.OrtHardwareDeviceType.CPU for d in emulator)
    so = ort.SessionOptions()
    so.add_provider_for_devices(devices, {"device": "emulator"})  # what users pass them to
    assert so.has_providers()


def test_run_async_reports_results_and_region_failures(lm, x, tmp_path):
    """run_async on the plugin route: results equal run()'s, a region failure
    reaches the callback as its error string, and the session keeps working."""
    sess = InferenceSession(str(_shape_broken_epcontext(lm, tmp_path)), providers=[EP],
                            provider_options=[{"device": "emulator"}])
    assert sess._xdna_native
    want = sess.run(None, {"x": x})
    done = threading.Event()
    got: dict = {}

    def callback(results, data, err):
        got["results"], got["data"], got["err"] = results, data, err
        done.set()

    sess.run_async(None, {"x": x}, callback, "tag")
    assert done.wait(120)
    assert got["err"] == "" and got["data"] == "tag"
    for a, b in zip(got["results"], want, strict=True):
        np.testing.assert_array_equal(a, b)

    done.clear()
    sess.run_async(None, {"x": x[:100]}, callback, None)
    assert done.wait(120)
    assert EP in got["err"] and "expected 256" in got["err"]
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], want[0])


def test_region_the_op_cannot_call_goes_back_to_cpu(lm, x, tmp_path, monkeypatch):
    from xdna_ep.rewrite import graph

    monkeypatch.setattr(graph, "MAX_INPUTS", 0)  # no region fits the op family now
    rep = tmp_path / "r.json"
    with pytest.warns(XDNAFallbackWarning, match="no node of the model"):
        sess = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                                provider_options=[{"cache_dir": str(tmp_path),
                                                   "report": str(rep)}])
    assert EP not in sess.get_providers()
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], lm.fp32(x)["y"], rtol=1e-4,
                               atol=1e-4)
    doc = json.loads(rep.read_text())  # the report is written and says why
    assert doc["npu_mac_share"] == 0
    assert all(n["placement"] == "cpu" for n in doc["nodes"])
    assert any("kept on CPU: a region with 1 inputs" in n["reason"] for n in doc["nodes"])


def test_compile_failure_is_announced_never_silent(lm, x, tmp_path, monkeypatch):
    from xdna_ep.ort import stages

    def broken(*args, **kwargs):
        raise RuntimeError("quantizer exploded")

    monkeypatch.setattr(stages, "compile_regions", broken)
    with pytest.warns(XDNAFallbackWarning, match="compiling failed.*quantizer exploded"):
        sess = InferenceSession(lm.model.SerializeToString(), providers=[EP],
                                provider_options=[{"cache_dir": str(tmp_path)}])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.xdna_start.source == "cpu-fallback"
    with pytest.raises(XDNAUnavailableError, match="quantizer exploded"):
        InferenceSession(lm.model.SerializeToString(), providers=[EP],
                         provider_options=[{"cache_dir": str(tmp_path), "fallback": "error"}])


def test_calibration_sized_session_runs_other_shapes_without_recompiling(tmp_path, caplog):
    """Calibration arrays size placement, but a session is not pinned to their shape:
    a run at another row count uses the same compiled model (no compile per shape,
    which would be once per token for a Whisper decoder), with the right numbers."""
    import logging

    lm = linear_model(rows="rows", k=384, n=384)
    path = tmp_path / "m.onnx"
    onnx.save(lm.model, str(path))
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "cal.npz", x=rng.standard_normal((256, 384)).astype(np.float32))
    sess = xdna_ep.InferenceSession(str(path), providers=["XDNAExecutionProvider"],
                                    provider_options=[{"device": "emulator",
                                                       "cache_dir": str(tmp_path / "c"),
                                                       "calibration": str(tmp_path / "cal.npz")}])
    assert sess.xdna_plan.dims_source == {"rows": "calibration"}
    assert sess.xdna_plan.npu_mac_share > 0.9
    with caplog.at_level(logging.INFO, logger="xdna_ep"):
        for rows in (256, 100, 7):
            x = rng.standard_normal((rows, 384)).astype(np.float32)
            got = sess.run(None, {"x": x})[0]
            want = lm.fp32(x)["y"]
            assert got.shape == want.shape
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.05
    assert "compiling for input shape" not in caplog.text
