"""Decoding rules and long-form seeking, with a scripted stand-in model.

The stand-in "hears" tone bursts: each burst is a word whose identity is the
mel band holding its energy. It emits Whisper-style output (timestamp pairs
around each complete word, an unfinished word without its closing timestamp
at a window edge), so the test checks that seeking neither loses nor doubles
words at 30 s window edges, and that the logit rules let valid output through.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from xdna_ep.whisper.decoding import Decoder, DecodingOptions, LogitRules, compression_ratio
from xdna_ep.whisper.features import N_FRAMES, log_mel_spectrogram
from xdna_ep.whisper.longform import TranscribeOptions, _split_segments, transcribe_file
from xdna_ep.whisper.model import bundled_checkpoint
from xdna_ep.whisper.tokenizer import WhisperTokenizer

SR = 16000


@pytest.fixture(scope="module")
def tok() -> WhisperTokenizer:
    d = bundled_checkpoint()
    return WhisperTokenizer.from_files(d / "tokenizer.json", d / "config.json")


class BurstModel:
    """Scripted DecoderBackend: words are tone bursts, identified by mel band."""

    n_mels = 80
    max_target_positions = 448

    def __init__(self, tok: WhisperTokenizer) -> None:
        self.tok = tok
        self.n_vocab = tok.vocab_size

    def encode(self, mel: np.ndarray) -> np.ndarray:
        return mel

    def _plan(self, mel: np.ndarray) -> list[int]:
        energy = mel[0].max(axis=0)
        active = energy > 0.0
        runs, start = [], None
        for i, a in enumerate(np.append(active, False)):
            if a and start is None:
                start = i
            elif not a and start is not None:
                runs.append((start, i))
                start = None
        tb = self.tok.timestamp_begin
        plan: list[int] = []
        for s, e in runs:
            band = int(np.argmax(mel[0][:, s:e].mean(axis=1)))
            words = self.tok.encode(f" band{band}")
            first = s // 2 if plan else min(s // 2, 50)  # first stamp must be <= 1 s
            if e >= N_FRAMES - 1 or (mel[0][:, e:].max() <= -1.0 and e >= N_FRAMES - 3):
                plan += [tb + first, *words]  # cut at the window edge: no closing stamp
                break
            plan += [tb + first, *words, tb + min(e // 2, 1500)]
        return plan + [self.tok.eot]

    def _logits(self, token: int) -> np.ndarray:
        out = np.full((1, 1, self.n_vocab), -10.0, dtype=np.float32)
        out[0, 0, token] = 20.0
        return out

    def start(self, tokens, enc):
        plan = self._plan(enc)
        logits = np.zeros((1, tokens.shape[1], self.n_vocab), np.float32)
        logits[0, -1] = self._logits(plan[0])[0, 0]
        return logits, (plan, 1)

    def step(self, tokens, state):
        plan, pos = state
        logits = self._logits(plan[min(pos, len(plan) - 1)])
        return np.repeat(logits, tokens.shape[0], axis=0), (plan, pos + 1)

    def reorder(self, state, index):
        return state


def burst_audio(bursts: list[tuple[float, float, float]], seconds: float) -> np.ndarray:
    x = np.zeros(int(seconds * SR), np.float32)
    for start, dur, freq in bursts:
        t = np.arange(int(dur * SR)) / SR
        x[int(start * SR): int(start * SR) + len(t)] += 0.5 * np.sin(2 * np.pi * freq * t)
    return x


def test_words_at_window_edges_are_neither_lost_nor_doubled(tmp_path, tok):
    freqs = [300, 700, 1200, 1900, 2800, 3900, 5200, 6600]
    starts = [2.0, 12.5, 29.6, 41.0, 59.7, 70.0, 89.5, 101.0]  # 3 cross a 30 s edge
    bursts = [(s, 0.8, f) for s, f in zip(starts, freqs, strict=True)]
    path = tmp_path / "bursts.wav"
    sf.write(path, burst_audio(bursts, 110.0), SR, subtype="FLOAT")
    model = BurstModel(tok)
    expected = []
    for _s, _dur, f in bursts:  # the band each burst lands in, heard in isolation
        mel = log_mel_spectrogram(burst_audio([(1.0, 0.8, f)], 3.0))
        expected.append(f"band{int(np.argmax(mel[:, 100:180].mean(axis=1)))}")
    opts = TranscribeOptions(DecodingOptions(temperatures=(0.0,), logprob_threshold=None,
                                             no_speech_threshold=None), progress=False)
    t = transcribe_file(path, model, tok, opts)
    heard = [seg.text.strip() for seg in t.segments]
    assert heard == expected
    for seg, (s, dur, _f) in zip(t.segments, bursts, strict=True):
        # a window's first timestamp is capped at 1 s after the window start, so a
        # segment may start early, never late; ends are exact to the 20 ms step
        assert seg.start <= s + 0.04 and abs(seg.end - (s + dur)) <= 0.06
    assert t.duration == pytest.approx(110.0)


def test_split_resumes_at_last_complete_timestamp(tok):
    tb = tok.timestamp_begin
    w = tok.encode(" hello")
    tokens = [tb, *w, tb + 100, tb + 100, *w, tb + 500, tb + 1400, *w]
    segs, advance = _split_segments(tokens, tok, 10.0, N_FRAMES)
    assert [(s.start, s.end) for s in segs] == [(10.0, 12.0), (12.0, 20.0)]
    assert advance == 1000  # 500 timestamp steps = 10 s = 1000 mel frames

    # a pair closing right before the end: resume there (no words after it)
    segs, advance = _split_segments([tb, *w, tb + 50, tb + 60], tok, 0.0, N_FRAMES)
    assert len(segs) == 1 and advance == 100
    # single timestamp ending (text then one stamp): the window is complete
    tokens = [tb, *w, tb + 50, tb + 50, *w, tb + 80]
    segs, advance = _split_segments(tokens, tok, 0.0, N_FRAMES)
    assert [(s.start, s.end) for s in segs] == [(0.0, 1.0), (1.0, 1.6)]
    assert advance == N_FRAMES


def test_logit_rules(tok):
    n = tok.vocab_size
    opts = DecodingOptions()
    rules = LogitRules(tok, n, sample_begin=1, opts=opts)
    tb = tok.timestamp_begin
    logits = np.zeros((1, n))
    rules.apply(logits, [[tok.sot]])  # first sampled token: a timestamp <= 1 s
    allowed = np.flatnonzero(np.isfinite(logits[0]))
    assert allowed.min() == tb and allowed.max() == tb + 50

    logits = np.zeros((1, n))
    rules.apply(logits, [[tok.sot, tb + 10, 400, tb + 20, tb + 20]])  # pair closed
    assert not np.isfinite(logits[0, tb:]).any()  # text must follow

    logits = np.zeros((1, n))
    rules.apply(logits, [[tok.sot, tb + 10, 400]])
    # a segment's closing stamp comes strictly after its opening one
    assert not np.isfinite(logits[0, tb:tb + 11]).any()
    assert np.isfinite(logits[0, tb + 11])

    logits = np.zeros((1, n))
    logits[0, tok.eot] = 10.0  # end is likelier than all timestamps together
    rules.apply(logits, [[tok.sot, tb + 10, 400, tb + 20]])  # open stamp: stamp or eot
    assert not np.isfinite(logits[0, :tok.eot]).any()
    assert np.isfinite(logits[0, tok.eot])
    assert not np.isfinite(logits[0, tok.no_timestamps])

    logits = np.zeros((1, n))  # timestamps jointly likelier than any text: take one
    rules.apply(logits, [[tok.sot, tb + 10, 400, tb + 20]])
    assert not np.isfinite(logits[0, :tb]).any() and np.isfinite(logits[0, tb + 20:]).all()


def test_greedy_and_beam_agree_on_a_confident_model(tok):
    model = BurstModel(tok)
    mel = log_mel_spectrogram(burst_audio([(0.5, 0.8, 1200)], 5.0))[None]
    dec = Decoder(model, tok)
    g = dec.decode(mel, DecodingOptions(beam_size=1, temperatures=(0.0,)))
    b = dec.decode(mel, DecodingOptions(beam_size=3, temperatures=(0.0,)))
    assert g.tokens == b.tokens and g.text.strip().startswith("band")


def test_compression_ratio_flags_loops():
    assert compression_ratio("the cat " * 40) > 2.4
    assert compression_ratio("Ask not what your country can do for you.") < 2.4
