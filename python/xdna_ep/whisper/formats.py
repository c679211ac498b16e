"""Transcript writers (txt, srt, vtt, tsv, json) and the result types.

Segment, Word and TranscriptionInfo carry faster-whisper's field names, so code
written against faster-whisper reads our results unchanged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FORMATS = ("txt", "srt", "vtt", "tsv", "json")


@dataclass(frozen=True)
class Word:
    start: float  # seconds
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0  # of the window's decoding this segment came from
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    id: int = 0  # 1-based position in the transcript (faster-whisper numbering)
    seek: int = 0  # mel frame where the window that produced it started
    words: tuple[Word, ...] | None = None  # with word_timestamps only

    def _asdict(self) -> dict[str, Any]:
        """faster-whisper's older namedtuple API."""
        return asdict(self)


@dataclass(frozen=True)
class TranscriptionInfo:
    language: str
    language_probability: float
    duration: float  # seconds of input audio
    duration_after_vad: float  # seconds left after the VAD filter (= duration without it)
    all_language_probs: list[tuple[str, float]] | None = None
    transcription_options: Any = None
    vad_options: Any = None


@dataclass
class Transcript:
    text: str
    segments: list[Segment]
    language: str = "en"
    duration: float = 0.0
    wall_time: float = 0.0
    device: str = ""
    npu_mac_share: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rtf(self) -> float:
        """Real-time factor: wall time / audio time (lower is faster)."""
        return self.wall_time / self.duration if self.duration > 0 else 0.0


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def to_txt(t: Transcript) -> str:
    return "\n".join(seg.text.strip() for seg in t.segments if seg.text.strip()) + "\n"


def to_srt(t: Transcript) -> str:
    blocks = []
    for i, seg in enumerate((s for s in t.segments if s.text.strip()), start=1):
        blocks.append(f"{i}\n{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}\n"
                      f"{seg.text.strip()}\n")
    return "\n".join(blocks)


def to_vtt(t: Transcript) -> str:
    lines = ["WEBVTT", ""]
    for seg in t.segments:
        if seg.text.strip():
            lines += [f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}",
                      seg.text.strip(), ""]
    return "\n".join(lines)


def to_tsv(t: Transcript) -> str:
    """openai-whisper's tsv: start and end in integer milliseconds, then the text."""
    rows = ["start\tend\ttext"]
    for seg in t.segments:
        if seg.text.strip():
            text = seg.text.strip().replace("\t", " ")
            rows.append(f"{round(seg.start * 1000)}\t{round(seg.end * 1000)}\t{text}")
    return "\n".join(rows) + "\n"


def _segment_doc(s: Segment) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": s.id, "seek": s.seek, "start": round(s.start, 3), "end": round(s.end, 3),
        "text": s.text, "tokens": list(s.tokens), "temperature": s.temperature,
        "avg_logprob": round(s.avg_logprob, 4),
        "compression_ratio": round(s.compression_ratio, 4),
        "no_speech_prob": round(s.no_speech_prob, 4)}
    if s.words is not None:
        doc["words"] = [{"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                         "probability": round(w.probability, 4)} for w in s.words]
    return doc


def json_document(t: Transcript) -> dict[str, Any]:
    doc = {
        "text": t.text,
        "segments": [_segment_doc(s) for s in t.segments],
        "language": t.language,
        "duration": round(t.duration, 3),
        "device": t.device,
        "rtf": round(t.rtf, 4),
        "npu_mac_share": round(t.npu_mac_share, 4),
    }
    doc.update(t.extra)
    return doc


def to_json(t: Transcript) -> str:
    return json.dumps(json_document(t), indent=2, ensure_ascii=False) + "\n"


def to_json_line(t: Transcript) -> str:
    """One line per transcript (JSON Lines): several files on stdout stay separable."""
    return json.dumps(json_document(t), ensure_ascii=False) + "\n"


WRITERS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv, "json": to_json}


def render(t: Transcript, fmt: str) -> str:
    try:
        return WRITERS[fmt](t)
    except KeyError:
        raise ValueError(f"unknown format {fmt!r} (valid: {', '.join(FORMATS)}, all)") from None


def segments_as_dicts(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    return [asdict(s) for s in segments]
