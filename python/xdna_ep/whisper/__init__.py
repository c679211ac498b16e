"""Whisper on xdna-ep: audio in, text out.

audio.py    reading any soundfile format, mixing down, resampling, streaming windows
features.py Whisper's log-mel spectrogram in numpy (no torch)
formats.py  txt / srt / vtt / tsv / json writers; Segment, Word, TranscriptionInfo
tokenizer.py, decoding.py   Whisper's tokens and decoding rules (greedy, beam, fallback)
longform.py 30 s windows with timestamp seeking (long audio, bounded memory)
alignment.py word timestamps (cross-attention alignment heads + DTW)
vad.py      Silero VAD (ONNX model from the silero-vad package) on ONNX Runtime
device.py   what --device auto runs without an NPU (measured break-even)
model.py    which model (bundled tiny.en, a CTranslate2 folder, an ONNX export) on what
api.py      WhisperModel (faster-whisper's shape) and transcribe(path, ...) -> Transcript

    from xdna_ep.whisper import WhisperModel
    segments, info = WhisperModel("tiny.en").transcribe("speech.flac")
    for s in segments:
        print(f"[{s.start:.2f} -> {s.end:.2f}] {s.text}")
"""

from .api import WhisperModel, transcribe
from .formats import Segment, Transcript, TranscriptionInfo, Word

__all__ = ["Segment", "Transcript", "TranscriptionInfo", "WhisperModel", "Word", "transcribe"]
