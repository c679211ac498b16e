"""DecoderBackend over ONNX Runtime sessions of an Optimum Whisper export.

The export is a folder with encoder_model.onnx, decoder_model.onnx and
decoder_with_past_model.onnx (Optimum's names). Sessions are created by a
caller-supplied factory, so the very same backend runs on ONNX Runtime's CPU
provider (the FP32 reference path) or through xdna-ep's provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SessionFactory = Callable[[Path], Any]  # model path -> object with run()/get_inputs()


@dataclass
class DecoderState:
    """Self-attention KV cache per layer plus the fixed cross-attention KV."""

    past: dict[str, np.ndarray]  # "past_key_values.{i}.{decoder,encoder}.{key,value}"
    length: int  # tokens already in the self-attention cache
    encoder_states: np.ndarray


class OnnxWhisperBackend:
    def __init__(self, model_dir: str | Path, session_factory: SessionFactory) -> None:
        d = Path(model_dir)
        missing = [f for f in ("encoder_model.onnx", "decoder_model.onnx",
                               "decoder_with_past_model.onnx") if not (d / f).exists()]
        if missing:
            raise FileNotFoundError(f"{d} is not a Whisper ONNX export: missing "
                                    f"{', '.join(missing)}")
        cfg = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else {}
        self.model_dir = d
        self.config = cfg
        self.n_mels = int(cfg.get("num_mel_bins", 80))
        self.max_target_positions = int(cfg.get("max_target_positions", 448))
        self.encoder = session_factory(d / "encoder_model.onnx")
        self.decoder = session_factory(d / "decoder_model.onnx")
        self.decoder_with_past = session_factory(d / "decoder_with_past_model.onnx")
        self._dec_inputs = {i.name for i in self.decoder.get_inputs()}
        self._past_inputs = {i.name for i in self.decoder_with_past.get_inputs()}
        self._enc_input = self.encoder.get_inputs()[0].name
        vocab = cfg.get("vocab_size")
        out_shape = self.decoder.get_outputs()[0].shape
        self.n_vocab = int(vocab or out_shape[-1])

    # -- DecoderBackend -------------------------------------------------------------------
    def encode(self, mel: np.ndarray) -> np.ndarray:
        mel = np.ascontiguousarray(mel, dtype=np.float32)
        return self.encoder.run(None, {self._enc_input: mel})[0]

    def _feed(self, names: set[str], tokens: np.ndarray, enc: np.ndarray,
              past_len: int) -> dict[str, np.ndarray]:
        feed: dict[str, np.ndarray] = {"input_ids": tokens.astype(np.int64)}
        if "encoder_hidden_states" in names:
            feed["encoder_hidden_states"] = enc
        if "cache_position" in names:
            feed["cache_position"] = np.arange(past_len, past_len + tokens.shape[1],
                                               dtype=np.int64)
        if "use_cache_branch" in names:
            feed["use_cache_branch"] = np.array([past_len > 0])
        return feed

    def _collect(self, session: Any, outputs: list[np.ndarray], old: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        names = [o.name for o in session.get_outputs()]
        result = dict(zip(names, outputs, strict=True))
        past = dict(old)
        for name, value in result.items():
            if name.startswith("present."):
                past["past_key_values." + name[len("present."):]] = value
        return result["logits"], past

    def start(self, tokens: np.ndarray, encoder_states: np.ndarray
              ) -> tuple[np.ndarray, DecoderState]:
        enc = np.ascontiguousarray(encoder_states, dtype=np.float32)
        if tokens.shape[0] != enc.shape[0]:
            enc = np.repeat(enc[:1], tokens.shape[0], axis=0)
        feed = self._feed(self._dec_inputs, tokens, enc, 0)
        outs = self.decoder.run(None, feed)
        logits, past = self._collect(self.decoder, outs, {})
        return logits, DecoderState(past, tokens.shape[1], enc)

    def step(self, tokens: np.ndarray, state: DecoderState) -> tuple[np.ndarray, DecoderState]:
        feed = self._feed(self._past_inputs, tokens, state.encoder_states, state.length)
        for name in self._past_inputs:
            if name.startswith("past_key_values."):
                feed[name] = state.past[name]
        outs = self.decoder_with_past.run(None, feed)
        logits, past = self._collect(self.decoder_with_past, outs, state.past)
        return logits, DecoderState(past, state.length + tokens.shape[1], state.encoder_states)

    def reorder(self, state: DecoderState, index: np.ndarray) -> DecoderState:
        past = {k: np.ascontiguousarray(v[index]) for k, v in state.past.items()}
        return DecoderState(past, state.length,
                            np.ascontiguousarray(state.encoder_states[index]))
