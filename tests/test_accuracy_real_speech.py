"""Accuracy targets on the real tiny.en encoder and real speech (slow).

Issue 15: the provider's default (quantization="dynamic", NO calibration data:
GELU-aware dynamic scales, outlier channels from the weights) reaches cosine
>= 0.99 against FP32 on every held-out window.

Issue 5:

Default static configuration (CompileOptions defaults: percentile 99.999, outlier
split on), calibrated on half of the bundled clips, measured on the other half:
- encoder output of the INT8 session (ONNX Runtime + XDNAExecutionProvider on the
  emulator, as users run it) vs the FP32 model: cosine >= 0.99 on
  the held-out 30 s window (several held-out clips back to back), and on every
  held-out clip's window;
- the greedy transcript of a held-out real clip with the INT8 encoder is identical
  to the FP32 one (decoder FP32 on the CPU in both);
- launches per inference <= 3 per encoder layer (tiny.en: 4 layers, 12 launches).
The measured values are in the assertion messages; docs/ACCURACY.md has the table.
"""

from __future__ import annotations

import numpy as np
import pytest

from xdna_ep.bench import accuracy as acc

pytestmark = pytest.mark.slow


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    from xdna_ep.models import ensure_onnx_model

    path = ensure_onnx_model() / "encoder_model.onnx"
    cal_clips, held_clips = acc.split_clips(acc.load_clips())
    assert not {c.name for c in cal_clips} & {c.name for c in held_clips}
    cal = acc.windows_for(cal_clips, "calibration-joined")
    held = acc.windows_for(held_clips, "heldout-joined")
    # the session users run: ONNX Runtime + XDNAExecutionProvider on the emulator.
    # measure_sqnr off: the compile-time SQNR figure (6 more emulator runs) is not
    # asserted here, and skipping it pays for the no-calibration session below
    enc = acc.encoder_session(path, acc.Config("default-static", extra={"measure_sqnr": False}),
                              [{"input_features": w.features} for w in cal],
                              tmp_path_factory.mktemp("cache"))
    assert enc.session.get_providers()[0] == "XDNAExecutionProvider"
    assert enc.plan.npu_mac_share >= 0.99, enc.plan.npu_mac_share
    fp32 = acc.fp32_outputs(path, held)
    return enc, held, fp32, enc.programs


def test_heldout_window_cosine(setup) -> None:  # type: ignore[no-untyped-def]
    enc, held, fp32, programs = setup
    assert held[-1].name == "heldout-joined"
    assert held[-1].audio.size > 25 * acc.SAMPLE_RATE  # a full window of speech
    figures = {}
    for w, ref in zip(held, fp32, strict=True):
        out = enc.run({"input_features": w.features})
        assert out.shape == ref.shape
        figures[w.name] = round(_cos(out, ref), 5)
    assert figures["heldout-joined"] >= 0.99, f"cosine on the held-out 30 s window: {figures}"
    assert min(figures.values()) >= 0.99, f"cosines per held-out window: {figures}"
    # the outlier split of tiny.en's last layer is part of the default configuration
    assert any(p.meta.get("outlier_channels") for p in programs.values())


def test_default_without_calibration_cosine(setup, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """The provider's default (dynamic, no calibration option at all) on every held-out
    window: cosine >= 0.99 (measured 0.995 worst, docs/ACCURACY.md), with the last
    layer's outlier channels found from the weights."""
    from xdna_ep.models import ensure_onnx_model

    _, held, fp32, _ = setup
    config = acc.CONFIGS["dynamic"]
    assert config.quantization == "dynamic" and not config.calibrated
    enc = acc.encoder_session(ensure_onnx_model() / "encoder_model.onnx", config, [],
                              tmp_path_factory.mktemp("cache_dyn"))
    assert enc.plan.npu_mac_share >= 0.99, enc.plan.npu_mac_share
    (prog,) = enc.programs.values()
    assert prog.meta["quantization"] == "dynamic"
    # from the weights alone: the three last-layer fc1 channels that reach ~560 on speech
    assert list(prog.meta["outlier_channels"].values()) == [[1124, 1208, 1430]]
    figures = {w.name: round(_cos(enc.run({"input_features": w.features}), ref), 5)
               for w, ref in zip(held, fp32, strict=True)}
    assert min(figures.values()) >= 0.99, f"cosines per held-out window: {figures}"


def test_heldout_clip_transcript_identical(setup) -> None:  # type: ignore[no-untyped-def]
    enc, held, _, _ = setup
    window = next(w for w in held if w.name == "librivox_sense_and_sensibility_0920")
    tr = acc.Transcriber.load()
    fp32_text = tr.transcribe(window.audio)
    int8_text = tr.transcribe(window.audio, enc.session)
    assert fp32_text, "FP32 transcript is empty"
    assert int8_text == fp32_text, f"INT8 {int8_text!r} != FP32 {fp32_text!r}"


def test_launches_per_encoder_layer(setup) -> None:  # type: ignore[no-untyped-def]
    """One region, 12 launches for 4 layers: conv_frontend, ln_matmul, then per layer
    attn_block + ffn_ln_matmul (the MLP with the next layer's layernorm -> q/k/v), and
    on the last layer attn_block, the two ffn_block launches of the outlier split
    and the final layernorm."""
    _, _, _, programs = setup
    assert len(programs) == 1
    (prog,) = programs.values()
    designs = [ln.design for ln in prog.launches]
    assert designs == (["conv_frontend", "ln_matmul"] + ["attn_block", "ffn_ln_matmul"] * 3
                       + ["attn_block", "ffn_block", "ffn_block", "layernorm"]), designs
    assert prog.num_launches <= 3 * 4
