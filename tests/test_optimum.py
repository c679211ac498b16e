"""Optimum: ORTModelForSpeechSeq2Seq with provider="XDNAExecutionProvider"."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xdna_ep
from xdna_ep.ort.session import InferenceSession as XDNASession

EP = "XDNAExecutionProvider"


def test_install_rebinds_names_optimum_imported_before():
    import onnxruntime as ort
    from optimum.onnxruntime import modeling_seq2seq

    original = ort.InferenceSession
    assert modeling_seq2seq.InferenceSession is original
    xdna_ep.install()
    try:
        assert modeling_seq2seq.InferenceSession is XDNASession
    finally:
        xdna_ep.uninstall()
    assert modeling_seq2seq.InferenceSession is original


@pytest.fixture(scope="module")
def whisper_dir():
    from xdna_ep.models import ensure_onnx_model

    return ensure_onnx_model()


@pytest.mark.slow
def test_optimum_model_runs_on_xdna(whisper_dir, tmp_path_factory):
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    from transformers import AutoFeatureExtractor

    cache = str(tmp_path_factory.mktemp("xdna-cache"))
    xdna_ep.install()
    try:
        model = ORTModelForSpeechSeq2Seq.from_pretrained(
            whisper_dir, provider=EP, provider_options={"cache_dir": cache},
            local_files_only=True)
    finally:
        xdna_ep.uninstall()
    assert model.providers[0] == EP
    enc = model.encoder.session
    assert isinstance(enc, XDNASession) and enc.xdna_start.regions > 0
    assert model.decoder.session.get_providers()[0] == EP
    # the encoder output through Optimum is the XDNA session's output
    fe = AutoFeatureExtractor.from_pretrained(whisper_dir, local_files_only=True)
    t = np.arange(16000 * 2) / 16000
    audio = (0.05 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    feats = fe(audio, sampling_rate=16000, return_tensors="np").input_features
    direct = enc.run(None, {"input_features": feats})[0]
    import torch

    via = model.encoder(input_features=torch.from_numpy(feats),
                        attention_mask=None).last_hidden_state.numpy()
    np.testing.assert_array_equal(via, direct)


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


@pytest.mark.slow
def test_optimum_pipeline_transcribes_real_speech(whisper_dir, tmp_path_factory):
    """ORTModelForSpeechSeq2Seq(provider=XDNA) + transformers' ASR pipeline on a real
    LibriVox clip: the same words as the published transcript, and the same text as
    the same pipeline on the CPU provider (FP32)."""
    import soundfile as sf
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    from transformers import AutoFeatureExtractor, AutoTokenizer, pipeline

    from xdna_ep.whisper.samples import list_samples

    sample = next(s for s in list_samples() if s.audio.stem.endswith("0880"))
    audio, sr = sf.read(sample.audio, dtype="float32")
    tok = AutoTokenizer.from_pretrained(whisper_dir, local_files_only=True)
    fe = AutoFeatureExtractor.from_pretrained(whisper_dir, local_files_only=True)
    cache = str(tmp_path_factory.mktemp("xdna-asr-cache"))
    texts = {}
    xdna_ep.install()
    try:
        for provider, opts in ((EP, {"cache_dir": cache}), ("CPUExecutionProvider", {})):
            model = ORTModelForSpeechSeq2Seq.from_pretrained(
                whisper_dir, provider=provider, provider_options=opts, local_files_only=True)
            assert model.providers[0] == provider
            asr = pipeline("automatic-speech-recognition", model=model, tokenizer=tok,
                           feature_extractor=fe)
            texts[provider] = asr({"raw": audio, "sampling_rate": sr})["text"]
    finally:
        xdna_ep.uninstall()
    assert _words(texts[EP]) == _words(sample.reference)
    assert texts[EP] == texts["CPUExecutionProvider"]
