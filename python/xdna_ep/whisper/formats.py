"""Transcript writers: txt, srt, vtt, json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

FORMATS = ("txt", "srt", "vtt", "json")


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


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


def to_json(t: Transcript) -> str:
    doc = {
        "text": t.text,
        "segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
                     for s in t.segments],
        "language": t.language,
        "duration": round(t.duration, 3),
        "device": t.device,
        "rtf": round(t.rtf, 4),
        "npu_mac_share": round(t.npu_mac_share, 4),
    }
    doc.update(t.extra)
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


WRITERS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}


def render(t: Transcript, fmt: str) -> str:
    try:
        return WRITERS[fmt](t)
    except KeyError:
        raise ValueError(f"unknown format {fmt!r} (valid: {', '.join(FORMATS)}, all)") from None


def segments_as_dicts(segments: Sequence[Segment]) -> list[dict[str, Any]]:
    return [asdict(s) for s in segments]
