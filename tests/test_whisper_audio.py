"""Audio input: formats, rates, channels, streaming, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from xdna_ep.whisper.audio import SAMPLE_RATE, AudioError, AudioStream, load_audio, probe


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x * (1 + 0.1 * c) for c in range(channels)], axis=1)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"),
                                         ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_formats_decode_to_16k_mono(tmp_path, fmt, subtype):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(1.5, 44100, 2), 44100, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 1.5 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE  # mp3 adds padding
    # the 440 Hz tone survives resampling: its spectral peak is at 440 Hz
    spec = np.abs(np.fft.rfft(audio[:SAMPLE_RATE]))
    assert abs(np.argmax(spec) - 440) <= 2


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000, 192000])
def test_any_rate_is_resampled(tmp_path, rate):
    path = tmp_path / "r.wav"
    sf.write(path, tone(1.0, rate), rate)
    audio = load_audio(path)
    assert abs(len(audio) - SAMPLE_RATE) <= 2
    ref = tone(1.0, SAMPLE_RATE)[:, 0]
    n = min(len(ref), len(audio)) - 200
    # compare away from the edges (resampler filter delay compensated by soxr)
    assert np.max(np.abs(audio[100:n] - ref[100:n])) < 0.02


@pytest.mark.parametrize("channels", [1, 2, 6, 8])
def test_channels_are_mixed_down(tmp_path, channels):
    path = tmp_path / "c.wav"
    data = tone(0.5, SAMPLE_RATE, channels)
    sf.write(path, data, SAMPLE_RATE, subtype="FLOAT")
    audio = load_audio(path)
    np.testing.assert_allclose(audio, data.mean(axis=1), atol=1e-6)


def test_streaming_windows_match_whole_file_and_release_memory(tmp_path):
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    data = (0.1 * rng.standard_normal(SAMPLE_RATE * 95)).astype(np.float32)
    sf.write(path, data, SAMPLE_RATE, subtype="FLOAT")
    with AudioStream(path) as s:
        w = s.window(0, SAMPLE_RATE * 30)
        np.testing.assert_array_equal(w, data[: SAMPLE_RATE * 30])
        s.release(SAMPLE_RATE * 30)
        w2 = s.window(SAMPLE_RATE * 60, SAMPLE_RATE * 30)
        np.testing.assert_array_equal(w2, data[SAMPLE_RATE * 60: SAMPLE_RATE * 90])
        s.release(SAMPLE_RATE * 60)
        tail = s.window(SAMPLE_RATE * 90, SAMPLE_RATE * 30)  # zero-padded past the end
        np.testing.assert_array_equal(tail[: SAMPLE_RATE * 5], data[SAMPLE_RATE * 90:])
        assert not tail[SAMPLE_RATE * 5:].any()
        assert s.at_end(SAMPLE_RATE * 95)
        # only what may still be sought is held: well under the whole file
        assert len(s._buf) < SAMPLE_RATE * 40
        with pytest.raises(ValueError, match="released"):
            s.window(0, 10)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_audio(tmp_path / "nope.wav")


def test_corrupt_header(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioError, match="cannot read"):
        probe(path)


def test_unsupported_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(AudioError):
        load_audio(path)


def test_empty_audio(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1), np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="no audio"):
        load_audio(path)


def test_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    data = tone(0.5, SAMPLE_RATE)
    data[100] = np.nan
    sf.write(path, data, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_audio(path)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        probe(tmp_path)
