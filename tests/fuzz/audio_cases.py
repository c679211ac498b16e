"""Audio files for fuzzing the Whisper front end: valid edge cases and corrupt files.

Every case says what a correct front end must do with it: "ok" (valid audio,
with the expected duration and whether it holds speech), "error" (a clear
AudioError / FileNotFoundError), or "either" (a corrupt file may still decode
partly; then the result must be valid audio, else a clear error).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

# (container, subtype, extension, max rate, max channels) as libsndfile writes them
FORMATS = (
    ("WAV", "PCM_16", "wav", 192_000, 8),
    ("WAV", "FLOAT", "wav", 192_000, 8),
    ("FLAC", "PCM_16", "flac", 192_000, 8),
    ("FLAC", "PCM_24", "flac", 192_000, 8),
    ("OGG", "VORBIS", "ogg", 192_000, 8),
    ("MP3", "MPEG_LAYER_III", "mp3", 48_000, 2),
)
RATES = (8_000, 11_025, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000)
LOSSY = {"VORBIS", "MPEG_LAYER_III"}

TONE_START, TONE_END, CLIP_SECONDS = 0.5, 1.5, 2.0


@dataclass(frozen=True)
class AudioCase:
    name: str
    path: Path
    expect: str                     # "ok" | "error" | "either"
    speech: bool = False            # when ok: holds a tone burst (else silence)
    seconds: float | None = None    # when ok: duration
    channels_mean: np.ndarray | None = None  # exact expected mono signal (16 kHz PCM only)
    lossy: bool = False


def tone(seconds: float, rate: int, amplitude: float = 0.5, freq: float = 440.0,
         start: float = TONE_START, end: float = TONE_END) -> np.ndarray:
    """A sine burst in [start, end) inside `seconds` of silence (mono float32)."""
    x = np.zeros(int(round(seconds * rate)), np.float32)
    a, b = int(start * rate), int(end * rate)
    t = np.arange(b - a) / rate
    x[a:b] = amplitude * np.sin(2 * np.pi * freq * t)
    return x


def _spread(mono: np.ndarray, channels: int) -> np.ndarray:
    """[frames, channels]: channel k carries mono * (k+1)/channels (a known mix-down)."""
    gains = (np.arange(channels, dtype=np.float32) + 1) / channels
    return (mono[:, None] * gains[None, :]).astype(np.float32)


def _write(path: Path, data: np.ndarray, rate: int, fmt: str, subtype: str) -> Path:
    sf.write(str(path), data, rate, format=fmt, subtype=subtype)
    return path


def valid_cases(root: Path) -> list[AudioCase]:
    """Tones and silence in every format, rate (8-192 kHz) and channel count (1-8)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[AudioCase] = []
    for fmt, subtype, ext, max_rate, max_ch in FORMATS:
        lossy = subtype in LOSSY
        for rate in RATES:
            if rate > max_rate:
                continue
            for ch in sorted({1, 2, min(max_ch, 8)} if rate not in (16_000, 48_000)
                             else set(range(1, max_ch + 1))):
                stem = f"{fmt}_{subtype}_{rate}_{ch}ch"
                data = _spread(tone(CLIP_SECONDS, rate), ch)
                p = _write(root / f"{stem}.{ext}", data, rate, fmt, subtype)
                mean = None
                if rate == 16_000 and subtype in ("PCM_16", "FLOAT", "PCM_24"):
                    mean = data.mean(axis=1, dtype=np.float32)
                cases.append(AudioCase(stem, p, "ok", True, CLIP_SECONDS, mean, lossy))
            silent = np.zeros((int(CLIP_SECONDS * rate), 1), np.float32)
            p = _write(root / f"{fmt}_{subtype}_{rate}_silent.{ext}", silent, rate, fmt,
                       subtype)
            cases.append(AudioCase(p.stem, p, "ok", False, CLIP_SECONDS, lossy=lossy))
    # clipped: a square wave at full scale, and (float WAV) far beyond full scale
    sq = np.sign(tone(CLIP_SECONDS, 16_000)).astype(np.float32)
    for fmt, subtype, ext, *_ in FORMATS:
        rate = 16_000
        p = _write(root / f"clipped_{subtype}.{ext}", sq[:, None] * 1.0, rate, fmt, subtype)
        cases.append(AudioCase(p.stem, p, "ok", True, CLIP_SECONDS, lossy=subtype in LOSSY))
    for gain in (4.0, 1e4):
        p = _write(root / f"overrange_{gain:g}.wav", sq[:, None] * gain, 16_000, "WAV", "FLOAT")
        cases.append(AudioCase(p.stem, p, "ok", True, CLIP_SECONDS))
    # one sample (any result must be valid), zero samples (an error)
    for fmt, subtype, ext, *_ in FORMATS:
        if subtype in LOSSY:
            continue  # lossy encoders pad a single sample to a whole frame
        p = _write(root / f"one_sample_{subtype}.{ext}", np.array([[0.25]], np.float32),
                   16_000, fmt, subtype)
        cases.append(AudioCase(p.stem, p, "either"))
        p = _write(root / f"zero_samples_{subtype}.{ext}", np.zeros((0, 1), np.float32),
                   16_000, fmt, subtype)
        cases.append(AudioCase(p.stem, p, "error"))
    return cases


def non_finite_cases(root: Path) -> list[AudioCase]:
    """Float WAVs holding NaN / +Inf / -Inf (only float formats can) and huge values."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[AudioCase] = []
    for label, value in (("nan", np.nan), ("posinf", np.inf), ("neginf", -np.inf)):
        for where in ("first", "middle", "last"):
            x = tone(CLIP_SECONDS, 16_000)
            idx = {"first": 0, "middle": len(x) // 2, "last": len(x) - 1}[where]
            x[idx] = value
            for subtype in ("FLOAT", "DOUBLE"):
                p = _write(root / f"{label}_{where}_{subtype}.wav", x[:, None], 16_000, "WAV",
                           subtype)
                cases.append(AudioCase(p.stem, p, "error"))
    # finite but absurd: 3e38 is float32-representable, its power is not
    for value in (1e20, 3e38):
        x = tone(CLIP_SECONDS, 16_000, amplitude=1.0) * np.float32(value)
        p = _write(root / f"huge_{value:g}.wav", x[:, None], 16_000, "WAV", "FLOAT")
        cases.append(AudioCase(p.stem, p, "either"))
    return cases


def corrupt_cases(root: Path, seed: int = 0) -> list[AudioCase]:
    """Truncated, bit-flipped, header-garbled and fake files of every format."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    cases: list[AudioCase] = []
    for fmt, subtype, ext, *_ in FORMATS:
        src = _write(root / f"src_{subtype}.{ext}", _spread(tone(CLIP_SECONDS, 16_000), 2),
                     16_000, fmt, subtype)
        good = src.read_bytes()
        n = len(good)
        variants: dict[str, bytes] = {}
        for cut in sorted({1, 4, 8, 12, 16, 36, 44, 64, 200, n // 4, n // 2, n - 1}):
            if 0 < cut < n:
                variants[f"trunc{cut}"] = good[:cut]
        for k in range(6):  # header garbage: random bytes over the first 64
            b = bytearray(good)
            for i in range(64):
                if rng.random() < 0.3:
                    b[i] = rng.randrange(256)
            variants[f"header{k}"] = bytes(b)
        for k in range(8):  # random bit flips anywhere
            b = bytearray(good)
            for _ in range(rng.choice((1, 4, 32, 256))):
                i = rng.randrange(n)
                b[i] ^= 1 << rng.randrange(8)
            variants[f"flip{k}"] = bytes(b)
        b = bytearray(good)
        b[n // 3: 2 * n // 3] = bytes(2 * n // 3 - n // 3)
        variants["zeroed_middle"] = bytes(b)
        variants["garbage"] = rng.randbytes(4096)
        variants["text"] = b"this is not audio\n" * 10
        variants["doubled_header"] = good[:64] + good
        for label, data in variants.items():
            p = root / f"{subtype}_{label}.{ext}"
            p.write_bytes(data)
            cases.append(AudioCase(p.stem, p, "either"))
    empty = root / "empty.wav"
    empty.write_bytes(b"")
    cases.append(AudioCase("empty_file", empty, "error"))
    d = root / "a_directory.wav"
    d.mkdir(exist_ok=True)
    cases.append(AudioCase("directory", d, "error"))
    cases.append(AudioCase("missing", root / "does_not_exist.flac", "error"))
    # a valid FLAC named .mp3: libsndfile goes by content, so this is valid audio
    flac = (root / "src_PCM_16.flac").read_bytes()
    misnamed = root / "flac_named.mp3"
    misnamed.write_bytes(flac)
    cases.append(AudioCase("misnamed_flac", misnamed, "ok", True, CLIP_SECONDS))
    return cases
