"""Map a CTranslate2 WhisperSpec onto transformers' WhisperForConditionalGeneration names.

Pure numpy (no torch) so it can be unit-tested cheaply and reused by anything that
wants Whisper weights in the transformers layout.

CTranslate2 stores attention projections fused: self-attention `linear_0` is
[q; k; v] stacked on the output axis, cross-attention `linear_0` is q and
`linear_1` is [k; v]; the output projection is the last `linear_*`. Whisper's k
projection has no bias; CTranslate2 stores a zero one. A non-zero k bias would be
dropped safely: it adds the same constant to every score of a query row, which
softmax cancels exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ct2_reader import Ct2Model

WHISPER_SPEC_NAME = "WhisperSpec"
# Activation enum of ctranslate2 (common_spec.Activation): GELU = 3.
_CT2_GELU = 3


@dataclass
class WhisperDims:
    """Architecture numbers read off the checkpoint tensors (not trusted from names)."""

    n_mels: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    encoder_ffn: int
    decoder_ffn: int
    vocab_size: int
    max_source_positions: int
    max_target_positions: int

    @property
    def multilingual(self) -> bool:
        # English-only checkpoints have 51864 tokens, multilingual ones 51865 (+1 for v3).
        return self.vocab_size >= 51865


@dataclass
class WhisperTokens:
    """Special token ids, looked up by text in tokenizer.json (they move between versions)."""

    eos: int
    sot: int
    no_timestamps: int
    transcribe: int | None
    translate: int | None
    lang_to_id: dict[str, int] = field(default_factory=dict)


def _count_layers(model: Ct2Model, prefix: str) -> int:
    n = 0
    while model.has(f"{prefix}/layer_{n}/ffn/linear_0/weight"):
        n += 1
    if n == 0:
        raise ValueError(f"checkpoint has no {prefix} layers: not a Whisper model")
    return n


def whisper_dims(model: Ct2Model) -> WhisperDims:
    """Derive the Whisper architecture from a parsed WhisperSpec checkpoint."""
    if model.spec_name != WHISPER_SPEC_NAME:
        raise ValueError(
            f"checkpoint spec is {model.spec_name!r}, expected {WHISPER_SPEC_NAME!r} "
            "(only CTranslate2 Whisper checkpoints can be converted)"
        )
    if model.has("decoder/activation") and model.scalar("decoder/activation") != _CT2_GELU:
        raise NotImplementedError("only GELU Whisper checkpoints are supported")
    conv1 = model.raw("encoder/conv1/weight")
    if conv1.ndim != 3 or conv1.shape[2] != 3:
        raise ValueError(f"encoder/conv1/weight has shape {conv1.shape}, expected [d, n_mels, 3]")
    d_model, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    emb = model.raw("decoder/embeddings/weight")
    return WhisperDims(
        n_mels=n_mels,
        d_model=d_model,
        encoder_layers=_count_layers(model, "encoder"),
        decoder_layers=_count_layers(model, "decoder"),
        encoder_heads=int(model.scalar("encoder/num_heads")),
        decoder_heads=int(model.scalar("decoder/num_heads")),
        encoder_ffn=int(model.raw("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn=int(model.raw("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        vocab_size=int(emb.shape[0]),
        max_source_positions=int(model.raw("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(model.raw("decoder/position_encodings/encodings").shape[0]),
    )


def whisper_tokens(tokenizer_json: Path, ct2_config: dict) -> WhisperTokens:
    """Special token ids from tokenizer.json (+ language ids from CTranslate2's config.json)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))

    def need(text: str) -> int:
        tid = tok.token_to_id(text)
        if tid is None:
            raise ValueError(f"{tokenizer_json} has no {text!r} token: not a Whisper tokenizer")
        return tid

    lang_to_id = {}
    for tid in ct2_config.get("lang_ids", []):
        text = tok.id_to_token(int(tid))
        if text is None:
            raise ValueError(f"config.json lang_ids names id {tid}, absent from the tokenizer")
        lang_to_id[text] = int(tid)
    return WhisperTokens(
        eos=need("<|endoftext|>"),
        sot=need("<|startoftranscript|>"),
        no_timestamps=need("<|notimestamps|>"),
        transcribe=tok.token_to_id("<|transcribe|>"),
        translate=tok.token_to_id("<|translate|>"),
        lang_to_id=lang_to_id,
    )


def read_ct2_config(checkpoint_dir: Path) -> dict:
    path = checkpoint_dir / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def _linear(model: Ct2Model, scope: str) -> tuple[np.ndarray, np.ndarray | None]:
    w = model.float32(f"{scope}/weight")
    b = model.float32(f"{scope}/bias") if model.has(f"{scope}/bias") else None
    return w, b


def _put_linear(
    out: dict[str, np.ndarray], name: str, w: np.ndarray, b: np.ndarray | None, bias: bool = True
) -> None:
    out[f"{name}.weight"] = w
    if bias:
        out[f"{name}.bias"] = b if b is not None else np.zeros(w.shape[0], np.float32)


def _put_norm(out: dict[str, np.ndarray], name: str, model: Ct2Model, scope: str) -> None:
    out[f"{name}.weight"] = model.float32(f"{scope}/gamma")
    out[f"{name}.bias"] = model.float32(f"{scope}/beta")


def _split_rows(w: np.ndarray, b: np.ndarray | None, parts: int, scope: str):
    if w.shape[0] % parts:
        raise ValueError(f"{scope}/weight rows {w.shape[0]} do not split into {parts} parts")
    ws = np.split(w, parts, axis=0)
    bs = np.split(b, parts) if b is not None else [None] * parts
    return list(zip(ws, bs, strict=True))


def _attention(
    out: dict[str, np.ndarray], model: Ct2Model, scope: str, name: str, cross: bool
) -> None:
    if cross:
        q = _linear(model, f"{scope}/linear_0")
        k, v = _split_rows(*_linear(model, f"{scope}/linear_1"), 2, f"{scope}/linear_1")
        o = _linear(model, f"{scope}/linear_2")
    else:
        q, k, v = _split_rows(*_linear(model, f"{scope}/linear_0"), 3, f"{scope}/linear_0")
        o = _linear(model, f"{scope}/linear_1")
    _put_linear(out, f"{name}.q_proj", *q)
    _put_linear(out, f"{name}.k_proj", k[0], None, bias=False)
    _put_linear(out, f"{name}.v_proj", *v)
    _put_linear(out, f"{name}.out_proj", *o)


def _layer(out, model: Ct2Model, scope: str, name: str, decoder: bool) -> None:
    _attention(out, model, f"{scope}/self_attention", f"{name}.self_attn", cross=False)
    _put_norm(out, f"{name}.self_attn_layer_norm", model, f"{scope}/self_attention/layer_norm")
    if decoder:
        _attention(out, model, f"{scope}/attention", f"{name}.encoder_attn", cross=True)
        _put_norm(out, f"{name}.encoder_attn_layer_norm", model, f"{scope}/attention/layer_norm")
    _put_linear(out, f"{name}.fc1", *_linear(model, f"{scope}/ffn/linear_0"))
    _put_linear(out, f"{name}.fc2", *_linear(model, f"{scope}/ffn/linear_1"))
    _put_norm(out, f"{name}.final_layer_norm", model, f"{scope}/ffn/layer_norm")


def to_transformers_state_dict(model: Ct2Model, dims: WhisperDims) -> dict[str, np.ndarray]:
    """float32 numpy state dict with WhisperForConditionalGeneration parameter names."""
    out: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for i in (1, 2):
        out[f"{enc}.conv{i}.weight"] = model.float32(f"encoder/conv{i}/weight")
        out[f"{enc}.conv{i}.bias"] = model.float32(f"encoder/conv{i}/bias")
    out[f"{enc}.embed_positions.weight"] = model.float32("encoder/position_encodings/encodings")
    for i in range(dims.encoder_layers):
        _layer(out, model, f"encoder/layer_{i}", f"{enc}.layers.{i}", decoder=False)
    _put_norm(out, f"{enc}.layer_norm", model, "encoder/layer_norm")

    out[f"{dec}.embed_tokens.weight"] = model.float32("decoder/embeddings/weight")
    out[f"{dec}.embed_positions.weight"] = model.float32("decoder/position_encodings/encodings")
    for i in range(dims.decoder_layers):
        _layer(out, model, f"decoder/layer_{i}", f"{dec}.layers.{i}", decoder=True)
    _put_norm(out, f"{dec}.layer_norm", model, "decoder/layer_norm")
    proj = model.float32("decoder/projection/weight")
    if not np.array_equal(proj, out[f"{dec}.embed_tokens.weight"]):
        raise NotImplementedError(
            "decoder/projection/weight differs from the token embeddings; transformers' "
            "Whisper ties them, so this checkpoint cannot be represented"
        )
    if model.has("decoder/projection/bias") and np.any(model.float32("decoder/projection/bias")):
        raise NotImplementedError("a non-zero output projection bias is not supported")
    out["proj_out.weight"] = proj
    return out
