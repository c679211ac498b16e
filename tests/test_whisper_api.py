"""The faster-whisper-shaped Python API: inputs, lazy segments, fields, options, pauses.

Fast tests drive the API with the scripted tone-burst model of
test_whisper_decoding; the slow ones run the bundled tiny.en on real speech
(ONNX Runtime CPU path: the decoding logic under test is the same on every device).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_whisper_decoding import BurstModel, burst_audio

from xdna_ep.whisper import Segment, WhisperModel
from xdna_ep.whisper.api import normalise_language
from xdna_ep.whisper.audio import AudioError, load_audio
from xdna_ep.whisper.longform import trim_to_speech
from xdna_ep.whisper.model import LoadedModel, bundled_checkpoint
from xdna_ep.whisper.samples import list_samples
from xdna_ep.whisper.tokenizer import WhisperTokenizer

SR = 16000


@pytest.fixture(scope="module")
def tok() -> WhisperTokenizer:
    d = bundled_checkpoint()
    return WhisperTokenizer.from_files(d / "tokenizer.json", d / "config.json")


class CountingBursts(BurstModel):
    def __init__(self, tok):
        super().__init__(tok)
        self.encodes = 0

    def encode(self, mel):
        self.encodes += 1
        return super().encode(mel)


def scripted(tok) -> tuple[WhisperModel, CountingBursts]:
    """A WhisperModel around the scripted backend (the constructor would load ONNX)."""
    backend = CountingBursts(tok)
    wm = object.__new__(WhisperModel)
    wm.loaded = LoadedModel(Path("."), backend, tok, "cpu")  # type: ignore[arg-type]
    return wm, backend


BURSTS = [(1.0, 0.8, 700), (12.0, 0.8, 1900), (40.0, 0.8, 3900)]


def test_path_file_object_and_array_give_the_same_lazy_segments(tmp_path, tok):
    audio = burst_audio(BURSTS, 45.0)
    path = tmp_path / "b.wav"
    sf.write(path, audio, SR, subtype="FLOAT")
    wm, backend = scripted(tok)
    results = []
    handle = path.open("rb")  # noqa: SIM115 - one of the inputs under test
    for source in (path, handle, io.BytesIO(path.read_bytes()), audio):
        backend.encodes = 0
        segments, info = wm.transcribe(source, temperature=0.0, beam_size=1)
        assert backend.encodes == 0  # nothing decoded before the caller iterates
        first = next(segments)
        assert backend.encodes == 1 and isinstance(first, Segment)
        segs = [first, *segments]
        assert info.language == "en" and info.language_probability == 1.0
        assert info.duration == pytest.approx(45.0) and info.duration_after_vad == info.duration
        results.append([(s.id, s.start, s.end, s.text) for s in segs])
    handle.close()
    assert len(results[0]) == 3 and all(r == results[0] for r in results)
    assert [r[0] for r in results[0]] == [1, 2, 3]
    s = segs[-1]
    assert s.seek > 0 and s.tokens and s.temperature == 0.0 and s.words is None
    assert s._asdict()["text"] == s.text


def test_options_and_inputs_are_checked_before_decoding(tmp_path, tok):
    wm, backend = scripted(tok)
    audio = burst_audio(BURSTS[:1], 3.0)
    with pytest.raises(ValueError, match="English-only"):
        wm.transcribe(audio, language="fr")
    with pytest.raises(ValueError, match="translate"):
        wm.transcribe(audio, task="translate")
    with pytest.raises(NotImplementedError, match="patience"):
        wm.transcribe(audio, patience=2.0)
    with pytest.raises(NotImplementedError, match="hotwords"):
        wm.transcribe(audio, hotwords="xdna")
    with pytest.raises(ValueError, match="temperature"):
        wm.transcribe(audio, temperature=-1.0)
    with pytest.raises(AudioError, match="1-D"):
        wm.transcribe(np.zeros((2, 100), np.float32))
    with pytest.raises(AudioError, match="empty or closed"):
        wm.transcribe(io.BufferedReader(io.BytesIO(b"")))  # a pipe closed at once
    assert backend.encodes == 0
    # faster-whisper's defaults for options we do not implement are accepted
    segs, _ = wm.transcribe(audio, patience=1.0, length_penalty=1, suppress_tokens=[-1])
    assert len(list(segs)) == 1


def test_language_names_and_codes(tok):
    assert normalise_language("English") == "en"
    assert normalise_language("FR") == "fr"
    assert normalise_language("french") == "fr"
    assert normalise_language("en", tok) == "en"
    with pytest.raises(ValueError, match="English-only"):
        normalise_language("German", tok)
    with pytest.raises(ValueError, match="unknown language"):
        normalise_language("klingon")


def test_trim_moves_edges_off_long_silence():
    # speech 0-2 s, 20 s of near silence, speech 22-25 s, all in one decoded segment,
    # as Whisper emits it after a pause
    audio = burst_audio([(0.0, 2.0, 440), (22.0, 3.0, 880)], 26.0)
    audio += np.random.default_rng(0).normal(0, 1e-4, audio.shape).astype(np.float32)
    segs = [Segment(0.0, 2.0, " a"), Segment(2.0, 25.0, " b"), Segment(25.0, 26.0, " c")]
    out = trim_to_speech(segs, audio, 0.0)
    assert out[0] == segs[0]  # nothing to trim
    assert out[1].start == pytest.approx(21.8, abs=0.03) and out[1].end == 25.0
    assert out[2] == segs[2]  # no loud frame: left as decoded
    # a stray island (the tail of the previous utterance) does not hold a segment open
    audio2 = burst_audio([(0.0, 0.1, 440), (20.0, 3.0, 880)], 24.0)
    out2 = trim_to_speech([Segment(0.0, 23.5, " d")], audio2, 0.0)
    assert out2[0].start == pytest.approx(19.8, abs=0.03)
    assert out2[0].end == 23.5  # 0.5 s after the speech: a natural pause, kept
    # offsets: the same segment in a window starting 7 s later
    out3 = trim_to_speech([Segment(7.0, 30.5, " d")], audio2, 7.0)
    assert out3[0].start == pytest.approx(26.8, abs=0.03)


# -- real speech -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cpu_whisper() -> WhisperModel:
    return WhisperModel("tiny.en", device="cpu", compute_type="int8")


@pytest.mark.slow
def test_no_segment_spans_a_pause(cpu_whisper):
    """Beam 5 (faster-whisper's default) is the harder case: its segments end mid-text
    next to the pause; beam 1 on the same audio is covered by the word-timestamp test."""
    beam_size = 5
    samples = list_samples()
    first, second = load_audio(samples[0].audio), load_audio(samples[3].audio)  # 7.1, 6.05 s
    gap = np.random.default_rng(1).normal(0, 1e-4, 20 * SR).astype(np.float32)
    audio = np.concatenate([first, gap, second])
    pause = (len(first) / SR, (len(first) + len(gap)) / SR)
    segments, info = cpu_whisper.transcribe(audio, beam_size=beam_size)
    segs = list(segments)
    assert info.duration == pytest.approx(len(audio) / SR)
    for s in segs:
        inside = max(0.0, min(s.end, pause[1]) - max(s.start, pause[0]))
        assert inside < 1.0, (s.start, s.end, s.text)
        assert s.avg_logprob < 0.0 and 0.0 < s.no_speech_prob < 1.0
        assert s.compression_ratio > 0.0
    text = " ".join(s.text for s in segs).lower()
    assert "dashwood" in text and "respectable" in text
    assert any(s.start >= pause[1] - 0.5 for s in segs)  # the second utterance after it


@pytest.mark.slow
def test_language_detection_and_translate_on_a_multilingual_checkpoint(tmp_path):
    """A small random multilingual checkpoint (tests/synthetic): the language comes
    with probabilities over the model's language tokens; names and translate work."""
    from synthetic.checkpoints import SyntheticWhisper, write_synthetic_checkpoint

    ckpt = write_synthetic_checkpoint(tmp_path / "ml", SyntheticWhisper(multilingual=True,
                                                                        dtype="float32"))
    model = WhisperModel(str(ckpt), device="cpu")
    assert model.is_multilingual and model.supported_languages == ["de", "en", "fr"]
    audio = np.random.default_rng(0).normal(0, 0.1, 3 * SR).astype(np.float32)
    segments, info = model.transcribe(audio, beam_size=1, temperature=0.0)
    probs = dict(info.all_language_probs)
    assert set(probs) == {"de", "en", "fr"} and sum(probs.values()) == pytest.approx(1.0)
    assert info.language == max(probs, key=probs.get)
    assert info.language_probability == pytest.approx(probs[info.language])
    assert model.detect_language(audio)[0] == info.language
    list(segments)
    segments, info = model.transcribe(audio, beam_size=1, temperature=0.0, language="German",
                                      task="translate")
    assert info.language == "de" and info.language_probability == 1.0
    assert info.transcription_options.task == "translate"
    list(segments)
    with pytest.raises(ValueError, match="unknown language"):
        model.transcribe(audio, language="ja")  # not among this checkpoint's languages
