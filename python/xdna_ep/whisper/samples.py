"""The real speech recordings shipped with xdna-ep (python/xdna_ep/data/).

Each clip has a JSON sidecar with its source package, licence and reference
transcript (and how that reference was obtained)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class SpeechSample:
    audio: Path
    reference: str
    source: str
    licence: str
    reference_origin: str


def list_samples() -> list[SpeechSample]:
    data = Path(str(resources.files("xdna_ep") / "data"))
    out = []
    for meta_file in sorted(data.glob("*.json")):
        meta = json.loads(meta_file.read_text())
        audio = data / meta["audio"]
        out.append(SpeechSample(audio, meta["reference"], meta.get("source", ""),
                                meta.get("licence", ""), meta.get("reference_origin", "")))
    return out


def bundled_sample() -> SpeechSample:
    """The default sample (`xdna-ep transcribe --sample`)."""
    samples = list_samples()
    if not samples:
        raise FileNotFoundError("no bundled speech sample found in xdna_ep/data")
    return samples[0]
