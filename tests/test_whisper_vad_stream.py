"""The VAD filter on long audio: streamed in blocks with results identical to the
one-shot computation, and memory bounded whatever the length of the file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from xdna_ep.whisper import vad
from xdna_ep.whisper.audio import SAMPLE_RATE, AudioStream, load_audio
from xdna_ep.whisper.samples import list_samples
from xdna_ep.whisper.vad import TimeMap, VadOptions, speech_chunks, speech_stream

SR = SAMPLE_RATE


def long_speech_file(path: Path, seconds: float, rate: int = SR, channels: int = 1) -> Path:
    """The bundled speech clips end to end with 0.5-6 s of faint noise between them
    (some gaps longer than the 2 s minimum silence), written block by block."""
    clips = [load_audio(s.audio) for s in list_samples()]
    rng = np.random.default_rng(7)
    total = int(seconds * rate)
    with sf.SoundFile(path, "w", rate, channels, format="FLAC") as f:
        n, k = 0, 0
        while n < total:
            gap = rng.normal(0, 1e-3, int(rng.uniform(0.5, 6.0) * SR)).astype(np.float32)
            piece = np.concatenate([gap, clips[k % len(clips)]])
            if rate != SR:  # crude rate change: the point is the reader's resampler
                piece = np.interp(np.arange(int(len(piece) * rate / SR)) * SR / rate,
                                  np.arange(len(piece)), piece).astype(np.float32)
            piece = piece[:total - n]
            f.write(np.repeat(piece[:, None], channels, axis=1) * [1.0, 0.5][:channels])
            n += len(piece)
            k += 1
    return path


@pytest.mark.parametrize("block_frames", [37, vad.STREAM_FRAMES])
def test_streamed_vad_equals_one_shot(tmp_path, block_frames):
    path = long_speech_file(tmp_path / "long.flac", 150, rate=22050, channels=2)
    audio = load_audio(path)  # the whole signal, as before streaming
    probs = vad.speech_probabilities(audio)
    opts = VadOptions()
    chunks = speech_chunks(probs, len(audio), opts)
    assert len(chunks) > 5  # speech and silence, several chunks

    with AudioStream(path) as stream:
        streamed = vad.stream_probabilities(stream, block_frames)
        assert stream.num_samples == len(audio)
        assert len(stream._buf) <= (block_frames + 1) * vad.FRAME + 2 ** 16  # ~one block
    np.testing.assert_array_equal(streamed, probs)

    speech, time_map, n = speech_stream(AudioStream(path), opts)
    assert n == len(audio) and time_map == TimeMap.of(chunks)
    one_shot, one_shot_map = vad.remove_silence(audio, opts)
    assert time_map == one_shot_map and speech.num_samples == len(one_shot)
    # read as the decoder does: 30 s windows, released as it moves on, so the
    # silence between chunks is skipped without being held
    got, pos, held = [], 0, 0
    with speech:
        while not speech.at_end(pos):
            got.append(speech.window(pos, 30 * SR)[:min(30 * SR, len(one_shot) - pos)].copy())
            held = max(held, len(speech._buf), len(speech._src._buf))
            pos += 23 * SR  # windows overlap, as timestamp seeking makes them
            speech.release(pos)
            got[-1] = got[-1][:23 * SR]
    np.testing.assert_array_equal(np.concatenate(got), one_shot)
    assert held < 31 * SR + 2 ** 17


def test_vad_without_speech_and_empty_chunks(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(40 * SR, np.float32), SR)
    speech, time_map, n = speech_stream(AudioStream(path), VadOptions())
    with speech:
        assert n == 40 * SR and speech.num_samples == 0 and speech.at_end(0)
        assert time_map == TimeMap((), (), ())


MEMORY_PROBE = r"""
import json, sys, tracemalloc
import numpy as np
from xdna_ep.whisper import WhisperModel
from xdna_ep.whisper.audio import AudioStream
from xdna_ep.whisper.vad import VadOptions, speech_stream

def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024

path, short = sys.argv[1], sys.argv[2]
model = WhisperModel("tiny.en", device="cpu")
list(model.transcribe(short, vad_filter=True, language="en")[0])  # warm: sessions, arenas
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (peak RSS) to the current RSS
    rss0 = hwm_mb()
except OSError:  # not writable here: the array figures still bound the memory
    rss0 = None
tracemalloc.start()
segments, info = model.transcribe(path, vad_filter=True, language="en")  # the VAD pass
call_peak = tracemalloc.get_traced_memory()[1]
call_rss = None if rss0 is None else hwm_mb() - rss0
tracemalloc.reset_peak()
speech, _, _ = speech_stream(AudioStream(path), VadOptions())  # both passes, read through
pos = read = 0
with speech:
    while not speech.at_end(pos):
        read += len(speech.window(pos, 480000)[:max(0, speech.num_samples - pos)][:480000])
        pos += 480000
        speech.release(pos)
print(json.dumps({"duration": info.duration, "after_vad": info.duration_after_vad,
                  "call_peak_mb": call_peak / 2**20, "call_rss_mb": call_rss,
                  "read_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20,
                  "read": read, "speech": speech.num_samples}))
"""


def test_vad_on_a_long_file_keeps_memory_bounded(tmp_path):
    minutes = 25  # 24M samples: 96 MB per float32 copy of the whole signal
    path = long_speech_file(tmp_path / "long.flac", minutes * 60)
    short = list_samples()[5].audio
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), str(short)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["duration"] == pytest.approx(minutes * 60)
    assert 0.3 * minutes * 60 < doc["after_vad"] < 0.9 * minutes * 60
    assert doc["read"] == doc["speech"] == round(doc["after_vad"] * SR)
    # reading the whole signal held >= 4 copies of it (read_all, its copy, the
    # padded model input, the speech): 220 MB of arrays at 20 min. Streamed: a
    # block and the probabilities (one float per 32 ms, 0.2 MB here)
    assert doc["call_peak_mb"] < 24, doc
    assert doc["read_peak_mb"] < 24, doc
    assert doc["call_rss_mb"] is None or doc["call_rss_mb"] < 64, doc


class _Pipe:
    """A non-seekable binary stream, like stdin."""

    def __init__(self, data: bytes) -> None:
        self._data, self.name = data, "<pipe>"

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        data, self._data = (self._data, b"") if n < 0 else (self._data[:n], self._data[n:])
        return data


def test_second_pass_over_file_objects_and_pipes(tmp_path):
    """The speech is read in a second pass: seekable file objects are rewound,
    a pipe's bytes (read once) are read again from memory."""
    path = long_speech_file(tmp_path / "mid.flac", 40)
    audio = load_audio(path)
    expect, expect_map = vad.remove_silence(audio, VadOptions())
    with path.open("rb") as f:
        sources = [AudioStream(f), AudioStream(_Pipe(path.read_bytes()))]
        for stream in sources:
            speech, time_map, n = speech_stream(stream, VadOptions())
            with speech:
                got = speech.window(0, speech.num_samples)
            assert n == len(audio) and time_map == expect_map
            np.testing.assert_array_equal(got, expect)
