"""Runs one audio fuzz case through every front-end entry point and lists problems.

The entry points: load_audio (whole file), AudioStream (windowed reading with
release, the long-form path) and transcribe_file with the scripted
EnergyBackend (features, decoding rules, seeking, segments). A case passes
when each entry point ends in a clear AudioError / FileNotFoundError naming
the file, or in a valid result that agrees with what the case holds.
Used in-process by the tests and, for the corrupt-file batch, by
audio_worker.py in a subprocess (libsndfile is C code and could crash).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xdna_ep.whisper.audio import SAMPLE_RATE, AudioError, AudioStream, load_audio
from xdna_ep.whisper.decoding import DecodingOptions
from xdna_ep.whisper.features import N_SAMPLES
from xdna_ep.whisper.formats import Segment
from xdna_ep.whisper.longform import TranscribeOptions, transcribe_file
from xdna_ep.whisper.tokenizer import WhisperTokenizer

from .audio_cases import TONE_END, TONE_START, AudioCase
from .scripted_backend import WORD, EnergyBackend

CLEAR_ERRORS = (AudioError, FileNotFoundError)


@dataclass
class AudioOutcome:
    name: str
    load: str = ""          # "ok" or the exception type name
    stream: str = ""
    transcribe: str = ""
    text: str = ""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _error_label(case: AudioCase, exc: BaseException, where: str,
                 problems: list[str]) -> str:
    if not isinstance(exc, CLEAR_ERRORS):
        problems.append(f"{where}: unexpected {type(exc).__name__}: {exc}")
    elif case.path.name not in str(exc):
        problems.append(f"{where}: error does not name the file: {exc}")
    return type(exc).__name__


def _check_samples(case: AudioCase, audio: np.ndarray, problems: list[str]) -> None:
    if audio.dtype != np.float32 or audio.ndim != 1 or audio.size == 0:
        problems.append(f"load: bad array {audio.dtype} {audio.shape}")
        return
    if not np.isfinite(audio).all():
        problems.append("load: non-finite samples returned")
    if case.seconds is not None:
        slack = 0.15 if case.lossy else 0.01
        got = audio.size / SAMPLE_RATE
        if abs(got - case.seconds) > slack:
            problems.append(f"load: {got:.3f} s of audio, expected {case.seconds:.3f} s")
    if case.channels_mean is not None:
        want = case.channels_mean
        if want.shape != audio.shape:
            problems.append(f"load: mix-down shape {audio.shape}, expected {want.shape}")
        elif np.abs(audio - want).max() > 2.0 / 32768:
            problems.append(f"load: mix-down differs from the channel mean by "
                            f"{np.abs(audio - want).max():.2e}")


def _stream_all(case: AudioCase) -> np.ndarray:
    """Reads the file as the transcriber does: 30 s windows, releasing behind."""
    parts: list[np.ndarray] = []
    with AudioStream(case.path) as stream:
        pos = 0
        while not stream.at_end(pos):
            win = stream.window(pos, N_SAMPLES)
            parts.append(win)
            pos += N_SAMPLES
            stream.release(pos)
        total = stream.num_samples
    joined = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return joined[:total]


def check_case(case: AudioCase, tok: WhisperTokenizer) -> AudioOutcome:
    out = AudioOutcome(case.name)
    problems = out.problems
    audio: np.ndarray | None = None
    try:
        audio = load_audio(case.path)
        out.load = "ok"
        _check_samples(case, audio, problems)
    except Exception as exc:  # noqa: BLE001 - classified, not swallowed
        out.load = _error_label(case, exc, "load", problems)

    try:
        streamed = _stream_all(case)
        out.stream = "ok"
        if audio is not None and (streamed.shape != audio.shape
                                  or not np.array_equal(streamed, audio)):
            problems.append("stream: windowed reading differs from load_audio")
    except Exception as exc:  # noqa: BLE001
        out.stream = _error_label(case, exc, "stream", problems)

    backend = EnergyBackend(tok)
    opts = TranscribeOptions(DecodingOptions(), progress=False)
    try:
        t = transcribe_file(case.path, backend, tok, opts)
        out.transcribe = "ok"
        out.text = t.text
        _check_transcript(case, t, backend, problems)
    except Exception as exc:  # noqa: BLE001
        out.transcribe = _error_label(case, exc, "transcribe", problems)

    # one verdict per file: all entry points agree on usable vs unusable
    if out.load == "ok" and out.transcribe != "ok":
        problems.append(f"load_audio read the file but transcribe raised {out.transcribe}")
    if out.load != "ok" and out.transcribe == "ok":
        problems.append(f"load_audio raised {out.load} but transcribe returned a transcript "
                        f"({out.text!r}): a bad file passed as silence")
    if case.expect == "error" and "ok" in (out.load, out.transcribe):
        problems.append("expected a clear error, got a result")
    if case.expect == "ok" and (out.load != "ok" or out.transcribe != "ok"):
        problems.append(f"expected valid audio, got load={out.load} "
                        f"transcribe={out.transcribe}")
    return out


def _check_transcript(case: AudioCase, t, backend: EnergyBackend,
                      problems: list[str]) -> None:
    if backend.saw_non_finite:
        problems.append("transcribe: non-finite features reached the model "
                        f"(text {t.text[:40]!r})")
        return
    words = t.text.split()
    if any(w != WORD.strip() for w in words):
        problems.append(f"transcribe: text the audio does not hold: {t.text[:60]!r}")
    for s in t.segments:
        if not (np.isfinite(s.start) and np.isfinite(s.end) and 0.0 <= s.start <= s.end
                <= t.duration + 0.04):  # one 20 ms step + frame smear
            problems.append(f"transcribe: bad segment times {s.start}..{s.end} "
                            f"(duration {t.duration})")
    if case.expect != "ok":
        return
    if not case.speech:
        if t.text or t.segments:
            problems.append(f"transcribe: silence gave text {t.text!r}")
        return
    # lossy codecs may split the burst's energy in two: words, never other text
    if not words or (not case.lossy and (len(words) != 1 or len(t.segments) != 1)):
        problems.append(f"transcribe: expected one word, got {t.text!r}")
        return
    seg = Segment(t.segments[0].start, t.segments[-1].end, t.text)
    slack = 0.25 if case.lossy else 0.1
    # a window holding one segment starts it at the window start (Whisper's rule
    # when no two timestamps are adjacent): early is right, late is not
    if seg.start > TONE_START + slack or abs(seg.end - TONE_END) > slack:
        problems.append(f"transcribe: segment {seg.start:.2f}..{seg.end:.2f} s, the tone "
                        f"is at {TONE_START}..{TONE_END} s")
