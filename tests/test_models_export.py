"""End to end: CTranslate2 Whisper -> transformers -> ONNX (Optimum), judged by ctranslate2.

ctranslate2 (the runtime the checkpoints were made for) is the independent
reference: same greedy tokens on real speech for the bundled tiny.en, and the same
encoder output / language probabilities / greedy tokens for small random
checkpoints (multilingual, float16, int8 storage). These tests need the `export`
extra and ctranslate2 (test extra); a missing package is a failure, not a skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from reference_decode import GreedyDecoder, default_prompt, greedy_decode
from synthetic.checkpoints import SyntheticWhisper, special_tokens, write_synthetic_checkpoint

from xdna_ep.models import bundled_checkpoint_dir, convert_to, ensure_onnx_model

DATA = Path(__file__).resolve().parents[1] / "python" / "xdna_ep" / "data"

pytestmark = pytest.mark.slow


def _need(module: str, why: str):
    try:
        return __import__(module)
    except ImportError:
        pytest.fail(f"{module} is required for this test ({why}): "
                    f"pip install -e '.[export,test]'", pytrace=False)


def _ct2():
    return _need("ctranslate2", "it is the reference the ONNX export is compared with")


def _features(onnx_dir: Path, audio: np.ndarray) -> np.ndarray:
    transformers = _need("transformers", "export extra: reference log-mel features")
    fe = transformers.WhisperFeatureExtractor.from_pretrained(str(onnx_dir))
    return fe(audio, sampling_rate=16000, return_tensors="np").input_features[0]


def _clips() -> list[Path]:
    clips = sorted(DATA.glob("*.flac"))
    assert clips, f"no bundled speech in {DATA}"
    return clips


@pytest.fixture(scope="module")
def tiny_en() -> Path:
    return ensure_onnx_model()


def test_export_folder_is_complete(tiny_en: Path) -> None:
    for name in ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx",
                 "decoder_model_merged.onnx", "config.json", "generation_config.json",
                 "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
                 "ct2_config.json"):
        assert (tiny_en / name).is_file(), name
    assert (tiny_en / "tokenizer.json").read_bytes() == (
        bundled_checkpoint_dir() / "tokenizer.json").read_bytes()
    onnx = _need("onnx", "graph checks")
    model = onnx.load(str(tiny_en / "encoder_model.onnx"), load_external_data=False)
    assert [i.name for i in model.graph.input] == ["input_features"]
    inits = {t.data_type for t in model.graph.initializer}
    assert inits <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}  # FP32 export


def test_tiny_en_greedy_matches_ctranslate2_on_real_speech(tiny_en: Path) -> None:
    ctranslate2 = _ct2()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_en / "tokenizer.json"))
    ref_model = ctranslate2.models.Whisper(str(bundled_checkpoint_dir()), device="cpu",
                                           compute_type="float32")
    prompt = default_prompt(tiny_en)
    decoder = GreedyDecoder(tiny_en)
    for clip in _clips():
        meta = json.loads(clip.with_suffix(".json").read_text())
        audio, sr = sf.read(clip, dtype="float32")
        assert sr == 16000
        feats = _features(tiny_en, audio)
        ours = decoder.decode(feats)
        ref = ref_model.generate(ctranslate2.StorageView.from_array(feats[None]), [prompt],
                                 beam_size=1)[0].sequences_ids[0]
        assert ours.tokens == ref, (
            f"{clip.name}: ONNX {ours.text!r} != CTranslate2 {tok.decode(ref)!r}")
        # sanity: the transcript is about the published reference, not noise
        words = {w.strip(".,!?").lower() for w in ours.text.split()}
        ref_words = set(meta["reference"].split())
        assert len(words & ref_words) >= len(ref_words) // 3, (ours.text, meta["reference"])


def test_optimum_loads_export_and_agrees(tiny_en: Path) -> None:
    _need("optimum.onnxruntime", "export extra")
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq

    model = ORTModelForSpeechSeq2Seq.from_pretrained(str(tiny_en))
    audio, _ = sf.read(_clips()[0], dtype="float32")
    feats = _features(tiny_en, audio)
    ids = model.generate(_need("torch", "export extra").from_numpy(feats[None]),
                         num_beams=1, do_sample=False, max_new_tokens=120)[0].tolist()
    ours = greedy_decode(tiny_en, feats).tokens
    eos = json.loads((tiny_en / "generation_config.json").read_text())["eos_token_id"]
    generated = [t for t in ids if t not in default_prompt(tiny_en) and t != eos]
    assert generated == ours


@pytest.mark.parametrize(
    "spec",
    [SyntheticWhisper(multilingual=True, dtype="float16"),
     SyntheticWhisper(multilingual=False, dtype="int8", encoder_layers=2, decoder_layers=1,
                      d_model=32, heads=4, ffn=64)],
    ids=["multilingual-float16", "english-int8"],
)
def test_synthetic_checkpoints_match_ctranslate2(tmp_path: Path, spec: SyntheticWhisper) -> None:
    ctranslate2 = _ct2()
    import onnxruntime as ort

    ckpt = write_synthetic_checkpoint(tmp_path / "ckpt", spec)
    out = convert_to(ckpt, tmp_path / "onnx")
    ref = ctranslate2.models.Whisper(str(ckpt), device="cpu", compute_type="float32")
    feats = np.random.default_rng(7).standard_normal((1, spec.n_mels, 3000)).astype(np.float32)
    ref_hidden = np.array(ref.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True))
    enc = ort.InferenceSession(str(out / "encoder_model.onnx"), providers=["CPUExecutionProvider"])
    hidden = enc.run(None, {"input_features": feats})[0]
    np.testing.assert_allclose(hidden, ref_hidden, atol=1e-4, rtol=1e-4)

    prompt = default_prompt(out)
    ref_ids = ref.generate(ctranslate2.StorageView.from_array(feats), [prompt], beam_size=1,
                           max_length=12)[0].sequences_ids[0]
    ours = greedy_decode(out, feats[0], max_length=len(prompt) + len(ref_ids)).tokens
    assert ref_ids and ours[: len(ref_ids)] == ref_ids

    if spec.multilingual:
        # ctranslate2's language probabilities: softmax of the first decoder step over
        # config.json's lang_ids, which the export carries as generation_config lang_to_id
        lang_to_id = json.loads((out / "generation_config.json").read_text())["lang_to_id"]
        assert set(lang_to_id) == {t for t in special_tokens(spec) if len(t) == 6}
        ref_probs = dict(ref.detect_language(ctranslate2.StorageView.from_array(feats))[0])
        assert set(ref_probs) == set(lang_to_id)
        dec = ort.InferenceSession(str(out / "decoder_model.onnx"),
                                   providers=["CPUExecutionProvider"])
        logits = dec.run(["logits"], {"input_ids": np.array([[prompt[0]]], np.int64),
                                      "encoder_hidden_states": hidden})[0][0, -1]
        lang_logits = logits[list(lang_to_id.values())].astype(np.float64)
        probs = np.exp(lang_logits - lang_logits.max())
        probs /= probs.sum()
        for token, p in zip(lang_to_id, probs, strict=True):
            assert ref_probs[token] == pytest.approx(p, abs=1e-4)


def test_cli_converts_without_network(tmp_path: Path) -> None:
    """The real exporter through the CLI, with every proxy pointing at a closed port:
    any attempt to reach a model hub would fail the conversion."""
    import os
    import subprocess
    import sys

    ckpt = write_synthetic_checkpoint(tmp_path / "ckpt", SyntheticWhisper(dtype="float32"))
    env = dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", NO_PROXY="",
               no_proxy="", HF_HOME=str(tmp_path / "hf-home"))
    out = tmp_path / "onnx"
    proc = subprocess.run([sys.executable, "-m", "xdna_ep.models.convert", str(ckpt),
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(out) in proc.stdout
    manifest = json.loads((out / "xdna_manifest.json").read_text())
    assert manifest["dims"]["d_model"] == 16 and "encoder_model.onnx" in manifest["onnx_files"]
    assert not (tmp_path / "hf-home" / "hub").exists()  # nothing fetched into a hub cache
