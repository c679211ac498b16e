"""Whisper's tokenizer: text tokens from tokenizer.json, special ids from config.

Timestamp tokens are not listed in the CTranslate2/HF tokenizer.json: they are
the ids after <|notimestamps|>, one per 20 ms, so they are derived here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer

LANGUAGE_NAMES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
}


@dataclass
class WhisperTokenizer:
    tokenizer: Tokenizer
    suppress_ids: tuple[int, ...] = ()
    suppress_ids_begin: tuple[int, ...] = ()
    lang_ids: tuple[int, ...] = ()
    vocab_size: int = 0
    _special: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_files(cls, tokenizer_json: str | Path, config_json: str | Path | None = None,
                   vocab_size: int = 0) -> WhisperTokenizer:
        tok = Tokenizer.from_file(str(tokenizer_json))
        cfg = json.loads(Path(config_json).read_text()) if config_json else {}
        special = {t.content: t_id for t_id, t in tok.get_added_tokens_decoder().items()}
        # 1501 timestamp tokens (0.00 .. 30.00 s) follow the listed vocabulary.
        n_vocab = vocab_size or tok.get_vocab_size(with_added_tokens=True) + 1501
        return cls(tok, tuple(cfg.get("suppress_ids", ())),
                   tuple(cfg.get("suppress_ids_begin", ())), tuple(cfg.get("lang_ids", ())),
                   n_vocab, special)

    def special(self, content: str) -> int:
        try:
            return self._special[content]
        except KeyError:
            raise KeyError(f"tokenizer has no special token {content!r}") from None

    @cached_property
    def eot(self) -> int:
        return self.special("<|endoftext|>")

    @cached_property
    def sot(self) -> int:
        return self.special("<|startoftranscript|>")

    @cached_property
    def sot_prev(self) -> int:
        return self.special("<|startofprev|>")

    @cached_property
    def transcribe(self) -> int:
        return self.special("<|transcribe|>")

    @cached_property
    def translate(self) -> int:
        return self.special("<|translate|>")

    @cached_property
    def no_timestamps(self) -> int:
        return self.special("<|notimestamps|>")

    @cached_property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1

    @cached_property
    def no_speech(self) -> int:
        for name in ("<|nospeech|>", "<|nocaptions|>"):
            if name in self._special:
                return self._special[name]
        raise KeyError("tokenizer has no no-speech token")

    @property
    def multilingual(self) -> bool:
        """Whisper's own rule: multilingual checkpoints have >= 51865 tokens."""
        return self.vocab_size >= 51865

    @cached_property
    def language_tokens(self) -> dict[str, int]:
        """language code -> token id: the <|xx|> specials between sot and translate."""
        out = {}
        for t_id in range(self.sot + 1, self.translate):
            content = self.tokenizer.id_to_token(t_id) or ""
            if content.startswith("<|") and content.endswith("|>"):
                out[content[2:-2]] = t_id
        return out

    def sot_sequence(self, language: str | None = None, task: str = "transcribe",
                     timestamps: bool = True) -> list[int]:
        seq = [self.sot]
        if self.multilingual:
            lang = language or "en"
            if lang not in self.language_tokens:
                raise ValueError(f"unknown language {lang!r} for this model "
                                 f"(known: {', '.join(sorted(self.language_tokens))})")
            seq += [self.language_tokens[lang],
                    self.translate if task == "translate" else self.transcribe]
        elif language not in (None, "en"):
            raise ValueError(f"this is an English-only model; --language {language} "
                             "needs a multilingual checkpoint")
        if not timestamps:
            seq.append(self.no_timestamps)
        return seq

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        """Text of the non-special tokens (timestamps and specials dropped)."""
        return self.tokenizer.decode([i for i in ids if i < self.eot], skip_special_tokens=True)

    def timestamp_seconds(self, token: int) -> float:
        return (token - self.timestamp_begin) * 0.02
