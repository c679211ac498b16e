"""Token decoding for Whisper: logit rules, greedy and beam search, fallback.

The model is reached through a small `DecoderBackend` protocol (encoder call,
first decoder pass, one incremental step, beam reordering) so the same
decoding serves ONNX Runtime CPU sessions and xdna-ep sessions alike.
Written from Whisper's published decoding rules (timestamp pairing, initial
timestamp limit, blank suppression, temperature fallback on repetitive or
low-confidence output).
"""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .tokenizer import WhisperTokenizer

MAX_INITIAL_TIMESTAMP = 1.0  # seconds: the first timestamp may not be later than this


class DecoderBackend(Protocol):
    """What decoding needs from a Whisper model implementation."""

    n_vocab: int
    max_target_positions: int

    def encode(self, mel: np.ndarray) -> np.ndarray:
        """[B, n_mels, 3000] float32 -> encoder states [B, 1500, D]."""

    def start(self, tokens: np.ndarray, encoder_states: np.ndarray) -> tuple[np.ndarray, Any]:
        """First decoder pass over [B, T] tokens -> (logits [B, T, V], state)."""

    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One token per sequence [B, 1] -> (logits [B, 1, V], new state)."""

    def reorder(self, state: Any, index: np.ndarray) -> Any:
        """Selects/duplicates sequences of the state (beam search)."""


@dataclass(frozen=True)
class DecodingOptions:
    language: str | None = None
    task: str = "transcribe"
    timestamps: bool = True
    beam_size: int = 1
    best_of: int = 1  # samples drawn per fallback temperature (> 0), best sum log-prob kept
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    sample_len: int = 224
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    suppress_blank: bool = True
    seed: int = 0


@dataclass
class DecodingResult:
    tokens: list[int]
    text: str
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    sum_logprob: float = 0.0
    language: str = "en"
    extra: dict[str, Any] = field(default_factory=dict)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def compression_ratio(text: str) -> float:
    """len(text) / len(zlib(text)): high values mean repetitive (looping) output."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


class LogitRules:
    """Masks applied to each step's logits (in place, on float64 log-probs)."""

    def __init__(self, tok: WhisperTokenizer, n_vocab: int, sample_begin: int,
                 opts: DecodingOptions) -> None:
        self.tok = tok
        self.sample_begin = sample_begin
        self.opts = opts
        suppress = set(tok.suppress_ids) | {tok.sot, tok.transcribe, tok.no_speech}
        for name in ("<|translate|>", "<|startofprev|>", "<|startoflm|>"):
            with contextlib.suppress(KeyError):
                suppress.add(tok.special(name))
        self.suppress = np.array(sorted(i for i in suppress if 0 <= i < n_vocab), dtype=np.int64)
        blank = tok.encode(" ")
        self.begin_suppress = np.array(
            sorted({*blank, tok.eot, *tok.suppress_ids_begin} & set(range(n_vocab))),
            dtype=np.int64)
        self.ts_begin = tok.timestamp_begin
        self.max_initial = int(round(MAX_INITIAL_TIMESTAMP / 0.02))

    def apply(self, logits: np.ndarray, tokens: list[list[int]]) -> None:
        """logits: [B, V] float64, modified in place; tokens: full sequences so far."""
        neg = -np.inf
        logits[:, self.suppress] = neg
        if self.opts.suppress_blank and len(tokens[0]) == self.sample_begin:
            logits[:, self.begin_suppress] = neg
        if not self.opts.timestamps:
            logits[:, self.ts_begin:] = neg
            return
        logits[:, self.tok.no_timestamps] = neg
        tb, eot = self.ts_begin, self.tok.eot
        for b, seq_all in enumerate(tokens):
            seq = seq_all[self.sample_begin:]
            last_ts = len(seq) >= 1 and seq[-1] >= tb
            penult_ts = len(seq) < 2 or seq[-2] >= tb
            if last_ts:
                if penult_ts:  # a pair just closed: text must follow
                    logits[b, tb:] = neg
                else:  # an open timestamp: another timestamp or end
                    logits[b, :eot] = neg
            stamps = [t for t in seq if t >= tb]
            if stamps:
                # never go back in time; a closed pair may not repeat its end
                floor = stamps[-1] if (last_ts and not penult_ts) else stamps[-1] + 1
                logits[b, tb:floor] = neg
            if not seq:  # the first sampled token is a timestamp, no later than 1 s
                logits[b, :tb] = neg
                logits[b, tb + self.max_initial + 1:] = neg
        # if timestamps are jointly more likely than any text token, take a timestamp
        lp = log_softmax(logits)
        ts_lp = np.logaddexp.reduce(lp[:, tb:], axis=-1)
        text_max = lp[:, :tb].max(axis=-1)
        logits[ts_lp > text_max, :tb] = neg


def _rank(candidate: tuple[list[int], float], sample_begin: int) -> float:
    """Sum log-prob per sampled token (openai-whisper's ranking without a length
    penalty), so best_of does not favour the shortest draw."""
    tokens, sum_lp = candidate
    return sum_lp / max(1, len(tokens) - sample_begin)


class Decoder:
    """Decodes one 30 s window given its encoder states."""

    def __init__(self, backend: DecoderBackend, tok: WhisperTokenizer) -> None:
        self.backend = backend
        self.tok = tok

    # -- public -----------------------------------------------------------------------
    def decode(self, encoder_states: np.ndarray, opts: DecodingOptions,
               prompt: list[int] | None = None) -> DecodingResult:
        """Decodes with temperature fallback (Whisper's rule: retry hotter when the
        output is repetitive or unconfident, unless the window looks silent)."""
        result: DecodingResult | None = None
        for temperature in opts.temperatures:
            result = self._decode_once(encoder_states, opts, prompt, temperature)
            needs_fallback = False
            if (opts.compression_ratio_threshold is not None
                    and result.compression_ratio > opts.compression_ratio_threshold):
                needs_fallback = True
            if opts.logprob_threshold is not None and result.avg_logprob < opts.logprob_threshold:
                needs_fallback = True
            if (opts.no_speech_threshold is not None
                    and result.no_speech_prob > opts.no_speech_threshold
                    and opts.logprob_threshold is not None
                    and result.avg_logprob < opts.logprob_threshold):
                needs_fallback = False  # silence: do not hunt for words
            if not needs_fallback:
                break
        assert result is not None
        return result

    def detect_language(self, encoder_states: np.ndarray) -> tuple[str, dict[str, float]]:
        if not self.tok.multilingual:
            return "en", {"en": 1.0}
        logits, _ = self.backend.start(np.array([[self.tok.sot]], dtype=np.int64),
                                       encoder_states)
        lp = log_softmax(logits[0, -1])
        langs = self.tok.language_tokens
        ids = np.array(list(langs.values()))
        probs = np.exp(lp[ids] - np.logaddexp.reduce(lp[ids]))
        ranked = dict(sorted(zip(langs, probs.tolist(), strict=True), key=lambda kv: -kv[1]))
        return next(iter(ranked)), ranked

    # -- internals ------------------------------------------------------------------------
    def _initial_tokens(self, opts: DecodingOptions, prompt: list[int] | None) -> list[int]:
        sot_seq = self.tok.sot_sequence(opts.language, opts.task, opts.timestamps)
        if not prompt:
            return sot_seq
        room = self.backend.max_target_positions // 2 - 1
        return [self.tok.sot_prev, *prompt[-room:], *sot_seq]

    def _decode_once(self, enc: np.ndarray, opts: DecodingOptions, prompt: list[int] | None,
                     temperature: float) -> DecodingResult:
        initial = self._initial_tokens(opts, prompt)
        sot_index = initial.index(self.tok.sot)
        sample_begin = len(initial)
        n_vocab = self.backend.n_vocab
        rules = LogitRules(self.tok, n_vocab, sample_begin, opts)
        beam = opts.beam_size if temperature == 0.0 else 1
        max_len = min(sample_begin + opts.sample_len, self.backend.max_target_positions)

        logits, state = self.backend.start(np.array([initial], dtype=np.int64), enc)
        first = log_softmax(logits[0, sot_index])
        no_speech_prob = float(np.exp(first[self.tok.no_speech]))
        step_logits = logits[:, -1].astype(np.float64)
        if beam > 1:
            state = self.backend.reorder(state, np.zeros(beam, dtype=np.int64))
            step_logits = np.repeat(step_logits, beam, axis=0)
            tokens, sum_lp = self._beam_search(step_logits, state, initial, rules, beam, max_len)
        else:
            rng = np.random.default_rng(opts.seed)
            draws = max(1, opts.best_of) if temperature > 0.0 else 1
            best: tuple[list[int], float] | None = None
            for _ in range(draws):  # each draw starts from the same first-pass state
                cand = self._sample(step_logits.copy(), state, initial, rules, temperature,
                                    max_len, rng)
                if best is None or _rank(cand, sample_begin) > _rank(best, sample_begin):
                    best = cand
            assert best is not None
            tokens, sum_lp = best
        text_tokens = [t for t in tokens[sample_begin:] if t != self.tok.eot]
        text = self.tok.decode(text_tokens)
        return DecodingResult(
            tokens=text_tokens, text=text,
            avg_logprob=sum_lp / (len(text_tokens) + 1),
            no_speech_prob=no_speech_prob, temperature=temperature,
            compression_ratio=compression_ratio(text), sum_logprob=sum_lp,
            language=opts.language or "en")

    def _sample(self, logits: np.ndarray, state: Any, initial: list[int], rules: LogitRules,
                temperature: float, max_len: int, rng: np.random.Generator
                ) -> tuple[list[int], float]:
        seq = list(initial)
        sum_lp = 0.0
        while True:
            rules.apply(logits, [seq])
            lp = log_softmax(logits)[0]
            if temperature == 0.0:
                nxt = int(np.argmax(lp))
            else:
                p = np.exp(log_softmax(logits / temperature)[0])
                nxt = int(rng.choice(len(p), p=p / p.sum()))
            sum_lp += float(lp[nxt]) if np.isfinite(lp[nxt]) else 0.0
            seq.append(nxt)
            if nxt == self.tok.eot or len(seq) >= max_len:
                return seq, sum_lp
            out, state = self.backend.step(np.array([[nxt]], dtype=np.int64), state)
            logits = out[:, -1].astype(np.float64)

    def _beam_search(self, logits: np.ndarray, state: Any, initial: list[int],
                     rules: LogitRules, beam: int, max_len: int) -> tuple[list[int], float]:
        seqs = [list(initial) for _ in range(beam)]
        scores = np.zeros(beam)
        scores[1:] = -np.inf  # all beams start identical: expand only the first
        finished: list[tuple[float, list[int]]] = []
        eot = self.tok.eot
        while True:
            rules.apply(logits, seqs)
            lp = log_softmax(logits)
            cand = scores[:, None] + lp  # [beam, V]
            flat = np.argsort(cand, axis=None)[::-1][: 2 * beam]
            new_seqs, new_scores, src = [], [], []
            for idx in flat:
                b, t = divmod(int(idx), lp.shape[1])
                s = float(cand[b, t])
                if not np.isfinite(s):
                    continue
                if t == eot:
                    finished.append((s, seqs[b] + [t]))
                elif len(new_seqs) < beam:
                    new_seqs.append(seqs[b] + [t])
                    new_scores.append(s)
                    src.append(b)
            done = len(finished) >= beam or not new_seqs or len(new_seqs[0]) >= max_len
            if done:
                if not finished:  # ran out of length: take the live beams as they are
                    finished = list(zip(new_scores, new_seqs, strict=True)) or [(0.0, seqs[0])]
                best = max(finished, key=lambda f: f[0])  # no length penalty (Whisper default)
                return best[1], best[0]
            state = self.backend.reorder(state, np.array(src, dtype=np.int64))
            seqs, scores = new_seqs, np.array(new_scores)
            out, state = self.backend.step(np.array([[s[-1]] for s in seqs], dtype=np.int64),
                                           state)
            logits = out[:, -1].astype(np.float64)
