"""Audio input for Whisper: any file soundfile reads, any rate, any channel count.

Long files are never loaded whole: `AudioStream` reads blocks, mixes them down
to mono and resamples them to 16 kHz incrementally (soxr's streaming
resampler), keeping only the samples the decoder may still seek back to. A
2-hour file therefore costs a few 30 s windows of memory, not 460 MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
BLOCK_FRAMES = 1 << 16  # frames read per block from the file


class AudioError(ValueError):
    """The audio cannot be used; the message says why and names the file."""


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


def _check_finite(block: np.ndarray, path: str, offset_s: float) -> None:
    if not np.isfinite(block).all():
        raise AudioError(f"{path}: non-finite samples (NaN or Inf) near {offset_s:.2f} s")


class AudioStream:
    """Mono 16 kHz samples of a file, read and resampled on demand.

    `window(start, length)` returns samples [start, start+length) at 16 kHz
    (zero-padded past the end); `release(before)` lets the stream drop samples
    the caller will not ask for again.
    """

    def __init__(self, path: str | Path) -> None:
        self.info = probe(path)
        self._file = sf.SoundFile(self.info.path)
        self._resampler = (
            None if self.info.sample_rate == SAMPLE_RATE
            else soxr.ResampleStream(self.info.sample_rate, SAMPLE_RATE, 1, dtype="float32",
                                     quality="HQ"))
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # 16 kHz sample index of _buf[0]
        self._frames_read = 0
        self._eof = False

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

    def window(self, start: int, length: int) -> np.ndarray:
        if start < self._buf_start:
            raise ValueError(f"sample {start} was already released (stream starts at "
                             f"{self._buf_start})")
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

    def release(self, before: int) -> None:
        drop = min(max(0, before - self._buf_start), len(self._buf))
        if drop:
            self._buf = self._buf[drop:].copy()
            self._buf_start += drop


def load_audio(path: str | Path) -> np.ndarray:
    """The whole file as mono float32 at 16 kHz (for short clips and tests)."""
    with AudioStream(path) as stream:
        while not stream._eof:
            stream._read_block()
        audio = stream._buf.copy()
    if audio.size == 0:
        raise AudioError(f"{path}: the file contains no audio samples")
    return audio
