"""The README scenario on the real Whisper tiny.en export: onnxruntime with
providers=["XDNAExecutionProvider", "CPUExecutionProvider"] runs the encoder and the
merged decoder (regions inside its If branch), writes a report, and the second
start is a cache hit."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import soundfile as sf

import xdna_ep
from xdna_ep.rewrite import DOMAIN, iter_graphs

EP = "XDNAExecutionProvider"
PROVIDERS = [EP, "CPUExecutionProvider"]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def whisper_dir():
    from xdna_ep.models import ensure_onnx_model

    return ensure_onnx_model()


@pytest.fixture(scope="module")
def features():
    from xdna_ep.whisper.features import log_mel_spectrogram
    from xdna_ep.whisper.samples import list_samples

    audio, sr = sf.read(list_samples()[0].audio, dtype="float32")
    assert sr == 16000
    audio = np.pad(audio, (0, 16000 * 30 - len(audio)))
    return log_mel_spectrogram(audio)[None].astype(np.float32)


@pytest.mark.slow
def test_whisper_encoder_and_merged_decoder(whisper_dir, features, tmp_path):
    opts = {"cache_dir": str(tmp_path / "cache"), "report": str(tmp_path / "enc.json")}
    xdna_ep.install()
    try:
        enc = ort.InferenceSession(str(whisper_dir / "encoder_model.onnx"),
                                   providers=PROVIDERS, provider_options=[opts, {}])
        dec = ort.InferenceSession(str(whisper_dir / "decoder_model_merged.onnx"),
                                   providers=PROVIDERS,
                                   provider_options=[{"cache_dir": opts["cache_dir"]}, {}])
        again = ort.InferenceSession(str(whisper_dir / "encoder_model.onnx"),
                                     providers=PROVIDERS, provider_options=[opts, {}])
    finally:
        xdna_ep.uninstall()
    assert enc.get_providers() == PROVIDERS and dec.get_providers() == PROVIDERS
    assert enc.xdna_start.source == "compiled" and again.xdna_start.source == "cache"
    report = json.loads((tmp_path / "enc.json").read_text())
    assert report["npu_mac_share"] > 0.9

    rewritten = onnx.load(str(dec.xdna_start.cache_entry / "model.onnx"))
    onnx.checker.check_model(rewritten)
    in_branches = sum(1 for path, g in iter_graphs(rewritten.graph) if path
                      for n in g.node if n.domain == DOMAIN)
    assert in_branches == dec.xdna_start.regions > 0

    cpu_enc = ort.InferenceSession(str(whisper_dir / "encoder_model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (h,) = enc.run(None, {"input_features": features})
    (h_ref,) = cpu_enc.run(None, {"input_features": features})
    assert h.shape == h_ref.shape and np.isfinite(h).all()
    # INT8 accuracy against FP32 is the compile stage's target (tests/test_compile_*);
    # here: the output is the quantized model's, not a silent FP32 fallback
    assert not np.array_equal(h, h_ref) and _cos(h, h_ref) > 0
    np.testing.assert_array_equal(again.run(None, {"input_features": features})[0], h)

    # first decoder step (no cache branch) on the FP32 encoder states: same argmax token
    cpu_dec = ort.InferenceSession(str(whisper_dir / "decoder_model_merged.onnx"),
                                   providers=["CPUExecutionProvider"])
    feeds = {"input_ids": np.array([[50257, 50362]], np.int64),
             "encoder_hidden_states": h_ref, "use_cache_branch": np.array([False])}
    for i in cpu_dec.get_inputs():
        if i.name.startswith("past_key_values"):
            feeds[i.name] = np.zeros((1, 6, 0, 64), np.float32)
    logits = dec.run(["logits"], feeds)[0]
    logits_ref = cpu_dec.run(["logits"], feeds)[0]
    assert logits.shape == logits_ref.shape
    assert logits[0, -1].argmax() == logits_ref[0, -1].argmax()
