"""A deliberately plain greedy Whisper decoder on ONNX Runtime's CPU provider.

Why it exists: it is the yardstick that says "the ONNX export is the same model as
the CTranslate2 checkpoint" (same greedy tokens on real speech), without any of
the product's decoding rules (timestamps, fallback, beam search) in the way.
It applies exactly the suppression CTranslate2 applies by default for Whisper:
config.json's suppress_ids at every step and suppress_ids_begin at the first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class GreedyResult:
    tokens: list[int]  # generated tokens, prompt and end-of-text excluded
    text: str


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def default_prompt(onnx_dir: Path, language: str = "en") -> list[int]:
    """<|startoftranscript|> [<|lang|> <|transcribe|>] <|notimestamps|> from the export."""
    gen = json.loads((onnx_dir / "generation_config.json").read_text(encoding="utf-8"))
    prompt = [int(gen["decoder_start_token_id"])]
    if gen.get("is_multilingual"):
        lang_key = f"<|{language}|>"
        if lang_key not in gen.get("lang_to_id", {}):
            raise ValueError(f"language {language!r} is not in this model's lang_to_id")
        prompt += [int(gen["lang_to_id"][lang_key]), int(gen["task_to_id"]["transcribe"])]
    prompt.append(int(gen["no_timestamps_token_id"]))
    return prompt


class GreedyDecoder:
    """Loads the three FP32 graphs once; decode() runs one window.

    Uses encoder_model.onnx, decoder_model.onnx for the prompt and
    decoder_with_past_model.onnx for each following token (so both decoder graphs
    are exercised).
    """

    def __init__(self, onnx_dir: str | Path) -> None:
        from tokenizers import Tokenizer

        self.onnx_dir = Path(onnx_dir)
        ct2 = json.loads((self.onnx_dir / "ct2_config.json").read_text(encoding="utf-8"))
        gen = json.loads((self.onnx_dir / "generation_config.json").read_text(encoding="utf-8"))
        self.eos = int(gen["eos_token_id"])
        self.suppress = np.array(ct2.get("suppress_ids", []), dtype=np.int64)
        self.suppress_begin = np.array(ct2.get("suppress_ids_begin", []), dtype=np.int64)
        self.encoder = _session(self.onnx_dir / "encoder_model.onnx")
        self.decoder = _session(self.onnx_dir / "decoder_model.onnx")
        self.decoder_past = _session(self.onnx_dir / "decoder_with_past_model.onnx")
        self.tokenizer = Tokenizer.from_file(str(self.onnx_dir / "tokenizer.json"))

    def decode(self, features: np.ndarray, prompt: list[int] | None = None,
               max_length: int = 448) -> GreedyResult:
        """Greedy transcript of one [n_mels, 3000] log-mel window."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2:
            raise ValueError(f"features must be [n_mels, frames], got shape {features.shape}")
        prompt = list(prompt) if prompt is not None else default_prompt(self.onnx_dir)
        hidden = self.encoder.run(None, {"input_features": features[None]})[0]

        out_names = [o.name for o in self.decoder.get_outputs()]
        outs = self.decoder.run(None, {"input_ids": np.array([prompt], np.int64),
                                       "encoder_hidden_states": hidden})
        past = {n.replace("present", "past_key_values"): v
                for n, v in zip(out_names[1:], outs[1:], strict=True)}
        logits = outs[0][0, -1]
        past_inputs = {i.name for i in self.decoder_past.get_inputs()}
        past_out_names = [o.name for o in self.decoder_past.get_outputs()]

        tokens: list[int] = []
        while len(prompt) + len(tokens) < max_length:
            scores = logits.astype(np.float32).copy()
            scores[self.suppress] = -np.inf
            if not tokens:
                scores[self.suppress_begin] = -np.inf
            token = int(np.argmax(scores))
            if token == self.eos:
                break
            tokens.append(token)
            feeds = {"input_ids": np.array([[token]], np.int64)}
            feeds.update({k: v for k, v in past.items() if k in past_inputs})
            outs = self.decoder_past.run(None, feeds)
            for name, value in zip(past_out_names[1:], outs[1:], strict=True):
                key = name.replace("present", "past_key_values")
                if ".decoder." in key:  # the cross-attention cache stays as first computed
                    past[key] = value
            logits = outs[0][0, -1]
        return GreedyResult(tokens=tokens,
                            text=self.tokenizer.decode(tokens, skip_special_tokens=True))


def greedy_decode(
    onnx_dir: str | Path,
    features: np.ndarray,
    prompt: list[int] | None = None,
    max_length: int = 448,
) -> GreedyResult:
    """One-shot convenience wrapper around GreedyDecoder."""
    return GreedyDecoder(onnx_dir).decode(features, prompt, max_length)
