"""compute_type / provider option cpu_quantization: the nodes left on ONNX Runtime's
CPU provider run ORT dynamic INT8 when asked, FP32 otherwise, and it is said."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest

from xdna_ep.ort import InferenceSession, ProviderOptionError
from xdna_ep.ort.options import parse_options
from xdna_ep.whisper.compute_type import COMPUTE_TYPES, resolve

EP = "XDNAExecutionProvider"


@pytest.fixture
def x():
    return np.random.default_rng(7).standard_normal((256, 384)).astype(np.float32)


def _session(lm, tmp_path, **opts):
    return InferenceSession(lm.model.SerializeToString(), providers=[EP, "CPUExecutionProvider"],
                            provider_options=[{"cache_dir": str(tmp_path), **opts}, {}])


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_compiled_cpu_graph_has_int8_matmuls_only_when_asked(lm, x, tmp_path):
    """mm1 is kept on the CPU (exclude_nodes): with dynamic_int8 the cached compiled
    model runs it as MatMulInteger next to the region node, without as MatMul; the
    region's output is the same bytes either way."""
    fp = _session(lm, tmp_path, exclude_nodes="mm1")
    q = _session(lm, tmp_path, exclude_nodes="mm1", cpu_quantization="dynamic_int8")
    assert fp.xdna_start.regions == 1 and q.xdna_start.regions == 1
    assert fp.xdna_start.cache_entry != q.xdna_start.cache_entry  # the key names it
    fp_ops = _ops(onnx.load(str(fp.xdna_start.cache_entry / "model.onnx")))
    q_ops = _ops(onnx.load(str(q.xdna_start.cache_entry / "model.onnx")))
    assert "MatMul" in fp_ops and "MatMulInteger" not in fp_ops
    assert "MatMulInteger" in q_ops and "DynamicQuantizeLinear" in q_ops
    assert "MatMul" not in q_ops
    y_fp, z_fp = fp.run(None, {"x": x})
    y_q, z_q = q.run(None, {"x": x})
    np.testing.assert_array_equal(y_q, y_fp)  # the region is untouched
    ref = lm.fp32(x)["z"]
    assert not np.array_equal(z_q, z_fp)  # the CPU MatMul really ran in INT8
    assert _cos(z_q, ref) > 0.999 and _cos(z_fp, ref) > 0.99999
    assert any("ONNX Runtime dynamic INT8" in n for n in q.xdna_plan.notes)
    assert not any("dynamic INT8" in n for n in fp.xdna_plan.notes)


def test_model_left_on_cpu_runs_its_int8_twin_from_the_cache(lm, x, tmp_path):
    """Nothing placed (every MatMul excluded): ORT runs the user's model, or with
    dynamic_int8 its quantized copy, made once under cache_dir/cpu-int8."""
    with pytest.warns(Warning):
        fp = _session(lm, tmp_path, exclude_ops="MatMul")
    assert not (tmp_path / "cpu-int8").exists()
    with pytest.warns(Warning):
        q = _session(lm, tmp_path, exclude_ops="MatMul", cpu_quantization="dynamic_int8")
    files = list((tmp_path / "cpu-int8").glob("*.onnx"))
    assert len(files) == 1 and q.xdna_cpu_model == str(files[0])
    assert _ops(onnx.load(str(files[0]))).count("MatMulInteger") == 2
    stamp = files[0].stat().st_mtime_ns
    with pytest.warns(Warning):
        again = _session(lm, tmp_path, exclude_ops="MatMul", cpu_quantization="dynamic_int8")
    assert files[0].stat().st_mtime_ns == stamp  # reused, not quantized again
    ref = lm.fp32(x)
    got_fp, got_q = fp.run(None, {"x": x}), q.run(None, {"x": x})
    np.testing.assert_array_equal(again.run(None, {"x": x})[1], got_q[1])
    for name, a, b in zip(("y", "z"), got_fp, got_q, strict=True):
        np.testing.assert_allclose(a, ref[name], rtol=1e-5, atol=1e-5)
        assert not np.array_equal(a, b) and _cos(b, ref[name]) > 0.999


def test_placement_line_says_the_cpu_remainder_runs_int8(lm, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="xdna_ep"):
        _session(lm, tmp_path, exclude_nodes="mm1", cpu_quantization="dynamic_int8")
    lines = [r.getMessage() for r in caplog.records if "placement" in r.getMessage()]
    assert lines and "the CPU remainder runs ONNX Runtime dynamic INT8" in lines[-1]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xdna_ep"):
        _session(lm, tmp_path, exclude_nodes="mm1")
    lines = [r.getMessage() for r in caplog.records if "placement" in r.getMessage()]
    assert lines and "dynamic INT8" not in lines[-1]


def test_option_values_and_cache_key():
    assert "cpu_quantization" not in parse_options({}).compile_key()  # old keys unchanged
    key = parse_options({"cpu_quantization": "dynamic_int8"}).compile_key()
    assert key["cpu_quantization"] == "dynamic_int8"
    assert parse_options({"cpu_quantization": "none"}).to_json() == parse_options({}).to_json()
    with pytest.raises(ProviderOptionError, match="none, dynamic_int8"):
        parse_options({"cpu_quantization": "int4"})


@pytest.mark.parametrize("name", ["int8", "int8_float32", "int8_float16", "INT8_bfloat16"])
def test_int8_compute_types_quantize_the_cpu_part_on_every_device(name):
    for device in ("auto", "npu", "emulator", "cpu"):
        ct = resolve(name, device)
        assert ct.cpu_int8 and ct.name == "int8"


@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
def test_float_compute_types_run_the_cpu_part_fp32(name):
    for device in ("auto", "emulator", "cpu"):
        ct = resolve(name, device)
        assert not ct.cpu_int8 and ct.name == "float32"
        assert "FP32" in ct.describe()


def test_default_is_int8_except_on_the_cpu_reference_device():
    for name in ("default", "auto"):
        assert resolve(name, "emulator").cpu_int8 and resolve(name, "npu").cpu_int8
        assert resolve(name, "auto").cpu_int8
        assert not resolve(name, "cpu").cpu_int8


def test_unknown_compute_type_lists_the_choices():
    with pytest.raises(ValueError, match="unknown compute_type 'int4'") as err:
        resolve("int4", "emulator")
    assert all(c in str(err.value) for c in COMPUTE_TYPES)
    with pytest.raises(NotImplementedError, match="int16"):
        resolve("int16", "cpu")
    with pytest.raises(ValueError, match="must be a string"):
        resolve(8, "cpu")  # type: ignore[arg-type]


def test_cli_accepts_faster_whisper_spelling():
    from xdna_ep.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["transcribe", "--compute_type", "int8_float32", "a.wav"])
    assert args.compute_type == "int8_float32"
    args = parser.parse_args(["transcribe", "--compute-type", "float16", "a.wav"])
    assert args.compute_type == "float16"
    with pytest.raises(SystemExit):
        parser.parse_args(["transcribe", "--compute_type", "int4", "a.wav"])


@pytest.mark.slow
@pytest.mark.parametrize("device", ["emulator", "cpu"])
def test_whisper_int8_compute_type_on_a_real_clip(device):
    """compute_type="int8" on the bundled tiny.en: the per-token decoder (left on the
    CPU) runs its INT8 twin, and the transcript of a real clip stays close to the
    published one (within 10 WER points of the CTranslate2 FP32 transcript)."""
    import json

    from xdna_ep.whisper import WhisperModel, transcribe
    from xdna_ep.whisper.samples import bundled_sample
    from xdna_ep.whisper.wer import word_error_rate

    model = WhisperModel("tiny.en", device=device, compute_type="int8")
    assert model.compute_type == "int8"
    sess = model.loaded.sessions["decoder_with_past"]
    path = getattr(sess, "xdna_cpu_model", None) or sess._model_path
    assert "cpu-int8" in path
    assert "MatMulInteger" in _ops(onnx.load(path, load_external_data=False))
    sample = bundled_sample()
    text = transcribe(sample.audio, model).text
    meta = json.loads(sample.audio.with_suffix(".json").read_text())
    fp32_wer = word_error_rate(sample.reference, meta["tiny_en_greedy_ctranslate2"]["text"])
    assert word_error_rate(sample.reference, text) <= fp32_wer + 0.10, text
    assert WhisperModel("tiny.en", device=device, compute_type="float32").compute_type == \
        "float32"


def test_quantize_file_drops_only_ort_quantization_chatter(lm, tmp_path, monkeypatch, caplog):
    """What onnxruntime.quantization logs on the root logger (its 'consider
    pre-processing' hint) is dropped; any other root warning logged during the
    transform still reaches the user, and the root level is untouched."""
    import onnxruntime.quantization as q

    from xdna_ep.ort.cpu_quantize import quantize_file

    real = q.quantize_dynamic

    def noisy(*args, **kwargs):
        logging.warning("something else went wrong")
        return real(*args, **kwargs)

    monkeypatch.setattr(q, "quantize_dynamic", noisy)
    level = logging.getLogger().level
    with caplog.at_level(logging.WARNING):
        quantize_file(lm.model, tmp_path / "int8.onnx")
    messages = [r.getMessage() for r in caplog.records]
    assert "something else went wrong" in messages
    assert not any("pre-processing" in m for m in messages)
    assert not any("/onnxruntime/quantization/" in r.pathname for r in caplog.records)
    assert logging.getLogger().level == level
    assert "MatMulInteger" in _ops(onnx.load(str(tmp_path / "int8.onnx"))) or \
        "DynamicQuantizeMatMul" in _ops(onnx.load(str(tmp_path / "int8.onnx")))
