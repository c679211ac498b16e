"""A DecoderBackend wrapper that times encoder windows and decoder tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decoding import DecoderBackend


@dataclass
class TimingStats:
    encoder_s: list[float] = field(default_factory=list)
    decoder_s: float = 0.0
    decoder_tokens: int = 0

    @property
    def encoder_ms(self) -> float:
        return 1000 * float(np.median(self.encoder_s)) if self.encoder_s else 0.0

    @property
    def decoder_ms_per_token(self) -> float:
        return 1000 * self.decoder_s / self.decoder_tokens if self.decoder_tokens else 0.0


class TimedBackend:
    """Forwards to `inner` and records where the time goes."""

    def __init__(self, inner: DecoderBackend) -> None:
        self.inner = inner
        self.stats = TimingStats()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, mel: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = self.inner.encode(mel)
        self.stats.encoder_s.append(time.perf_counter() - t)
        return out

    def start(self, tokens: np.ndarray, enc: np.ndarray) -> tuple[np.ndarray, Any]:
        t = time.perf_counter()
        out = self.inner.start(tokens, enc)
        self.stats.decoder_s += time.perf_counter() - t
        self.stats.decoder_tokens += 1
        return out

    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        t = time.perf_counter()
        out = self.inner.step(tokens, state)
        self.stats.decoder_s += time.perf_counter() - t
        self.stats.decoder_tokens += 1
        return out

    def reorder(self, state: Any, index: np.ndarray) -> Any:
        return self.inner.reorder(state, index)
