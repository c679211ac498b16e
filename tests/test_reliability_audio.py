"""Audio fuzzing of the Whisper front end (issue 8 item 2; docs/RELIABILITY.md).

Every file, valid or broken, goes through load_audio, AudioStream (windowed,
the long-form path) and transcribe_file with a scripted DecoderBackend
(tests/fuzz/scripted_backend.py): the outcome must be a clear AudioError /
FileNotFoundError naming the file, or a valid result matching what the file
holds (duration, channel mix-down, the tone's segment; silence -> no text).
The corrupt set also runs in a subprocess so a crash inside libsndfile/mpg123
would be seen as a crash, not take the test run down.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from fuzz.audio_cases import (  # isort: skip
    FORMATS, RATES, AudioCase, corrupt_cases, non_finite_cases, tone, valid_cases)
from fuzz.audio_check import check_case  # isort: skip
from fuzz.runner import run_worker  # isort: skip
from fuzz.scripted_backend import WORD, EnergyBackend  # isort: skip
from xdna_ep.whisper.audio import AudioError
from xdna_ep.whisper.decoding import DecodingOptions
from xdna_ep.whisper.longform import TranscribeOptions, transcribe_file
from xdna_ep.whisper.model import bundled_checkpoint
from xdna_ep.whisper.tokenizer import WhisperTokenizer

SR = 16_000


@pytest.fixture(scope="module")
def tok() -> WhisperTokenizer:
    d = bundled_checkpoint()
    return WhisperTokenizer.from_files(d / "tokenizer.json", d / "config.json")


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory) -> list[AudioCase]:
    return corrupt_cases(tmp_path_factory.mktemp("corrupt"), seed=0)


def _failures(cases: list[AudioCase], tok: WhisperTokenizer) -> tuple[list[str], Counter]:
    failures, verdicts = [], Counter()
    for case in cases:
        out = check_case(case, tok)
        verdicts[(out.load, out.transcribe)] += 1
        failures += [f"{case.name}: {p}" for p in out.problems]
    return failures, verdicts


def test_valid_audio_every_format_rate_and_channel_count(tmp_path, tok):
    cases = valid_cases(tmp_path)
    names = " ".join(c.name for c in cases)
    for fmt, subtype, *_ in FORMATS:           # the grid really covers the space
        assert f"{fmt}_{subtype}_" in names
    for rate in RATES:
        assert f"_{rate}_" in names
    for ch in range(1, 9):
        assert f"_{ch}ch" in names
    assert sum(c.expect == "ok" and not c.speech for c in cases) >= len(FORMATS) * 5  # silence
    failures, verdicts = _failures(cases, tok)
    assert not failures, "\n".join(failures[:30])
    assert verdicts[("ok", "ok")] >= 200


def test_non_finite_and_absurd_samples(tmp_path, tok):
    cases = non_finite_cases(tmp_path)
    failures, verdicts = _failures(cases, tok)
    assert not failures, "\n".join(failures)
    assert verdicts[("AudioError", "AudioError")] == 18   # NaN, +Inf, -Inf x 3 places x 2


def test_corrupt_files_in_process(corrupt, tok):
    failures, verdicts = _failures(corrupt, tok)
    assert not failures, "\n".join(failures[:30])
    # the set exercises both outcomes (else it would prove little)
    assert verdicts[("AudioError", "AudioError")] >= 50
    assert verdicts[("ok", "ok")] >= 10


@pytest.mark.slow
def test_corrupt_files_do_not_crash_the_process(corrupt, tmp_path):
    spec = [{"name": c.name, "path": str(c.path), "expect": c.expect, "speech": c.speech,
             "seconds": c.seconds, "lossy": c.lossy} for c in corrupt]
    listing = tmp_path / "cases.json"
    listing.write_text(json.dumps(spec))
    res = run_worker("audio_worker", [listing], timeout=300)
    assert res.outcome == "ok", res.describe()
    assert [r["name"] for r in res.records] == [c.name for c in corrupt]
    problems = [f"{r['name']}: {p}" for r in res.records for p in r["problems"]]
    assert not problems, "\n".join(problems[:30])


def _bursts(seconds: float, starts: list[float], dur: float, rate: int) -> np.ndarray:
    x = np.zeros(int(seconds * rate), np.float32)
    for s in starts:
        x += tone(seconds, rate, start=s, end=s + dur)
    return x


def test_long_form_no_window_lost_at_any_rate(tmp_path, tok):
    """A multi-window stereo file at 44.1 kHz: bursts cross the 30 s edges."""
    starts = [2.0, 29.6, 41.0, 59.7, 70.0]
    dur = 0.8
    mono = _bursts(75.0, starts, dur, 44_100)
    path = tmp_path / "long.flac"
    sf.write(str(path), np.stack([mono, mono * 0.5], axis=1), 44_100, subtype="PCM_16")
    backend = EnergyBackend(tok)
    t = transcribe_file(path, backend, tok, TranscribeOptions(DecodingOptions(),
                                                              progress=False))
    assert backend.windows >= 3
    assert t.text.split() == [WORD.strip()] * len(starts), t.text
    assert t.duration == pytest.approx(75.0, abs=1e-3)
    prev_end = 0.0
    for seg, s in zip(t.segments, starts, strict=True):
        assert prev_end - 1e-6 <= seg.start <= s + 0.1     # may start early, never late
        assert seg.end == pytest.approx(s + dur, abs=0.1)
        prev_end = seg.end


def test_long_silence_is_an_empty_transcript(tmp_path, tok):
    """Digital silence: no text (the energy rule skips it before the model)."""
    path = tmp_path / "silence.ogg"
    # written one second per call: libsndfile 1.2.2's Vorbis encoder segfaults when
    # given 65 s in one sf.write call (found here; reading is unaffected)
    with sf.SoundFile(str(path), "w", 48_000, 1, subtype="VORBIS") as f:
        for _ in range(65):
            f.write(np.zeros(48_000, np.float32))
    backend = EnergyBackend(tok)
    t = transcribe_file(path, backend, tok, TranscribeOptions(DecodingOptions(),
                                                              progress=False))
    assert t.text == "" and t.segments == []
    assert t.duration == pytest.approx(65.0, abs=1e-3)


def test_faint_noise_hallucination_is_dropped(tmp_path, tok):
    """Faint noise reaches the model (above the digital-silence floor), and the scripted
    model hallucinates on it with the no-speech token likely: the no-speech rule must
    drop that text in every window."""
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(65 * SR) * 10 ** (-60 / 20)).astype(np.float32)  # -60 dBFS
    path = tmp_path / "faint.wav"
    sf.write(str(path), noise, SR, subtype="FLOAT")
    backend = EnergyBackend(tok)
    t = transcribe_file(path, backend, tok, TranscribeOptions(DecodingOptions(),
                                                              progress=False))
    assert backend.windows == 3                 # every window was decoded ...
    assert t.text == "" and t.segments == []    # ... and its hallucination dropped


def test_nan_deep_in_a_long_file_is_an_error_not_a_short_transcript(tmp_path, tok):
    """A NaN found after 30 s must fail the file, not return the first window only."""
    x = _bursts(70.0, [2.0, 40.0], 0.8, SR)
    x[int(45.0 * SR)] = np.nan
    path = tmp_path / "late_nan.wav"
    sf.write(str(path), x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"late_nan\.wav.*non-finite"):
        transcribe_file(path, EnergyBackend(tok), tok, TranscribeOptions(progress=False))
