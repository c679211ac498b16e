"""Calibration data for static INT8: what each Whisper ONNX file sees on real speech.

The FP32 model transcribes the given recordings on ONNX Runtime's CPU provider
while a recording proxy keeps the feeds each session receives; they are saved
as one .npz per sample under <out>/<model file stem>/ (the layout the
partitioner's NpzCalibrationReader reads). The default calibration for a model
is built once from the bundled speech samples and kept beside the converted
model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .decoding import DecodingOptions
from .longform import TranscribeOptions, transcribe_file

MODEL_FILES = ("encoder_model", "decoder_model", "decoder_with_past_model")


class RecordingSession:
    """Wraps an ORT session and keeps a copy of every feed it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.feeds: list[dict[str, np.ndarray]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, output_names: Any, feed: dict[str, np.ndarray], *args: Any) -> Any:
        self.feeds.append({k: np.array(v, copy=True) for k, v in feed.items()})
        return self.inner.run(output_names, feed, *args)


def _pick(feeds: list[dict[str, np.ndarray]], limit: int) -> list[dict[str, np.ndarray]]:
    """At most `limit` samples spread evenly over the recording."""
    if len(feeds) <= limit:
        return feeds
    idx = np.linspace(0, len(feeds) - 1, limit).round().astype(int)
    return [feeds[i] for i in sorted(set(idx.tolist()))]


def build_calibration(audio: Sequence[str | Path], model: str | Path | None, out_dir: Path,
                      max_samples: int = 24) -> Path:
    """Records calibration samples for every model file into `out_dir` (atomic)."""
    from .model import LoadedModel

    if not audio:
        raise ValueError("calibration needs at least one audio file")
    wm = LoadedModel.load(model, device="cpu")
    backend = wm.backend
    recorders = {
        "encoder_model": RecordingSession(backend.encoder),
        "decoder_model": RecordingSession(backend.decoder),
        "decoder_with_past_model": RecordingSession(backend.decoder_with_past),
    }
    backend.encoder = recorders["encoder_model"]
    backend.decoder = recorders["decoder_model"]
    backend.decoder_with_past = recorders["decoder_with_past_model"]
    opts = TranscribeOptions(DecodingOptions(temperatures=(0.0,)), progress=False)
    for path in audio:
        transcribe_file(path, backend, wm.tokenizer, opts)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".calib-", dir=out_dir.parent))
    try:
        for stem, rec in recorders.items():
            d = tmp / stem
            d.mkdir()
            for i, feed in enumerate(_pick(rec.feeds, max_samples)):
                np.savez(d / f"sample_{i:03d}.npz", **feed)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def default_calibration(onnx_dir: Path) -> Path:
    """The bundled-speech calibration of the model in `onnx_dir`, built on first use."""
    from .samples import list_samples

    out = Path(onnx_dir) / "calibration"
    if all((out / stem).is_dir() and any((out / stem).glob("*.npz")) for stem in MODEL_FILES):
        return out
    return build_calibration([s.audio for s in list_samples()], onnx_dir, out)
