"""Build small random CTranslate2 Whisper checkpoints (model.bin, config.json,
tokenizer.json, vocabulary.txt) with the same variable layout as real ones.

Why: the converter must handle any Whisper size, English-only or multilingual,
and float32/float16/int8 storage; real checkpoints of every kind cannot ship with
the project, so tests build tiny ones here (and ctranslate2 itself can load them,
which makes it an independent judge of the conversion).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xdna_ep.models.ct2_reader import write_ct2_model

ENGLISH_VOCAB = 51864
MULTILINGUAL_VOCAB = 51865


@dataclass
class SyntheticWhisper:
    d_model: int = 16
    heads: int = 2
    encoder_layers: int = 1
    decoder_layers: int = 2
    ffn: int = 32
    n_mels: int = 80
    multilingual: bool = False
    n_languages: int = 3
    encoder_positions: int = 1500
    decoder_positions: int = 448
    dtype: str = "float16"  # float32 | float16 | int8 (int8: linear weights quantized)
    seed: int = 0

    @property
    def vocab_size(self) -> int:
        return MULTILINGUAL_VOCAB if self.multilingual else ENGLISH_VOCAB


def special_tokens(spec: SyntheticWhisper) -> dict[str, int]:
    """Whisper's special-token ids for the chosen vocabulary (as in the real tokenizers)."""
    eos = 50256 if not spec.multilingual else 50257
    sot = eos + 1
    tokens = {"<|endoftext|>": eos, "<|startoftranscript|>": sot}
    langs = ["en", "de", "fr", "es", "zh"][: spec.n_languages]
    for i, lang in enumerate(langs):
        tokens[f"<|{lang}|>"] = sot + 1 + i
    base = spec.vocab_size - 1506  # <|transcribe|>; ids counted back from the end as in Whisper
    tokens.update({
        "<|translate|>": base - 1,
        "<|transcribe|>": base,
        "<|startoflm|>": base + 1,
        "<|startofprev|>": base + 2,
        "<|nocaptions|>": base + 3,
        "<|notimestamps|>": base + 4,
    })
    return tokens


def _vocabulary(spec: SyntheticWhisper) -> list[str]:
    specials = {v: k for k, v in special_tokens(spec).items()}
    vocab = []
    for i in range(spec.vocab_size):
        if i in specials:
            vocab.append(specials[i])
        elif i >= spec.vocab_size - 1501:
            vocab.append(f"<|{(i - (spec.vocab_size - 1501)) * 0.02:.2f}|>")
        elif spec.multilingual and i == specials_eos(spec) - 1:
            # ctranslate2 recognises a multilingual vocabulary by its empty token
            # (as in the real multilingual Whisper vocabulary).
            vocab.append("")
        else:
            vocab.append(f"w{i}")
    return vocab


def specials_eos(spec: SyntheticWhisper) -> int:
    return special_tokens(spec)["<|endoftext|>"]


def _tokenizer_json(vocab: list[str], specials: dict[str, int]) -> dict:
    """A WordLevel tokenizer.json (enough for id<->text and special-token lookups)."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for t, i in sorted(specials.items(), key=lambda kv: kv[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(vocab)},
                  "unk_token": "<|endoftext|>"},
    }


def build_variables(spec: SyntheticWhisper) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Random weights in CTranslate2's WhisperSpec layout (float32 master copy)."""
    rng = np.random.default_rng(spec.seed)
    d, f = spec.d_model, spec.ffn

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def vec(n: int, scale: float = 0.05) -> np.ndarray:
        return (rng.standard_normal(n) * scale).astype(np.float32)

    v: dict[str, np.ndarray] = {}

    def linear(scope: str, rows: int, cols: int, zero_rows: slice | None = None) -> None:
        v[f"{scope}/weight"] = mat(rows, cols)
        b = vec(rows)
        if zero_rows is not None:
            b[zero_rows] = 0.0  # Whisper's k projection has no bias
        v[f"{scope}/bias"] = b

    def norm(scope: str) -> None:
        v[f"{scope}/gamma"] = (1.0 + vec(d)).astype(np.float32)
        v[f"{scope}/beta"] = vec(d)

    def layer(scope: str, decoder: bool) -> None:
        linear(f"{scope}/self_attention/linear_0", 3 * d, d, zero_rows=slice(d, 2 * d))
        linear(f"{scope}/self_attention/linear_1", d, d)
        norm(f"{scope}/self_attention/layer_norm")
        if decoder:
            linear(f"{scope}/attention/linear_0", d, d)
            linear(f"{scope}/attention/linear_1", 2 * d, d, zero_rows=slice(0, d))
            linear(f"{scope}/attention/linear_2", d, d)
            norm(f"{scope}/attention/layer_norm")
        linear(f"{scope}/ffn/linear_0", f, d)
        linear(f"{scope}/ffn/linear_1", d, f)
        norm(f"{scope}/ffn/layer_norm")

    v["encoder/conv1/weight"] = (rng.standard_normal((d, spec.n_mels, 3)) * 0.1).astype(np.float32)
    v["encoder/conv1/bias"] = vec(d)
    v["encoder/conv2/weight"] = (rng.standard_normal((d, d, 3)) * 0.1).astype(np.float32)
    v["encoder/conv2/bias"] = vec(d)
    v["encoder/position_encodings/encodings"] = mat(spec.encoder_positions, d) * 0.1
    for i in range(spec.encoder_layers):
        layer(f"encoder/layer_{i}", decoder=False)
    norm("encoder/layer_norm")
    v["encoder/num_heads"] = np.array(spec.heads, np.int16)

    v["decoder/embeddings/weight"] = mat(spec.vocab_size, d)
    v["decoder/position_encodings/encodings"] = mat(spec.decoder_positions, d) * 0.1
    for i in range(spec.decoder_layers):
        layer(f"decoder/layer_{i}", decoder=True)
    norm("decoder/layer_norm")
    v["decoder/num_heads"] = np.array(spec.heads, np.int16)
    v["decoder/activation"] = np.array(3, np.int8)  # GELU
    v["decoder/alibi"] = np.array(0, np.int8)
    v["decoder/alignment_heads"] = np.array(1, np.int16)
    v["decoder/alignment_layer"] = np.array(-1, np.int16)
    v["decoder/pre_norm"] = np.array(1, np.int8)
    v["decoder/scale_embeddings"] = np.array(0, np.int8)
    v["decoder/start_from_zero_embedding"] = np.array(0, np.int8)
    return v, {"decoder/projection/weight": "decoder/embeddings/weight"}


def store_variables(variables: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """Cast float tensors as CTranslate2 would store them for `dtype`."""
    if dtype not in ("float32", "float16", "int8"):
        raise ValueError(f"dtype must be float32, float16 or int8, got {dtype!r}")
    out = {}
    for name, value in variables.items():
        if value.dtype != np.float32:
            out[name] = value
        elif dtype == "int8" and name.endswith("/weight") and "/linear_" in name:
            amax = np.abs(value).max(axis=1)
            amax[amax == 0] = 127.0
            scale = (127.0 / amax).astype(np.float32)
            out[name] = np.rint(value * scale[:, None]).astype(np.int8)
            out[name + "_scale"] = scale
        elif dtype in ("float16", "int8"):
            out[name] = value.astype(np.float16)
        else:
            out[name] = value
    return out


def write_synthetic_checkpoint(folder: str | Path, spec: SyntheticWhisper | None = None) -> Path:
    """Write a complete CTranslate2 Whisper folder; returns it."""
    spec = spec or SyntheticWhisper()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variables, aliases = build_variables(spec)
    write_ct2_model(folder / "model.bin", "WhisperSpec", store_variables(variables, spec.dtype),
                    aliases)
    specials = special_tokens(spec)
    vocab = _vocabulary(spec)
    (folder / "vocabulary.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer.json").write_text(json.dumps(_tokenizer_json(vocab, specials)),
                                           encoding="utf-8")
    lang_ids = [i for t, i in specials.items() if len(t) <= 7 and t[2:-2].isalpha()
                and t[2:-2].islower() and len(t[2:-2]) == 2]
    config = {
        "alignment_heads": [[spec.decoder_layers - 1, h] for h in range(spec.heads)],
        "lang_ids": sorted(lang_ids) if spec.multilingual else [],
        "suppress_ids": [1, 2, specials["<|startoftranscript|>"]],
        "suppress_ids_begin": [220, specials["<|endoftext|>"]],
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder
