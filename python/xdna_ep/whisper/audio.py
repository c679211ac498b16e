"""Audio input for Whisper: any file soundfile reads, any rate, any channel count.

Long files are never loaded whole: `AudioStream` reads blocks, mixes them down
to mono and resamples them to 16 kHz incrementally (soxr's streaming
resampler), keeping only the samples the decoder may still seek back to. A
2-hour file therefore costs a few 30 s windows of memory, not 460 MB. The VAD
filter reads the file twice the same way (speech probabilities, then the
speech chunks; vad.py), so it is bounded too.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
BLOCK_FRAMES = 1 << 16  # frames read per block from the file


class AudioError(ValueError):
    """The audio cannot be used; the message says why and names the file."""


AudioSource = Union[str, Path, BinaryIO, np.ndarray]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | Path) -> AudioInfo:
    """Reads the header: rate, channels, length. Raises AudioError if unreadable."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"audio file not found: {p}")
    if p.is_dir():
        raise AudioError(f"{p} is a directory, not an audio file")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"cannot read {p}: not a supported audio file or corrupt header "
                         f"({exc}); supported: wav, flac, ogg, mp3 and other libsndfile formats"
                         ) from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"{p}: invalid header (rate {info.samplerate}, "
                         f"{info.channels} channels)")
    return AudioInfo(str(p), int(info.samplerate), int(info.channels), int(info.frames),
                     str(info.format))


def _probe_file_object(fileobj: BinaryIO, name: str
                       ) -> tuple[AudioInfo, sf.SoundFile, BinaryIO]:
    """Opens a file object (rewound if seekable; read whole if not, e.g. stdin).

    Returns the seekable file object read too (the BytesIO for stdin)."""
    if not (hasattr(fileobj, "seekable") and fileobj.seekable()):
        try:
            data = fileobj.read()
        except (OSError, ValueError) as exc:
            raise AudioError(f"{name}: cannot read the input ({exc})") from exc
        if not data:
            raise AudioError(f"{name}: no data (the input was empty or closed early)")
        fileobj = io.BytesIO(data)
    else:
        fileobj.seek(0)  # faster-whisper reads a file object from its start too
        if fileobj.seek(0, io.SEEK_END) == 0:
            raise AudioError(f"{name}: no data (the input was empty or closed early)")
        fileobj.seek(0)
    try:
        handle = sf.SoundFile(fileobj)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"cannot read {name}: not a supported audio file or corrupt header "
                         f"({exc})") from exc
    if handle.samplerate <= 0 or handle.channels <= 0:
        handle.close()
        raise AudioError(f"{name}: invalid header (rate {handle.samplerate}, "
                         f"{handle.channels} channels)")
    info = AudioInfo(name, int(handle.samplerate), int(handle.channels), int(handle.frames),
                     str(handle.format))
    return info, handle, fileobj


def _check_finite(block: np.ndarray, path: str, offset_s: float) -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{path}: non-finite samples (NaN or Inf) near {offset_s:.2f} s")


class AudioStream:
    """Mono 16 kHz samples of a file, read and resampled on demand.

    `window(start, length)` returns samples [start, start+length) at 16 kHz
    (zero-padded past the end); `release(before)` lets the stream drop samples
    the caller will not ask for again, including ones not read yet (they are
    then dropped as they are read: skipping ahead holds no memory).
    """

    def __init__(self, path: str | Path | BinaryIO) -> None:
        self._source: str | Path | BinaryIO
        if hasattr(path, "read"):
            name = str(getattr(path, "name", "<file object>"))
            self.info, self._file, self._source = _probe_file_object(
                path, name)  # type: ignore[arg-type]
        else:
            self.info = probe(path)  # type: ignore[arg-type]
            self._file = sf.SoundFile(self.info.path)
            self._source = self.info.path
        self._resampler = (
            None if self.info.sample_rate == SAMPLE_RATE
            else soxr.ResampleStream(self.info.sample_rate, SAMPLE_RATE, 1, dtype="float32",
                                     quality="HQ"))
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # 16 kHz sample index of _buf[0]
        self._released = 0  # samples before this are never asked for again
        self._frames_read = 0
        self._eof = False

    def rewound(self) -> AudioStream:
        """Closes this stream; returns a new one reading the same audio from its start
        (stdin's bytes, read once, are read again from memory)."""
        self.close()
        return AudioStream(self._source)

    # -- context manager ------------------------------------------------------------
    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # -- reading --------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Length at 16 kHz (from the header; exact once the file is read)."""
        if self._eof:
            return self._buf_start + len(self._buf)
        return int(round(self.info.frames * SAMPLE_RATE / self.info.sample_rate))

    def _read_block(self) -> None:
        try:
            block = self._file.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{self.info.path}: corrupt audio data after "
                             f"{self._frames_read / self.info.sample_rate:.2f} s ({exc})"
                             ) from exc
        last = len(block) < BLOCK_FRAMES
        _check_finite(block, self.info.path, self._frames_read / self.info.sample_rate)
        self._frames_read += len(block)
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        mono = np.ascontiguousarray(mono, dtype=np.float32)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        self._buf = np.concatenate([self._buf, mono.astype(np.float32, copy=False)])
        self._eof = last
        self._drop_released()

    def window(self, start: int, length: int) -> np.ndarray:
        floor = max(self._buf_start, self._released)
        if start < floor:
            raise ValueError(f"sample {start} was already released (stream starts at "
                             f"{floor})")
        while not self._eof and self._buf_start + len(self._buf) < start + length:
            self._read_block()
        lo = start - self._buf_start
        out = self._buf[lo:lo + length]
        if len(out) < length:
            out = np.concatenate([out, np.zeros(length - len(out), dtype=np.float32)])
        return out

    def at_end(self, position: int) -> bool:
        """True when `position` (16 kHz samples) is at or past the end of the audio."""
        while not self._eof and self._buf_start + len(self._buf) <= position:
            self._read_block()
        return self._eof and position >= self._buf_start + len(self._buf)

    def read_all(self) -> np.ndarray:
        """Every sample not yet released, in memory at once (the VAD filter streams instead)."""
        while not self._eof:
            self._read_block()
        return self._buf.copy()

    def release(self, before: int) -> None:
        self._released = max(self._released, before)
        self._drop_released()

    def _drop_released(self) -> None:
        drop = min(max(0, self._released - self._buf_start), len(self._buf))
        if drop:
            self._buf = self._buf[drop:].copy()  # a copy: the old buffer is freed
            self._buf_start += drop


class ArrayStream(AudioStream):
    """An AudioStream over samples already in memory (float32 mono at 16 kHz, as
    faster-whisper and openai-whisper take them)."""

    def __init__(self, samples: np.ndarray, name: str = "<array>") -> None:
        arr = np.asarray(samples)
        if arr.ndim != 1:
            raise AudioError(f"{name}: audio arrays must be 1-D mono samples at 16 kHz, "
                             f"got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise AudioError(f"{name}: audio arrays must be float samples in [-1, 1] "
                             f"(got dtype {arr.dtype})")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        _check_finite(arr, name, 0.0)
        self.info = AudioInfo(name, SAMPLE_RATE, 1, len(arr), "array")
        self._file = None
        self._resampler = None
        self._buf = arr
        self._buf_start = 0
        self._released = 0
        self._frames_read = len(arr)
        self._eof = True
        self._array = arr

    def close(self) -> None:
        pass

    def rewound(self) -> AudioStream:
        return ArrayStream(self._array, self.info.path)

    def _drop_released(self) -> None:
        # a view, not a copy: the caller's array stays in memory anyway, and copying
        # the rest on every release would cost O(n^2) over a long array
        drop = min(max(0, self._released - self._buf_start), len(self._buf))
        if drop:
            self._buf = self._buf[drop:]
            self._buf_start += drop


def open_audio(source: AudioSource) -> AudioStream:
    """An AudioStream for a path, a binary file object or a float32 16 kHz array."""
    if isinstance(source, np.ndarray):
        return ArrayStream(source)
    return AudioStream(source)


def load_audio(path: str | Path) -> np.ndarray:
    """The whole file as mono float32 at 16 kHz (for short clips and tests)."""
    with AudioStream(path) as stream:
        while not stream._eof:
            stream._read_block()
        audio = stream._buf.copy()
    if audio.size == 0:
        raise AudioError(f"{path}: the file contains no audio samples")
    return audio
