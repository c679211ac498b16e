"""A scripted Whisper DecoderBackend for fuzzing the long-form transcription path.

Why scripted: the fuzz tests check the audio -> windows -> features ->
decoding -> segments plumbing on hundreds of files, which a real model would
make slow and whose text could not be predicted. This stand-in "hears" energy:

* each run of loud mel frames becomes one segment with the word " speech",
  stamped at the run's start and end (Whisper's 20 ms timestamp steps); a run
  that reaches the window edge is left open (no closing timestamp) so the
  transcriber must seek back to it, as with a real model;
* a silent window makes it *hallucinate* like real Whisper does (" Thank
  you.") but with the no-speech token likely and low-confidence text, so only
  the transcriber's no-speech rule stands between silence and invented text;
* non-finite features give NaN logits, as a real network would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xdna_ep.whisper.features import N_FRAMES
from xdna_ep.whisper.tokenizer import WhisperTokenizer

LOUD = 0.0          # log-mel value (Whisper's scaling) above which a frame is "speech"
WORD = " speech"
HALLUCINATION = " Thank you."


class EnergyBackend:
    """DecoderBackend whose output is a function of frame energy only."""

    n_mels = 80
    max_target_positions = 448

    def __init__(self, tok: WhisperTokenizer) -> None:
        self.tok = tok
        self.n_vocab = tok.vocab_size
        self.windows = 0            # encoder calls (one per 30 s window)
        self.saw_non_finite = False

    # -- DecoderBackend -------------------------------------------------------------
    def encode(self, mel: np.ndarray) -> np.ndarray:
        self.windows += 1
        return np.array(mel, copy=True)

    def start(self, tokens: np.ndarray, enc: np.ndarray) -> tuple[np.ndarray, Any]:
        plan, confident, no_speech = self._plan(enc)
        logits = np.zeros((1, tokens.shape[1], self.n_vocab), np.float32)
        if not np.isfinite(enc).all():
            self.saw_non_finite = True
            logits[:] = np.nan
            return logits, (plan, 1, False)
        logits[0, -1] = self._row(plan[0], confident)
        # the no-speech probability is read at the <|startoftranscript|> position (the
        # last one for English-only models); sampling never picks the no-speech token
        sot_index = int(np.flatnonzero(tokens[0] == self.tok.sot)[0])
        logits[0, sot_index, self.tok.no_speech] = 14.0 if no_speech else -10.0
        return logits, (plan, 1, confident)

    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        plan, pos, confident = state
        if plan is None:
            out = np.full((tokens.shape[0], 1, self.n_vocab), np.nan, np.float32)
            return out, state
        row = self._row(plan[min(pos, len(plan) - 1)], confident)
        return np.repeat(row[None, None], tokens.shape[0], axis=0), (plan, pos + 1, confident)

    def reorder(self, state: Any, index: np.ndarray) -> Any:
        return state

    # -- the script -------------------------------------------------------------------
    def _row(self, token: int, confident: bool) -> np.ndarray:
        """Logits making `token` the argmax; unconfident rows are nearly flat, so
        the average log-probability falls below Whisper's -1.0 threshold."""
        row = np.full(self.n_vocab, -10.0 if confident else 0.0, np.float32)
        row[token] = 20.0 if confident else 1.0
        return row

    def _plan(self, enc: np.ndarray) -> tuple[list[int] | None, bool, bool]:
        """(tokens to emit ending in EOT, confident?, no-speech likely?)."""
        if not np.isfinite(enc).all():
            return None, False, False
        mel = enc[0]
        loud = mel.max(axis=0)
        # Whisper's features are relative to the window's loudest frame (floor at
        # max - 8 decades), so "speech" is loud in absolute terms and near the top
        active = np.append((loud > LOUD) & (loud > loud.max() - 1.0), False)
        runs: list[tuple[int, int]] = []
        start = None
        for i, a in enumerate(active):
            if a and start is None:
                start = i
            elif not a and start is not None:
                runs.append((start, i))
                start = None
        tb = self.tok.timestamp_begin
        word = self.tok.encode(WORD)
        if not runs:
            return [tb, *self.tok.encode(HALLUCINATION), tb + 100, self.tok.eot], False, True
        plan: list[int] = []
        for s, e in runs:
            first = s // 2 if plan else min(s // 2, 50)  # first stamp must be <= 1 s
            if e >= N_FRAMES - 1:
                plan += [tb + first, *word]   # cut at the window edge: left open
                break
            end = max(min(e // 2, 1500), first + 1)
            plan += [tb + first, *word, tb + end]
        return plan + [self.tok.eot], True, False
