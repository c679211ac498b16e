"""Long-form transcription: 30 s windows with timestamp seeking.

Each window is decoded with timestamps; complete segments are kept and the
next window starts at the last complete timestamp, so words cut at a window
edge are decoded again in the next window rather than lost or doubled.
Audio is streamed (AudioStream), so memory stays bounded on long files.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .alignment import split_words
from .audio import SAMPLE_RATE, AudioError, AudioSource, AudioStream, open_audio
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
    progress: bool | None = None  # None: a bar on a terminal when the audio is > one window
    initial_prompt: str | None = None  # text that precedes the audio (names, spelling, style)
    prompt_reset_on_temperature: float = 0.5  # a hotter fallback result is no prompt
    trim_silence: bool = True  # segment edges move off long silent stretches (see trim_to_speech)


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


TRIM_FRAME_S = 0.02  # level measured per 20 ms (one timestamp step)
TRIM_MIN_GAP_S = 1.0  # silence at a segment edge shorter than this is kept (natural pauses)
TRIM_MARGIN_S = 0.2  # kept before the first / after the last loud frame
TRIM_BELOW_PEAK_DB = 35.0  # "silent": this far below the window's loudest frame ...
TRIM_FLOOR_DBFS = -60.0  # ... or quieter than this in absolute terms
TRIM_STRAY_SHARE = 0.2  # an edge island with less of the segment's loud time is a stray


def frame_levels(audio: np.ndarray) -> np.ndarray:
    """dBFS per 20 ms frame of 16 kHz mono samples."""
    step = int(TRIM_FRAME_S * SAMPLE_RATE)
    n = len(audio) // step
    frames = audio[:n * step].reshape(n, step).astype(np.float64)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(rms)


def _islands(loud: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """[first, last] frame index pairs of loud stretches; quieter gaps shorter than
    `min_gap` frames are bridged."""
    idx = np.flatnonzero(loud)
    if not idx.size:
        return []
    breaks = np.flatnonzero(np.diff(idx) > min_gap)
    firsts = np.concatenate([[idx[0]], idx[breaks + 1]])
    lasts = np.concatenate([idx[breaks], [idx[-1]]])
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def trim_to_speech(segments: list[Segment], audio: np.ndarray, time_offset: float
                   ) -> list[Segment]:
    """Moves segment edges off long silent stretches of the window's audio.

    Whisper's timestamp tokens are unreliable next to long silence: after a pause
    the model often opens the next segment where the pause began (a subtitle then
    sits on screen through 20 s of silence). The signal level tells where sound
    is. Within a segment, loud stretches separated by more than TRIM_MIN_GAP_S of
    silence are islands; an island at either end holding less than
    TRIM_STRAY_SHARE of the segment's loud time is a stray (the tail of the
    previous utterance, a click) and is dropped; the edges then move to
    TRIM_MARGIN_S before the first / after the last remaining loud frame when
    that removes more than TRIM_MIN_GAP_S. Segments with no loud frame at all
    are left as decoded (their text is the decoder's call, not the level's)."""
    levels = frame_levels(audio)
    if not levels.size or not np.isfinite(levels).any():
        return segments
    threshold = max(TRIM_FLOOR_DBFS, float(np.max(levels)) - TRIM_BELOW_PEAK_DB)
    loud = levels > threshold
    min_gap = int(TRIM_MIN_GAP_S / TRIM_FRAME_S)
    out = []
    for seg in segments:
        lo = max(0, int((seg.start - time_offset) / TRIM_FRAME_S))
        hi = min(len(loud), int(np.ceil((seg.end - time_offset) / TRIM_FRAME_S)))
        islands = _islands(loud[lo:hi], min_gap) if hi > lo else []
        if not islands:
            out.append(seg)
            continue
        sizes = [int(loud[lo + a:lo + b + 1].sum()) for a, b in islands]
        total = sum(sizes)
        while len(islands) > 1 and sizes[0] < TRIM_STRAY_SHARE * total:
            islands, sizes = islands[1:], sizes[1:]
        while len(islands) > 1 and sizes[-1] < TRIM_STRAY_SHARE * total:
            islands, sizes = islands[:-1], sizes[:-1]
        first = time_offset + (lo + islands[0][0]) * TRIM_FRAME_S
        last = time_offset + (lo + islands[-1][1] + 1) * TRIM_FRAME_S
        start, end = seg.start, seg.end
        if first - start > TRIM_MIN_GAP_S:
            start = first - TRIM_MARGIN_S
        if end - last > TRIM_MIN_GAP_S:
            end = last + TRIM_MARGIN_S
        out.append(replace(seg, start=round(start, 3), end=round(end, 3)))
    return out


@dataclass
class LanguageGuess:
    language: str
    probability: float
    all_probs: list[tuple[str, float]]


def detect_language(stream: AudioStream, backend: DecoderBackend, tok: WhisperTokenizer
                    ) -> LanguageGuess:
    """The language of the first 30 s (English-only checkpoints: English, certain)."""
    if not tok.multilingual:
        return LanguageGuess("en", 1.0, [("en", 1.0)])
    audio = stream.window(0, N_SAMPLES)
    frames = min(N_FRAMES, -(-stream.num_samples // HOP_LENGTH))
    audio[frames * HOP_LENGTH:] = 0.0
    mel = log_mel_spectrogram(audio, getattr(backend, "n_mels", 80))[None]
    lang, probs = Decoder(backend, tok).detect_language(backend.encode(mel))
    return LanguageGuess(lang, probs[lang], list(probs.items()))


def with_words(segments: list[Segment], aligner: Any, enc: np.ndarray, sot_seq: list[int],
               tok: WhisperTokenizer, time_offset: float, num_frames: int) -> list[Segment]:
    """Word timestamps for one window's segments (one alignment pass for all), and
    segment times taken from their words (the attention knows where speech is;
    this also keeps segments off pauses)."""
    eot = tok.eot
    text = [[t for t in s.tokens if t < eot] for s in segments]
    words = aligner.words(enc, sot_seq, [t for ts in text for t in ts], num_frames)
    out, k = [], 0
    for seg, ts in zip(segments, text, strict=True):
        n = len(split_words(tok, ts))
        mine = tuple(replace(w, start=round(w.start + time_offset, 3),
                             end=round(w.end + time_offset, 3)) for w in words[k:k + n])
        k += n
        if mine:
            seg = replace(seg, start=mine[0].start, end=max(mine[-1].end, mine[0].start),
                          words=mine)
        else:
            seg = replace(seg, words=())
        out.append(seg)
    return out


def iter_segments(stream: AudioStream, backend: DecoderBackend, tok: WhisperTokenizer,
                  options: TranscribeOptions | None = None,
                  on_progress: ProgressCallback | None = None,
                  aligner: Any = None) -> Iterator[Segment]:
    """Segments of the stream, one 30 s window at a time (lazily: nothing is decoded
    before the caller asks for the next segment). The language must be set in
    options.decoding (see detect_language) for multilingual checkpoints. With an
    aligner (alignment.CrossAttentionAligner) segments carry word timestamps."""
    opts = options or TranscribeOptions()
    dec_opts = opts.decoding
    decoder = Decoder(backend, tok)
    n_mels = getattr(backend, "n_mels", 80)
    total_frames = -(-stream.num_samples // HOP_LENGTH)
    seek = 0
    next_id = 1
    prompt: list[int] = []
    if opts.initial_prompt and opts.initial_prompt.strip():
        prompt = tok.encode(" " + opts.initial_prompt.strip())
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
        result: DecodingResult = decoder.decode(enc, dec_opts, prompt or None)
        time_offset = seek * FRAME_SECONDS
        skip = (dec_opts.no_speech_threshold is not None
                and result.no_speech_prob > dec_opts.no_speech_threshold
                and (level < QUIET_DBFS or dec_opts.logprob_threshold is None
                     or result.avg_logprob < dec_opts.logprob_threshold))
        new: list[Segment] = []
        if skip:  # silence: no text, move a full window on
            advance = segment_frames
        else:
            new, advance = _split_segments(result.tokens, tok, time_offset, segment_frames)
            if not dec_opts.timestamps:
                advance = segment_frames
            if aligner is not None and new:
                sot_seq = tok.sot_sequence(dec_opts.language, dec_opts.task)
                new = with_words(new, aligner, enc, sot_seq, tok, time_offset, segment_frames)
            elif dec_opts.timestamps and opts.trim_silence:
                new = trim_to_speech(new, audio[:segment_frames * HOP_LENGTH], time_offset)
            if (not opts.condition_on_previous_text
                    or result.temperature > opts.prompt_reset_on_temperature):
                prompt = []  # openai-whisper's rule: the initial prompt serves once
            else:
                prompt.extend(t for s in new for t in s.tokens)
        seek_at = seek
        seek += advance
        stream.release(seek * HOP_LENGTH)
        if on_progress:
            on_progress(min(seek, total_frames), total_frames)
        for seg in new:
            yield replace(seg, id=next_id, seek=seek_at, avg_logprob=result.avg_logprob,
                          no_speech_prob=result.no_speech_prob,
                          compression_ratio=result.compression_ratio,
                          temperature=result.temperature)
            next_id += 1
    if stream.num_samples == 0:  # a header promising frames that do not decode
        raise AudioError(f"{stream.info.path}: the file contains no audio samples "
                         f"(its header says {stream.info.frames} frames)")


def transcribe_stream(stream: AudioStream, backend: DecoderBackend, tok: WhisperTokenizer,
                      options: TranscribeOptions | None = None,
                      on_progress: ProgressCallback | None = None) -> Transcript:
    """The whole transcript of a stream (language detected first if not given)."""
    opts = options or TranscribeOptions()
    t0 = time.perf_counter()
    if opts.decoding.language is None:
        guess = detect_language(stream, backend, tok)
        opts = replace(opts, decoding=replace(opts.decoding, language=guess.language))
    segments = list(iter_segments(stream, backend, tok, opts, on_progress))
    duration = stream.num_samples / SAMPLE_RATE
    text = "".join(s.text for s in segments).strip()
    return Transcript(text=text, segments=segments, language=opts.decoding.language or "en",
                      duration=duration, wall_time=time.perf_counter() - t0)


def transcribe_file(path: AudioSource, backend: DecoderBackend, tok: WhisperTokenizer,
                    options: TranscribeOptions | None = None) -> Transcript:
    """Transcribes one file with a progress bar on long audio (tqdm, on stderr)."""
    opts = options or TranscribeOptions()
    with open_audio(path) as stream:
        if stream.info.frames == 0:
            raise AudioError(f"{path}: the file contains no audio samples")
        show = opts.progress if opts.progress is not None else (
            stream.num_samples > N_SAMPLES and sys.stderr.isatty())  # never into logs
        if not show:
            return transcribe_stream(stream, backend, tok, opts)
        from tqdm import tqdm

        total = -(-stream.num_samples // HOP_LENGTH)
        with tqdm(total=round(total * FRAME_SECONDS, 2), unit="s audio", leave=False,
                  desc=Path(stream.info.path).name, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
                  "[{elapsed}<{remaining}]") as bar:
            def update(done: int, _total: int) -> None:
                bar.update(round(done * FRAME_SECONDS, 2) - bar.n)
            return transcribe_stream(stream, backend, tok, opts, update)


def encoder_window_features(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """[1, n_mels, 3000] features of the first 30 s of `audio` (calibration helper)."""
    return log_mel_spectrogram(audio[:N_SAMPLES], n_mels)[None]
