"""The real Whisper tiny.en encoder compiled to an EPContext model and run by the
plugin library (C++ kernels, no Python on the run path) equals the Python
emulator session byte for byte."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import soundfile as sf
from plugin_support import EP, plugin_session

import xdna_ep
from xdna_ep.ort.compile_cli import compile_to_epcontext


@pytest.mark.slow
def test_tiny_en_encoder_epcontext_equals_python_session(tmp_path):
    from xdna_ep.models import ensure_onnx_model
    from xdna_ep.whisper.features import log_mel_spectrogram
    from xdna_ep.whisper.samples import list_samples

    encoder = ensure_onnx_model() / "encoder_model.onnx"
    audio, sr = sf.read(list_samples()[0].audio, dtype="float32")
    assert sr == 16000
    audio = np.pad(audio, (0, 16000 * 30 - len(audio)))
    features = log_mel_spectrogram(audio)[None].astype(np.float32)

    opts = {"cache_dir": str(tmp_path / "cache")}
    ctx = compile_to_epcontext(encoder, tmp_path / "encoder_ctx.onnx", options=opts)
    model = onnx.load(str(ctx))
    assert sum(n.op_type == "EPContext" for n in model.graph.node) >= 1

    sess = plugin_session(ctx)
    assert sess.get_providers()[0] == EP
    (got,) = sess.run(None, {"input_features": features})
    ref = xdna_ep.InferenceSession(str(encoder), providers=[EP],
                                   provider_options=[{**opts, "device": "emulator"}])
    (want,) = ref.run(None, {"input_features": features})
    assert got.shape == want.shape == (1, 1500, 384)
    assert got.tobytes() == want.tobytes()
    # stage storage is recycled across calls (runner.cc StoragePool, not cleared):
    # another clip, then the first again, give the same bytes as fresh calls
    audio2, _ = sf.read(list_samples()[1].audio, dtype="float32")
    features2 = log_mel_spectrogram(np.pad(audio2, (0, 16000 * 30 - len(audio2))))[None]
    features2 = features2.astype(np.float32)
    (got2,) = sess.run(None, {"input_features": features2})
    (again,) = sess.run(None, {"input_features": features})
    assert again.tobytes() == got.tobytes() and got2.tobytes() != got.tobytes()
    fresh = plugin_session(ctx)
    assert fresh.run(None, {"input_features": features2})[0].tobytes() == got2.tobytes()


@pytest.mark.slow
def test_tiny_en_encoder_session_compile_has_an_npu_image_for_every_launch(tmp_path):
    """xdna_ep.InferenceSession compiles the encoder with its batch symbolic (sized at
    compile time, not pinned): every launch still gets the NPU image of that size."""
    from xdna_ep.models import ensure_onnx_model
    from xdna_ep.ort.npu_image import launch_plans, symbolic_dims

    encoder = ensure_onnx_model() / "encoder_model.onnx"
    sess = xdna_ep.InferenceSession(str(encoder), providers=[EP], provider_options=[
        {"cache_dir": str(tmp_path / "cache"), "device": "emulator"}])
    dims = sess.xdna_plan.dims
    assert dims and sess.xdna_programs
    assert any(symbolic_dims(p) for p in sess.xdna_programs.values())
    plans = [pl for p in sess.xdna_programs.values() for pl in launch_plans(p, dims=dims)]
    assert len(plans) > 10
    assert [pl.why for pl in plans if pl.image is None] == []
