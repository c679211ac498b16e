"""Whisper model conversion and export (xdna_ep.models): CTranslate2 -> transformers -> ONNX.

Importing this package never imports torch; only the conversion itself (export.py,
the `export` extra) does, and only when a cache entry has to be built.
"""

from .convert import bundled_checkpoint_dir, convert_to, ensure_onnx_model

__all__ = ["bundled_checkpoint_dir", "convert_to", "ensure_onnx_model"]
