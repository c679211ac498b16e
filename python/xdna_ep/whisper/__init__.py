"""Whisper on xdna-ep: audio in, text out.

audio.py    reading any soundfile format, mixing down, resampling, streaming windows
features.py Whisper's log-mel spectrogram in numpy (no torch)
formats.py  txt / srt / vtt / json writers
tokenizer.py, decoding.py   Whisper's tokens and decoding rules (greedy, beam, fallback)
longform.py 30 s windows with timestamp seeking (long audio, bounded memory)
model.py    which model (bundled tiny.en, a CTranslate2 folder, an ONNX export) on what
api.py      transcribe(path, ...) -> Transcript

    from xdna_ep.whisper import transcribe
    t = transcribe("speech.flac", device="auto")
    print(t.text, t.segments)
"""

from .api import transcribe
from .formats import Segment, Transcript

__all__ = ["Segment", "Transcript", "transcribe"]
