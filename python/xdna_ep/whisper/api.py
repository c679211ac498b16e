"""`xdna_ep.whisper.transcribe(path, ...)`: the Python face of `xdna-ep transcribe`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .decoding import DecodingOptions
from .formats import Transcript
from .model import WhisperModel
from .transcribe import TranscribeOptions, transcribe_file


def npu_share(model: WhisperModel) -> tuple[float, str]:
    """(share of the model's MACs in NPU regions, device actually used) over the
    sessions of `model`; (0.0, "cpu") for plain ONNX Runtime sessions."""
    total = npu = 0
    device = model.device
    for sess in model.sessions.values():
        plan = getattr(sess, "partition_plan", None)
        if plan is None:
            continue
        total += plan.total_macs
        npu += plan.npu_macs
        device = getattr(sess, "device_name", device) or device
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
