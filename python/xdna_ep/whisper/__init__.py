"""Whisper on xdna-ep: audio in, text out.

audio.py    reading any soundfile format, mixing down, resampling, streaming windows
features.py Whisper's log-mel spectrogram in numpy (no torch)
formats.py  txt / srt / vtt / json writers
The decoding and transcription driver build on these.
"""
