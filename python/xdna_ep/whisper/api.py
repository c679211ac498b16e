"""`xdna_ep.whisper.transcribe(path, ...)`: the Python face of `xdna-ep transcribe`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .decoding import DecodingOptions
from .formats import Transcript
from .longform import TranscribeOptions, transcribe_file
from .model import WhisperModel


def npu_share(model: WhisperModel) -> tuple[float, str]:
    """(share of the MACs executed so far that ran in NPU regions, device used).

    Each session's plan gives MACs per run (symbolic lengths bound as the plan
    notes say); weighting by how often each session ran makes the encoder (once
    per window) and the decoders (once per token) count for what they did.
    (0.0, "cpu") for plain ONNX Runtime sessions."""
    total = npu = 0.0
    device = model.device
    for name, sess in model.sessions.items():
        plan = getattr(sess, "xdna_plan", None)
        if plan is None:
            continue
        runs = model.run_counts.get(name, 0)
        total += runs * plan.total_macs
        npu += runs * plan.npu_macs
        start = getattr(sess, "xdna_start", None)
        device = (start.device if start is not None and start.device else device)
    return (npu / total if total else 0.0), device


def transcribe(path: str | Path, model: str | Path | WhisperModel | None = None,
               device: str = "auto", language: str | None = None, beam_size: int = 1,
               timestamps: bool = True, progress: bool | None = None,
               provider_options: dict[str, Any] | None = None) -> Transcript:
    """Transcribes an audio file; returns text and timestamped segments."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    wm = model if isinstance(model, WhisperModel) else WhisperModel.load(
        model, device, provider_options)
    opts = TranscribeOptions(
        decoding=DecodingOptions(language=language, beam_size=beam_size, timestamps=timestamps),
        progress=progress)
    transcript = transcribe_file(path, wm.backend, wm.tokenizer, opts)
    transcript.npu_mac_share, transcript.device = npu_share(wm)
    return transcript
