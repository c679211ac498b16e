"""Fuzzing helpers for the reliability tests (tests/test_reliability_*.py).

audio_cases: generated and corrupted audio files; scripted_backend: a scripted
Whisper DecoderBackend; model_mutators: mutated ONNX model folders; runner:
subprocesses with timeouts and a memory cap, classified outcomes.
"""
