"""Word timestamps: DTW, word splitting, and cross-attention alignment on real speech."""

from __future__ import annotations

import numpy as np
import pytest

from xdna_ep.whisper.alignment import dtw_path, split_words
from xdna_ep.whisper.audio import load_audio
from xdna_ep.whisper.model import bundled_checkpoint
from xdna_ep.whisper.samples import list_samples
from xdna_ep.whisper.tokenizer import WhisperTokenizer

SR = 16000


def test_dtw_follows_the_cheap_diagonal_band():
    # three tokens over 12 frames: token k is cheap on frames 4k..4k+3
    cost = np.ones((3, 12))
    for k in range(3):
        cost[k, 4 * k:4 * k + 4] = 0.0
    tokens, frames = dtw_path(cost)
    assert tokens[0] == 0 and frames[0] == 0 and tokens[-1] == 2 and frames[-1] == 11
    assert np.all(np.diff(tokens) >= 0) and np.all(np.diff(frames) >= 0)
    starts = [int(frames[np.argmax(tokens == k)]) for k in range(3)]
    assert starts == [0, 4, 8]


def test_words_keep_punctuation_with_the_word_before():
    d = bundled_checkpoint()
    tok = WhisperTokenizer.from_files(d / "tokenizer.json", d / "config.json")
    words = split_words(tok, tok.encode(" Mr. Dashwood, then."))
    assert [w for w, _ in words] == [" Mr.", " Dashwood,", " then."]
    assert sum(len(ids) for _, ids in words) == len(tok.encode(" Mr. Dashwood, then."))


@pytest.mark.slow
def test_word_times_on_real_speech_around_a_pause():
    from xdna_ep.whisper import WhisperModel

    s = list_samples()
    a, b = load_audio(s[0].audio), load_audio(s[3].audio)
    gap = np.random.default_rng(1).normal(0, 1e-4, 20 * SR).astype(np.float32)
    audio = np.concatenate([a, gap, b])
    p0, p1 = len(a) / SR, (len(a) + len(gap)) / SR
    model = WhisperModel("tiny.en", device="cpu")
    segments, _ = model.transcribe(audio, beam_size=1, word_timestamps=True)
    segs = list(segments)
    words = [w for sg in segs for w in sg.words]
    assert len(words) >= 35  # 22 + 18 words in the two utterances, give or take
    for sg in segs:
        assert "".join(w.word for w in sg.words) == sg.text
        assert sg.start == sg.words[0].start and sg.end == sg.words[-1].end
    starts = [w.start for w in words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in words)
    assert all(0.0 < w.probability <= 1.0 for w in words)
    assert not any(w.start < p1 - 1.0 and w.end > p0 + 1.0 for w in words)  # none spans it
    resumed = next(w for w in words if w.start > p0 + 1.0)
    assert resumed.word.strip() == "Had" and abs(resumed.start - p1) < 1.0
    dash = next(w for w in words if "Dashwood" in w.word)
    assert 0.8 < dash.start < 2.0  # "And Mr. John Dashwood" is said within the first 2 s
