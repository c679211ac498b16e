"""Word error rate (jiwer) after Whisper-style light normalisation."""

from __future__ import annotations

import re

import jiwer


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (apostrophes joined: don't -> dont)."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0  # every reference word deleted
    return float(jiwer.wer(ref, hyp))
