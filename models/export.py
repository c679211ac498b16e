"""CTranslate2 Whisper checkpoint -> transformers folder -> ONNX via Optimum's exporter.

This is the only module of xdna-ep that imports torch/transformers/optimum (the
`export` extra), and it does so inside functions, so importing xdna_ep.models stays
cheap and torch-free. Nothing here touches a model hub: HF_HUB_OFFLINE is forced on
and every config/tokenizer/feature-extractor file is built from the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from .ct2_reader import read_ct2_model
from .whisper_layout import (
    WhisperDims,
    WhisperTokens,
    read_ct2_config,
    to_transformers_state_dict,
    whisper_dims,
    whisper_tokens,
)

# Files ORTModelForSpeechSeq2Seq / our runtime need beside the ONNX graphs.
ONNX_FILES = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
OPTIONAL_ONNX_FILES = ("decoder_model_merged.onnx",)
EXPORT_TASK = "automatic-speech-recognition-with-past"
EXPORT_OPSET = 18


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _require_export_extra():
    try:
        import optimum.exporters.onnx  # noqa: F401
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            "converting a CTranslate2 checkpoint needs the export extra: "
            "pip install 'xdna-ep[export]' (torch, transformers, optimum, optimum-onnx); "
            f"missing: {exc.name}"
        ) from exc
    return torch, transformers


def _hf_config(transformers, dims: WhisperDims, tokens: WhisperTokens, ct2_config: dict):
    return transformers.WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.n_mels,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_heads,
        decoder_attention_heads=dims.decoder_heads,
        encoder_ffn_dim=dims.encoder_ffn,
        decoder_ffn_dim=dims.decoder_ffn,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        activation_function="gelu",
        scale_embedding=False,
        pad_token_id=tokens.eos,
        bos_token_id=tokens.eos,
        eos_token_id=tokens.eos,
        decoder_start_token_id=tokens.sot,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        architectures=["WhisperForConditionalGeneration"],
    )


def _generation_config(transformers, dims: WhisperDims, tokens: WhisperTokens, ct2_config):
    gen = transformers.GenerationConfig(
        decoder_start_token_id=tokens.sot,
        bos_token_id=tokens.eos,
        eos_token_id=tokens.eos,
        pad_token_id=tokens.eos,
        max_length=dims.max_target_positions,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        no_timestamps_token_id=tokens.no_timestamps,
        is_multilingual=dims.multilingual,
        alignment_heads=[list(p) for p in ct2_config.get("alignment_heads", [])],
    )
    if dims.multilingual:
        gen.lang_to_id = dict(tokens.lang_to_id)
        gen.task_to_id = {
            k: v for k, v in (("transcribe", tokens.transcribe), ("translate", tokens.translate))
            if v is not None
        }
    return gen


def build_transformers_folder(checkpoint_dir: Path, out_dir: Path) -> dict:
    """Write a transformers WhisperForConditionalGeneration folder from a CT2 checkpoint.

    Returns a summary (architecture numbers) for the conversion manifest.
    """
    _offline()
    torch, transformers = _require_export_extra()
    checkpoint_dir = Path(checkpoint_dir)
    tokenizer_json = checkpoint_dir / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir} has no tokenizer.json")
    ct2 = read_ct2_model(checkpoint_dir / "model.bin")
    dims = whisper_dims(ct2)
    ct2_config = read_ct2_config(checkpoint_dir)
    tokens = whisper_tokens(tokenizer_json, ct2_config)
    if not dims.multilingual:
        # English-only CTranslate2 configs still list lang_ids (shifted by one); unused.
        tokens.lang_to_id = {}
    state = to_transformers_state_dict(ct2, dims)
    del ct2

    config = _hf_config(transformers, dims, tokens, ct2_config)
    with torch.device("cpu"):
        model = transformers.WhisperForConditionalGeneration(config).eval()
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # proj_out is tied to embed_tokens, so transformers may list it as missing.
    missing = [m for m in missing if m != "proj_out.weight"]
    if missing or unexpected:
        raise RuntimeError(
            f"weight mapping mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.generation_config = _generation_config(transformers, dims, tokens, ct2_config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    tokenizer = transformers.WhisperTokenizerFast(tokenizer_file=str(tokenizer_json))
    tokenizer.save_pretrained(out_dir)
    shutil.copyfile(tokenizer_json, out_dir / "tokenizer.json")
    transformers.WhisperFeatureExtractor(feature_size=dims.n_mels).save_pretrained(out_dir)
    return {"dims": asdict(dims), "tokens": asdict(tokens)}


def export_onnx(hf_dir: Path, onnx_dir: Path) -> list[str]:
    """Run Optimum's ONNX exporter on a local transformers folder (CPU, float32)."""
    _offline()
    _require_export_extra()
    from optimum.exporters.onnx import main_export

    main_export(
        str(hf_dir),
        output=str(onnx_dir),
        task=EXPORT_TASK,
        opset=EXPORT_OPSET,
        device="cpu",
        local_files_only=True,
        library_name="transformers",
        do_validation=False,
    )
    missing = [f for f in ONNX_FILES if not (onnx_dir / f).is_file()]
    if missing:
        raise RuntimeError(f"Optimum's exporter did not write {missing} in {onnx_dir}")
    return [f for f in ONNX_FILES + OPTIONAL_ONNX_FILES if (onnx_dir / f).is_file()]


@contextlib.contextmanager
def _export_chatter_to_debug_log() -> Iterator[None]:
    """transformers' tracer/config warnings and Optimum's log lines during the
    one-time conversion go to xdna_ep's debug log instead of the terminal: they
    are inherent to tracing Whisper, say nothing the user can act on, and would
    bury the transcript of a first run. Errors still raise."""
    log = logging.getLogger("xdna_ep.models")
    # import first: both libraries set their root logger's level on first use
    with contextlib.suppress(ImportError):
        import optimum.exporters.onnx  # noqa: F401
        import transformers  # noqa: F401
    loggers = [logging.getLogger(n) for n in ("transformers", "optimum", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for w in caught:
            log.debug("export: %s: %s", w.category.__name__, w.message)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def convert_checkpoint(checkpoint_dir: Path, onnx_dir: Path, work_dir: Path) -> dict:
    """Full conversion into `onnx_dir` (which must not exist yet); returns the manifest body."""
    hf_dir = work_dir / "transformers"
    with _export_chatter_to_debug_log():
        summary = build_transformers_folder(checkpoint_dir, hf_dir)
        files = export_onnx(hf_dir, onnx_dir)
    # Keep the CTranslate2 config (suppression lists, language ids) for the decoder loop.
    ct2_config = checkpoint_dir / "config.json"
    if ct2_config.is_file():
        shutil.copyfile(ct2_config, onnx_dir / "ct2_config.json")
    # The checkpoint's own tokenizer.json, byte for byte (transformers re-serialises it).
    shutil.copyfile(checkpoint_dir / "tokenizer.json", onnx_dir / "tokenizer.json")
    for name in ("generation_config.json", "preprocessor_config.json"):
        if not (onnx_dir / name).is_file() and (hf_dir / name).is_file():
            shutil.copyfile(hf_dir / name, onnx_dir / name)
    summary["onnx_files"] = files
    return summary


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
