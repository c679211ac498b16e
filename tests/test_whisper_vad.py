"""VAD: Silero's ONNX model on real speech, chunking rules, times mapped back."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from xdna_ep.whisper import vad
from xdna_ep.whisper.audio import load_audio
from xdna_ep.whisper.samples import list_samples
from xdna_ep.whisper.vad import FRAME, TimeMap, VadOptions, speech_chunks

SR = 16000


def _probs(pattern: list[tuple[float, float]]) -> tuple[np.ndarray, int]:
    """(per-frame probabilities, n samples) from (seconds, probability) runs."""
    probs = np.concatenate([np.full(int(round(s * SR / FRAME)), p, np.float32)
                            for s, p in pattern])
    return probs, len(probs) * FRAME


def test_chunks_hysteresis_min_silence_and_padding():
    probs, n = _probs([(1.0, 0.1), (2.0, 0.9), (0.5, 0.0), (1.0, 0.9), (5.0, 0.0),
                       (1.0, 0.4), (1.0, 0.9), (2.0, 0.0)])
    chunks = speech_chunks(probs, n, VadOptions())
    # the 0.5 s dip does not end speech (min silence 2 s); 0.4 sits between the
    # thresholds (0.35..0.5): it neither starts nor ends speech
    assert len(chunks) == 2
    (a0, b0), (a1, b1) = chunks
    assert a0 == pytest.approx(1.0 * SR - 0.4 * SR, abs=2 * FRAME)
    assert b0 == pytest.approx(4.5 * SR + 0.4 * SR, abs=2 * FRAME)
    assert a1 == pytest.approx(10.5 * SR - 0.4 * SR, abs=2 * FRAME)
    assert b1 == pytest.approx(11.5 * SR + 0.4 * SR, abs=2 * FRAME)
    tight = speech_chunks(probs, n, VadOptions(min_silence_duration_ms=300, speech_pad_ms=0))
    assert len(tight) == 3
    short = speech_chunks(probs, n, VadOptions(min_speech_duration_ms=1500))
    assert len(short) == 1


def test_time_map_back_to_the_original():
    tm = TimeMap.of([(1 * SR, 3 * SR), (10 * SR, 12 * SR)])
    assert tm.original(0.0) == 1.0 and tm.original(1.5) == 2.5
    assert tm.original(2.0) == 10.0  # a start at the boundary: the later chunk
    assert tm.original(2.0, is_end=True) == 3.0  # an end there: the earlier chunk
    assert tm.original(3.9, is_end=True) == 11.9
    assert tm.span(1.2, 2.5) == (2.2, 3.0)  # 0.5 s into the next chunk: clipped ...
    assert tm.span(1.2, 2.0 + 1e-9)[1] == pytest.approx(3.0)
    assert tm.span(0.9, 3.5) == (1.9, 11.5)  # ... speech on both sides: spans
    assert tm.span(1.7, 3.5) == (10.0, 11.5)  # starts 0.3 s before its chunk: moved


def test_options_and_missing_model(monkeypatch):
    with pytest.raises(ValueError, match="unknown vad_parameters: nope"):
        VadOptions.from_any({"nope": 1})
    assert VadOptions.from_any({"threshold": 0.6}).threshold == 0.6
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(vad.VadUnavailableError, match="--no-deps silero-vad"):
        vad.silero_model_path()


def _pause_audio() -> tuple[np.ndarray, tuple[float, float]]:
    s = list_samples()
    a, b = load_audio(s[0].audio), load_audio(s[3].audio)
    gap = np.random.default_rng(1).normal(0, 1e-4, 20 * SR).astype(np.float32)
    return np.concatenate([a, gap, b]), (len(a) / SR, (len(a) + len(gap)) / SR)


def test_silero_finds_the_speech_around_a_pause():
    audio, (p0, p1) = _pause_audio()
    chunks = speech_chunks(vad.speech_probabilities(audio), len(audio), VadOptions())
    assert len(chunks) == 2
    (a0, b0), (a1, b1) = ((a / SR, b / SR) for a, b in chunks)
    assert a0 < 0.5 and p0 - 0.5 < b0 < p0 + 0.6
    assert p1 - 0.6 < a1 < p1 + 0.5 and b1 > len(audio) / SR - 0.5


@pytest.mark.slow
def test_vad_filter_transcribes_speech_only_with_original_times():
    from xdna_ep.whisper import WhisperModel

    audio, (p0, p1) = _pause_audio()
    model = WhisperModel("tiny.en", device="cpu")
    segments, info = model.transcribe(audio, vad_filter=True, beam_size=1,
                                      vad_parameters={"min_silence_duration_ms": 1000})
    segs = list(segments)
    assert info.duration == pytest.approx(len(audio) / SR)
    assert info.duration_after_vad < info.duration - 18.0
    assert info.vad_options.min_silence_duration_ms == 1000
    text = " ".join(s.text for s in segs).lower()
    assert "dashwood" in text and "respectable" in text
    for s in segs:
        assert not (s.start < p0 and s.end > p1 - 0.5) or s.start > p1 - 1.0, (s.start, s.end)
    assert any(s.start > p1 - 1.0 for s in segs) and segs[0].start < 1.0
    # all silence: no segments, and no error
    silent, info = model.transcribe(np.zeros(5 * SR, np.float32), vad_filter=True)
    assert list(silent) == [] and info.duration_after_vad == 0.0
