"""Whisper model conversion and export (xdna_ep.models): CTranslate2 -> transformers -> ONNX."""
