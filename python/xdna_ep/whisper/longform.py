"""Long-form transcription: 30 s windows with timestamp seeking.

Each window is decoded with timestamps; complete segments are kept and the
next window starts at the last complete timestamp, so words cut at a window
edge are decoded again in the next window rather than lost or doubled.
Audio is streamed (AudioStream), so memory stays bounded on long files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, AudioError, AudioStream
from .decoding import Decoder, DecoderBackend, DecodingOptions, DecodingResult
from .features import HOP_LENGTH, N_FRAMES, N_SAMPLES, log_mel_spectrogram
from .formats import Segment, Transcript
from .tokenizer import WhisperTokenizer

INPUT_STRIDE = 2  # mel frames per encoder position (20 ms per timestamp step)
# Silence handling. Whisper's own rule (no-speech probability above the threshold
# AND low average log-probability) lets confident hallucinations through on
# silent or near-silent windows ("you", ". . ."), so two energy rules join it:
DIGITAL_SILENCE_DBFS = -70.0  # quieter than this: not decoded at all
QUIET_DBFS = -45.0  # quieter than this and no-speech probable: no text
FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE  # 10 ms


@dataclass
class TranscribeOptions:
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    condition_on_previous_text: bool = True
    progress: bool | None = None  # None: show a bar when the audio is longer than one window


ProgressCallback = Callable[[int, int], None]  # (frames done, frames total)


def _split_segments(tokens: list[int], tok: WhisperTokenizer, time_offset: float,
                    segment_frames: int) -> tuple[list[Segment], int]:
    """Segments from one window's tokens, and how many mel frames to advance."""
    tb = tok.timestamp_begin
    is_ts = [t >= tb for t in tokens]
    single_ending = len(is_ts) >= 2 and is_ts[-1] and not is_ts[-2]
    cuts = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
    segments: list[Segment] = []
    if cuts:
        if single_ending:
            cuts.append(len(tokens))
        last = 0
        for cut in cuts:
            piece = tokens[last:cut]
            start = time_offset + tok.timestamp_seconds(piece[0])
            end = time_offset + tok.timestamp_seconds(piece[-1])
            text = tok.decode(piece)
            if text.strip():
                segments.append(Segment(start, end, text, tuple(piece)))
            last = cut
        if single_ending:
            advance = segment_frames
        else:  # resume at the last complete timestamp
            advance = (tokens[last - 1] - tb) * INPUT_STRIDE
    else:
        duration = segment_frames * FRAME_SECONDS
        stamps = [t for t in tokens if t >= tb]
        if stamps and stamps[-1] != tb:
            duration = tok.timestamp_seconds(stamps[-1])
        text = tok.decode(tokens)
        if text.strip():
            segments.append(Segment(time_offset, time_offset + duration, text, tuple(tokens)))
        advance = segment_frames
    return segments, max(advance, 1)


def rms_dbfs(samples: np.ndarray) -> float:
    """Level of `samples` in dB relative to full scale (-inf for empty/zero)."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def transcribe_stream(stream: AudioStream, backend: DecoderBackend, tok: WhisperTokenizer,
                      options: TranscribeOptions | None = None,
                      on_progress: ProgressCallback | None = None) -> Transcript:
    opts = options or TranscribeOptions()
    dec_opts = opts.decoding
    decoder = Decoder(backend, tok)
    n_mels = getattr(backend, "n_mels", 80)
    total_frames = -(-stream.num_samples // HOP_LENGTH)
    t0 = time.perf_counter()
    seek = 0
    segments: list[Segment] = []
    prompt: list[int] = []
    language = dec_opts.language
    while not stream.at_end(seek * HOP_LENGTH):
        total_frames = max(total_frames, seek + 1)
        segment_frames = min(N_FRAMES, total_frames - seek)
        audio = stream.window(seek * HOP_LENGTH, N_SAMPLES)
        audio[segment_frames * HOP_LENGTH:] = 0.0  # never look past this window's span
        level = rms_dbfs(audio[:segment_frames * HOP_LENGTH])
        if level < DIGITAL_SILENCE_DBFS:
            seek += segment_frames
            stream.release(seek * HOP_LENGTH)
            if on_progress:
                on_progress(min(seek, total_frames), total_frames)
            continue
        mel = log_mel_spectrogram(audio, n_mels)[None]
        enc = backend.encode(mel)
        if language is None:
            language, _ = decoder.detect_language(enc)
            dec_opts = DecodingOptions(**{**dec_opts.__dict__, "language": language})
        result: DecodingResult = decoder.decode(
            enc, dec_opts, prompt if opts.condition_on_previous_text else None)
        time_offset = seek * FRAME_SECONDS
        skip = (dec_opts.no_speech_threshold is not None
                and result.no_speech_prob > dec_opts.no_speech_threshold
                and (level < QUIET_DBFS or dec_opts.logprob_threshold is None
                     or result.avg_logprob < dec_opts.logprob_threshold))
        if skip:  # silence: no text, move a full window on
            advance = segment_frames
        else:
            new, advance = _split_segments(result.tokens, tok, time_offset, segment_frames)
            segments.extend(new)
            if not dec_opts.timestamps:
                advance = segment_frames
            if result.temperature > 0.5:
                prompt = []  # a hot fallback is not a good prompt
            else:
                prompt.extend(t for s in new for t in s.tokens)
        seek += advance
        stream.release(seek * HOP_LENGTH)
        if on_progress:
            on_progress(min(seek, total_frames), total_frames)
    if stream.num_samples == 0:  # a header promising frames that do not decode
        raise AudioError(f"{stream.info.path}: the file contains no audio samples "
                         f"(its header says {stream.info.frames} frames)")
    duration = stream.num_samples / SAMPLE_RATE
    text = "".join(s.text for s in segments).strip()
    return Transcript(text=text, segments=segments, language=language or "en",
                      duration=duration, wall_time=time.perf_counter() - t0)


def transcribe_file(path: str | Path, backend: DecoderBackend, tok: WhisperTokenizer,
                    options: TranscribeOptions | None = None) -> Transcript:
    """Transcribes one file with a progress bar on long audio (tqdm, on stderr)."""
    opts = options or TranscribeOptions()
    with AudioStream(path) as stream:
        if stream.info.frames == 0:
            raise AudioError(f"{path}: the file contains no audio samples")
        show = opts.progress if opts.progress is not None else stream.num_samples > N_SAMPLES
        if not show:
            return transcribe_stream(stream, backend, tok, opts)
        from tqdm import tqdm

        total = -(-stream.num_samples // HOP_LENGTH)
        with tqdm(total=round(total * FRAME_SECONDS, 2), unit="s audio", leave=False,
                  desc=Path(path).name, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
                  "[{elapsed}<{remaining}]") as bar:
            def update(done: int, _total: int) -> None:
                bar.update(round(done * FRAME_SECONDS, 2) - bar.n)
            return transcribe_stream(stream, backend, tok, opts, update)


def encoder_window_features(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """[1, n_mels, 3000] features of the first 30 s of `audio` (calibration helper)."""
    return log_mel_spectrogram(audio[:N_SAMPLES], n_mels)[None]
