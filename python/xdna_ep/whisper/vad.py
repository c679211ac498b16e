"""Voice activity detection with Silero VAD's ONNX model, run by ONNX Runtime.

The model file comes from the PyPI package `silero-vad`, installed without its
dependencies (`pip install --no-deps silero-vad==6.2.3`): that package's own
Python code needs torch (and its extras torchaudio), which xdna-ep does not
want on the run path, so we never import it; we only read its data file. Our
code feeds the model 512-sample frames at 16 kHz with the 64 samples before
each frame as context and its recurrent state carried over (the model's
published calling convention), turns the per-frame speech probabilities into
speech chunks (hysteresis, minimum silence, padding: faster-whisper's option
names and defaults), cuts the silence out, and maps times in the shortened
audio back to the original.

Memory stays bounded however long the input: `speech_stream` reads the audio
block by block for the probabilities (one float per 32 ms frame is all it
keeps), then reads it again from the start and hands the decoder only the
speech chunks, as a stream (`SpeechStream`) that skips the silence without
holding it. Samples and probabilities are the same as reading the whole
signal at once (`remove_silence`, kept for arrays already in memory).
"""

from __future__ import annotations

import bisect
import importlib.util
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .audio import BLOCK_FRAMES, SAMPLE_RATE, AudioInfo, AudioStream

FRAME = 512  # samples per model call at 16 kHz
STREAM_FRAMES = 1024  # model frames per block read by stream_probabilities (32.8 s)
CONTEXT = 64  # samples of the previous frame prepended to each call
STATE_SHAPE = (2, 1, 128)
VAD_PACKAGE = "silero-vad==6.2.3"
INSTALL_HINT = (f"pip install --no-deps {VAD_PACKAGE}  (only its ONNX model file is used; "
                "--no-deps keeps pip from pulling torch/torchaudio)")


class VadUnavailableError(RuntimeError):
    """The Silero VAD model file is not installed."""


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's VadOptions names and defaults."""

    threshold: float = 0.5  # speech starts where the probability reaches this
    neg_threshold: float | None = None  # ... and ends below this (default threshold - 0.15)
    min_speech_duration_ms: int = 0  # shorter speech chunks are dropped
    max_speech_duration_s: float = math.inf  # longer chunks are cut
    min_silence_duration_ms: int = 2000  # shorter silences do not end a chunk
    speech_pad_ms: int = 400  # kept on each side of a chunk

    @classmethod
    def from_any(cls, params: VadOptions | dict[str, Any] | None) -> VadOptions:
        if params is None:
            return cls()
        if isinstance(params, VadOptions):
            return params
        if isinstance(params, dict):
            unknown = sorted(set(params) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown vad_parameters: {', '.join(unknown)} (valid: "
                                 f"{', '.join(cls.__dataclass_fields__)})")
            return cls(**params)
        # faster-whisper's own VadOptions object: read the same attribute names
        return cls(**{k: getattr(params, k) for k in cls.__dataclass_fields__
                      if hasattr(params, k)})


def silero_model_path() -> Path:
    """silero_vad/data/silero_vad.onnx of the installed package (not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailableError(f"vad_filter needs Silero VAD's ONNX model: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
    if not path.exists():
        raise VadUnavailableError(f"the silero-vad package has no {path.name}; install "
                                  f"{VAD_PACKAGE}: {INSTALL_HINT}")
    return path


@lru_cache(maxsize=1)
def _session() -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # tiny per-frame calls: threads cost more than they give
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(silero_model_path()), so,
                                providers=["CPUExecutionProvider"])


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Speech probability per 512-sample frame (32 ms) of 16 kHz mono audio."""
    sess = _session()
    audio = np.asarray(audio, dtype=np.float32)
    n = -(-len(audio) // FRAME)
    padded = np.zeros(n * FRAME + CONTEXT, dtype=np.float32)
    padded[CONTEXT:CONTEXT + len(audio)] = audio
    state = np.zeros(STATE_SHAPE, dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    probs = np.empty(n, dtype=np.float32)
    for i in range(n):
        x = padded[i * FRAME:(i + 1) * FRAME + CONTEXT][None]
        out, state = sess.run(None, {"input": x, "state": state, "sr": sr})
        probs[i] = out[0, 0]
    return probs


def stream_probabilities(stream: AudioStream, block_frames: int = STREAM_FRAMES
                         ) -> np.ndarray:
    """speech_probabilities of a whole stream from its start, read block by block.

    Each block is released once its frames have run, so the stream holds about
    one block; the model sees the same 576-sample inputs (64 of context, zeros
    before the start and past the end) and the same state sequence, hence the
    same probabilities. Afterwards stream.num_samples is exact."""
    sess = _session()
    state = np.zeros(STATE_SHAPE, dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    span = block_frames * FRAME
    context = np.zeros(CONTEXT, dtype=np.float32)
    probs: list[np.ndarray] = []
    start = 0
    while not stream.at_end(start):
        block = np.concatenate([context, stream.window(start, span)])
        n = block_frames
        if stream.at_end(start + (block_frames - 1) * FRAME):  # the last block
            n = -(-(stream.num_samples - start) // FRAME)
        out = np.empty(n, dtype=np.float32)
        for i in range(n):
            x = block[i * FRAME:(i + 1) * FRAME + CONTEXT][None]
            p, state = sess.run(None, {"input": x, "state": state, "sr": sr})
            out[i] = p[0, 0]
        probs.append(out)
        context = block[-CONTEXT:].copy()
        start += span
        stream.release(start)
    return np.concatenate(probs) if probs else np.zeros(0, dtype=np.float32)


def speech_chunks(probs: np.ndarray, n_samples: int, opts: VadOptions
                  ) -> list[tuple[int, int]]:
    """[start, end) sample ranges of speech from per-frame probabilities."""
    neg = opts.neg_threshold if opts.neg_threshold is not None else max(
        opts.threshold - 0.15, 0.01)
    min_silence = opts.min_silence_duration_ms * SAMPLE_RATE // 1000
    min_speech = opts.min_speech_duration_ms * SAMPLE_RATE // 1000
    max_speech = (math.inf if math.isinf(opts.max_speech_duration_s)
                  else int(opts.max_speech_duration_s * SAMPLE_RATE))
    pad = opts.speech_pad_ms * SAMPLE_RATE // 1000
    raw: list[list[int]] = []
    start: int | None = None
    quiet_since: int | None = None
    for i, p in enumerate(probs.tolist()):
        pos = i * FRAME
        if start is None:
            if p >= opts.threshold:
                start, quiet_since = pos, None
            continue
        if p >= opts.threshold:
            quiet_since = None
        elif p < neg and quiet_since is None:
            quiet_since = pos
        if quiet_since is not None and pos + FRAME - quiet_since >= min_silence:
            raw.append([start, quiet_since])
            start, quiet_since = None, None
        elif pos + FRAME - start >= max_speech:
            raw.append([start, pos + FRAME])
            start, quiet_since = None, None
    if start is not None:  # open at the end: trailing quiet is silence however short
        raw.append([start, quiet_since if quiet_since is not None else n_samples])
    chunks = [c for c in raw if c[1] - c[0] >= max(min_speech, 1)]
    for k, c in enumerate(chunks):  # pad, splitting a gap too small for two pads
        lo = 0 if k == 0 else chunks[k - 1][1]
        gap_before = c[0] - lo
        c[0] = max(0, c[0] - (pad if k == 0 or gap_before >= 2 * pad else gap_before // 2))
        if k + 1 < len(chunks):
            gap_after = chunks[k + 1][0] - c[1]
            c[1] += pad if gap_after >= 2 * pad else gap_after // 2
        else:
            c[1] = min(n_samples, c[1] + pad)
    return [(int(a), int(b)) for a, b in chunks]


@dataclass(frozen=True)
class TimeMap:
    """Maps times in the speech-only audio back to the original audio."""

    filtered_starts: tuple[float, ...]  # seconds, start of each chunk in the filtered audio
    original_starts: tuple[float, ...]  # seconds, start of the same chunk in the original
    lengths: tuple[float, ...]

    @classmethod
    def of(cls, chunks: list[tuple[int, int]]) -> TimeMap:
        f, o, n = [], [], []
        pos = 0
        for a, b in chunks:
            f.append(pos / SAMPLE_RATE)
            o.append(a / SAMPLE_RATE)
            n.append((b - a) / SAMPLE_RATE)
            pos += b - a
        return cls(tuple(f), tuple(o), tuple(n))

    def original(self, t: float, is_end: bool = False) -> float:
        """An end time exactly at a chunk boundary belongs to the earlier chunk."""
        if not self.filtered_starts:
            return t
        find = bisect.bisect_left if is_end else bisect.bisect_right
        i = max(0, find(list(self.filtered_starts), t) - 1)
        offset = min(t - self.filtered_starts[i], self.lengths[i])
        return round(self.original_starts[i] + offset, 3)


    def _chunk(self, t: float, is_end: bool) -> int:
        find = bisect.bisect_left if is_end else bisect.bisect_right
        return max(0, find(list(self.filtered_starts), t) - 1)

    def span(self, start: float, end: float) -> tuple[float, float]:
        """A segment's (start, end) in the original audio.

        Timestamps near a cut are a little off, so a segment may run a fraction of
        a second into the next speech chunk (or start just before its own); mapped
        as is, it would then span the whole removed silence. An edge that reaches
        less than OVERRUN_S into a neighbouring chunk is clipped to the chunk
        holding the rest; segments with real speech on both sides keep their span."""
        if not self.filtered_starts:
            return start, end
        i, j = self._chunk(start, False), self._chunk(end, True)
        if j > i:
            chunk_i_end = self.filtered_starts[i] + self.lengths[i]
            if end - self.filtered_starts[j] < OVERRUN_S:
                end, j = chunk_i_end, i  # (a neighbour's start overrun: clip the end back)
            elif chunk_i_end - start < OVERRUN_S:
                start = self.filtered_starts[i + 1]
        return self.original(start), self.original(end, is_end=True)


OVERRUN_S = 1.0  # a segment edge reaching less than this into the next chunk is clipped


class SpeechStream(AudioStream):
    """The speech chunks of an audio stream back to back, read on demand.

    An AudioStream whose blocks are pieces of the chunks: what the decoder has
    not released plus one piece is in memory, and the silence between chunks
    is released in the source stream before it is read, so it is dropped as it
    is decoded rather than kept."""

    def __init__(self, source: AudioStream, chunks: list[tuple[int, int]]) -> None:
        self._src = source
        self._chunks = chunks
        self._k = 0  # chunk being read
        self._pos = chunks[0][0] if chunks else 0  # next source sample to read
        total = sum(b - a for a, b in chunks)
        self.info = AudioInfo(source.info.path, SAMPLE_RATE, 1, total, "array")
        self._file = None
        self._resampler = None
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0
        self._released = 0
        self._frames_read = 0
        self._eof = not chunks

    @property
    def num_samples(self) -> int:
        return self.info.frames

    def close(self) -> None:
        self._src.close()

    def rewound(self) -> AudioStream:
        return SpeechStream(self._src.rewound(), self._chunks)

    def _read_block(self) -> None:
        a, b = self._chunks[self._k]
        self._src.release(self._pos)  # the silence before the chunk: never held
        n = min(BLOCK_FRAMES, b - self._pos)
        piece = np.array(self._src.window(self._pos, n), dtype=np.float32)  # a copy
        self._pos += n
        if self._pos >= b:
            self._k += 1
            if self._k < len(self._chunks):
                self._pos = self._chunks[self._k][0]
        self._src.release(self._pos)
        self._buf = np.concatenate([self._buf, piece])
        self._eof = self._k >= len(self._chunks)
        self._drop_released()


def speech_stream(stream: AudioStream, opts: VadOptions
                  ) -> tuple[AudioStream, TimeMap, int]:
    """(the speech of `stream` as a stream, map back to the original times, samples in
    the original): remove_silence with bounded memory. `stream` must be at its
    start; it is closed, and the returned stream reads the same audio again."""
    try:
        probs = stream_probabilities(stream)
        n_samples = stream.num_samples
    except BaseException:
        stream.close()
        raise
    chunks = speech_chunks(probs, n_samples, opts)
    again = stream.rewound()  # closes `stream`
    return SpeechStream(again, chunks), TimeMap.of(chunks), n_samples


def remove_silence(audio: np.ndarray, opts: VadOptions) -> tuple[np.ndarray, TimeMap]:
    """(speech-only audio, map back to the original times) of a whole signal in memory."""
    chunks = speech_chunks(speech_probabilities(audio), len(audio), opts)
    if not chunks:
        return np.zeros(0, dtype=np.float32), TimeMap((), (), ())
    kept = np.concatenate([audio[a:b] for a, b in chunks]).astype(np.float32, copy=False)
    return kept, TimeMap.of(chunks)
