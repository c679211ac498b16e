"""The Python face of Whisper on xdna-ep, in faster-whisper's shape.

    from xdna_ep.whisper import WhisperModel
    model = WhisperModel("tiny.en")                 # loads once
    segments, info = model.transcribe("speech.flac", beam_size=5)
    for s in segments:                              # decoded as you iterate
        print(s.start, s.end, s.text, s.avg_logprob, s.no_speech_prob)

Argument names, defaults and result field names follow faster-whisper's
WhisperModel.transcribe, so a faster-whisper script runs after changing its
import. Options we do not implement raise NotImplementedError naming the option
rather than being ignored. `transcribe(path, ...)` stays as a one-call helper
returning a whole Transcript.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, AudioSource, AudioStream, open_audio
from .decoding import DecodingOptions
from .formats import Segment, Transcript, TranscriptionInfo
from .longform import TranscribeOptions, detect_language, iter_segments, transcribe_file
from .model import LoadedModel
from .tokenizer import LANGUAGE_NAMES, WhisperTokenizer

DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
TASKS = ("transcribe", "translate")
# faster-whisper's WhisperModel constructor arguments that only choose CTranslate2
# resources; accepted so scripts run, with the meaning given in docs/WHISPER.md
_CT2_ONLY = ("device_index", "num_workers", "download_root", "local_files_only", "files",
             "revision", "use_auth_token")
# faster-whisper device names -> ours ("cuda" has no meaning here: refused)
_DEVICE_ALIASES = {"auto": "auto", "cpu": "cpu", "npu": "npu", "emulator": "emulator"}


def npu_share(model: LoadedModel) -> tuple[float, str]:
    """(share of the MACs executed so far that ran in NPU regions, device used).

    Each session's plan gives MACs per run (symbolic lengths bound as the plan
    notes say); weighting by how often each session ran makes the encoder (once
    per window) and the decoders (once per token) count for what they did.
    (0.0, "cpu") for plain ONNX Runtime sessions."""
    total = npu = 0.0
    device = model.device
    for name, sess in model.sessions.items():
        plan = getattr(sess, "xdna_plan", None)
        if plan is None:
            continue
        runs = model.run_counts.get(name, 0)
        total += runs * plan.total_macs
        npu += runs * plan.npu_macs
        start = getattr(sess, "xdna_start", None)
        device = (start.device if start is not None and start.device else device)
    return (npu / total if total else 0.0), device


def normalise_language(language: str | None, tok: WhisperTokenizer | None = None) -> str | None:
    """A language code from a code or an English name in any case ("English", "FR").

    With a tokenizer, also checks the model can do it: an English-only checkpoint
    refuses any other language (it has no language tokens to ask for one)."""
    if language is None:
        return None
    key = language.strip().lower()
    names = {name: code for code, name in LANGUAGE_NAMES.items()}
    code = names.get(key, key)
    if tok is not None:
        if not tok.multilingual:
            if code != "en":
                raise ValueError(f"this is an English-only model; language {language!r} "
                                 "needs a multilingual checkpoint")
        elif code not in tok.language_tokens:
            raise ValueError(f"unknown language {language!r} for this model (codes: "
                             f"{', '.join(sorted(tok.language_tokens))})")
    elif len(code) > 3 and code not in names.values():
        raise ValueError(f"unknown language {language!r} (give a code such as 'en' or a "
                         f"name such as 'English')")
    return code


def _temperatures(temperature: float | Iterable[float]) -> tuple[float, ...]:
    temps = (float(temperature),) if isinstance(temperature, int | float) else tuple(
        float(t) for t in temperature)
    if not temps or any(t < 0 or not np.isfinite(t) for t in temps):
        raise ValueError(f"temperature must be a number >= 0 or a non-empty sequence of them, "
                         f"got {temperature!r}")
    return temps


@dataclass(frozen=True)
class TranscriptionOptions:
    """What transcribe() was asked for (faster-whisper exposes the same in info)."""

    language: str | None
    task: str
    beam_size: int
    best_of: int
    temperatures: tuple[float, ...]
    compression_ratio_threshold: float | None
    log_prob_threshold: float | None
    no_speech_threshold: float | None
    condition_on_previous_text: bool
    prompt_reset_on_temperature: float
    initial_prompt: str | None
    without_timestamps: bool
    word_timestamps: bool
    vad_filter: bool


class WhisperModel:
    """A Whisper model loaded once on xdna-ep (faster-whisper's WhisperModel shape).

    model_size_or_path: None or "tiny.en" (the bundled checkpoint), a CTranslate2
    checkpoint folder (faster-whisper's format) or an Optimum ONNX export folder.
    device: "auto" (NPU if present, else the bit-exact emulator), "npu", "emulator"
    or "cpu" (ONNX Runtime FP32 reference). compute_type, faster-whisper's names,
    says how the part on ONNX Runtime's CPU provider runs (NPU regions always run
    INT8): "int8", "int8_float32", "int8_float16", "int8_bfloat16" -> its
    MatMul/Gemm in ONNX Runtime dynamic INT8; "float32", "float16", "bfloat16" ->
    FP32; "default"/"auto" -> int8, except FP32 on device "cpu" (compute_type.py).
    cpu_threads > 0 caps ONNX Runtime's threads."""

    def __init__(self, model_size_or_path: str | Path | None = None, device: str = "auto",
                 compute_type: str = "default", cpu_threads: int = 0,
                 provider_options: dict[str, Any] | None = None, **ct2_options: Any) -> None:
        unknown = sorted(set(ct2_options) - set(_CT2_ONLY))
        if unknown:
            raise TypeError(f"WhisperModel() got unexpected argument(s): {', '.join(unknown)}")
        if device not in _DEVICE_ALIASES:
            raise ValueError(f"unknown device {device!r}: xdna-ep runs on 'auto', 'npu', "
                             "'emulator' or 'cpu' (there is no CUDA path)")
        self.loaded = LoadedModel.load(model_size_or_path, _DEVICE_ALIASES[device],
                                       provider_options, cpu_threads, compute_type)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> WhisperModel:
        """Wraps sessions already created (benchmarks time their own backend)."""
        wm = cls.__new__(cls)
        wm.loaded = loaded
        return wm

    @property
    def compute_type(self) -> str:
        """What the CPU part runs: "int8" (ONNX Runtime dynamic INT8 MatMul/Gemm) or
        "float32" (the compute_type asked for, resolved for the device)."""
        return self.loaded.compute_type.name

    @property
    def tokenizer(self) -> WhisperTokenizer:
        return self.loaded.tokenizer

    @property
    def is_multilingual(self) -> bool:
        return self.loaded.tokenizer.multilingual

    @property
    def supported_languages(self) -> list[str]:
        tok = self.loaded.tokenizer
        return sorted(tok.language_tokens) if tok.multilingual else ["en"]

    @property
    def device(self) -> str:
        """The device that ran (after auto's choice): npu, emulator or cpu."""
        return npu_share(self.loaded)[1]

    def detect_language(self, audio: AudioSource) -> tuple[str, float, list[tuple[str, float]]]:
        """(language, probability, all probabilities) of the first 30 s."""
        with open_audio(audio) as stream:
            g = detect_language(stream, self.loaded.backend, self.loaded.tokenizer)
        return g.language, g.probability, g.all_probs

    def transcribe(self, audio: AudioSource, language: str | None = None,
                   task: str = "transcribe", beam_size: int = 5, best_of: int = 5,
                   patience: float = 1.0, length_penalty: float = 1.0,
                   temperature: float | Iterable[float] = DEFAULT_TEMPERATURES,
                   compression_ratio_threshold: float | None = 2.4,
                   log_prob_threshold: float | None = -1.0,
                   no_speech_threshold: float | None = 0.6,
                   condition_on_previous_text: bool = True,
                   prompt_reset_on_temperature: float = 0.5,
                   initial_prompt: str | Iterable[int] | None = None,
                   prefix: str | None = None, suppress_blank: bool = True,
                   suppress_tokens: list[int] | None = (-1,),  # type: ignore[assignment]
                   without_timestamps: bool = False, word_timestamps: bool = False,
                   vad_filter: bool = False, vad_parameters: Any = None,
                   log_progress: bool = False, **unsupported: Any
                   ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        """Transcribes `audio` (a path, a binary file object, or float32 mono samples at
        16 kHz); returns (segments, info). Segments are decoded lazily, as the
        iterator is consumed; info is ready at once (language detected first)."""
        self._refuse(unsupported, patience=patience, length_penalty=length_penalty,
                     prefix=prefix, suppress_tokens=suppress_tokens)
        tok = self.loaded.tokenizer
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if task == "translate" and not tok.multilingual:
            raise ValueError("task 'translate' needs a multilingual checkpoint; this one is "
                             "English-only")
        if beam_size < 1 or best_of < 1:
            raise ValueError(f"beam_size and best_of must be >= 1 (got {beam_size}, {best_of})")
        code = normalise_language(language, tok)
        temps = _temperatures(temperature)
        if isinstance(initial_prompt, str) or initial_prompt is None:
            prompt_text = initial_prompt
        else:
            prompt_text = tok.decode(list(initial_prompt))
        options = TranscriptionOptions(
            code, task, beam_size, best_of, temps, compression_ratio_threshold,
            log_prob_threshold, no_speech_threshold, condition_on_previous_text,
            prompt_reset_on_temperature, prompt_text, without_timestamps, word_timestamps,
            vad_filter)
        aligner = self._aligner() if word_timestamps else None
        vad_opts = time_map = None
        if vad_filter:
            from .vad import VadOptions, silero_model_path

            vad_opts = VadOptions.from_any(vad_parameters)
            silero_model_path()  # missing model: a clear error now, not mid-iteration
        stream = open_audio(audio)
        try:
            if stream.info.frames == 0:
                from .audio import AudioError

                raise AudioError(f"{stream.info.path}: the file contains no audio samples")
            duration = stream.num_samples / SAMPLE_RATE
            if vad_opts is not None:  # two passes over the audio, neither holding it all
                from .vad import speech_stream

                stream, time_map, n_samples = speech_stream(stream, vad_opts)
                duration = n_samples / SAMPLE_RATE
            backend = self.loaded.backend
            if code is None and stream.num_samples == 0:
                code, prob, all_probs = "en", 0.0, None  # all silence: nothing to detect
            elif code is None:
                guess = detect_language(stream, backend, tok)
                code, prob, all_probs = guess.language, guess.probability, guess.all_probs
            else:
                prob, all_probs = 1.0, None
        except BaseException:
            stream.close()
            raise
        decoding = DecodingOptions(
            language=code, task=task, timestamps=not without_timestamps, beam_size=beam_size,
            best_of=best_of, temperatures=temps,
            compression_ratio_threshold=compression_ratio_threshold,
            logprob_threshold=log_prob_threshold, no_speech_threshold=no_speech_threshold,
            suppress_blank=suppress_blank)
        topts = TranscribeOptions(decoding, condition_on_previous_text,
                                  progress=log_progress, initial_prompt=prompt_text,
                                  prompt_reset_on_temperature=prompt_reset_on_temperature)
        info = TranscriptionInfo(code, prob, duration, stream.num_samples / SAMPLE_RATE,
                                 all_probs, replace(options, language=code), vad_opts)
        return self._segments(stream, topts, time_map, aligner), info

    def _aligner(self) -> Any:
        """The cross-attention decoder for word timestamps (built on first use)."""
        if getattr(self, "_word_aligner", None) is None:
            from .alignment import CrossAttentionAligner

            self._word_aligner = CrossAttentionAligner.load(self.loaded.onnx_dir,
                                                            self.loaded.tokenizer)
        return self._word_aligner

    def _segments(self, stream: AudioStream, opts: TranscribeOptions,
                  time_map: Any = None, aligner: Any = None) -> Iterator[Segment]:
        with stream:
            if stream.num_samples == 0:  # the VAD found no speech
                return
            for seg in iter_segments(stream, self.loaded.backend, self.loaded.tokenizer, opts,
                                     aligner=aligner):
                if time_map is not None:  # times in the original audio
                    start, end = time_map.span(seg.start, seg.end)
                    words = None if seg.words is None else tuple(
                        replace(w, start=time_map.original(w.start),
                                end=time_map.original(w.end, is_end=True)) for w in seg.words)
                    seg = replace(seg, start=start, end=end, words=words)
                yield seg

    @staticmethod
    def _refuse(unsupported: dict[str, Any], **given: Any) -> None:
        """NotImplementedError for faster-whisper options we do not implement, unless
        the caller left them at faster-whisper's default."""
        if unsupported:
            raise NotImplementedError(
                f"xdna_ep.whisper does not implement faster-whisper option(s) "
                f"{', '.join(sorted(unsupported))}")
        defaults = {"patience": 1.0, "length_penalty": 1.0, "prefix": None,
                    "suppress_tokens": (-1,)}
        for name, value in given.items():
            default = defaults[name]
            same = (tuple(value) == default if name == "suppress_tokens" and value is not None
                    else value == default)
            if not same:
                raise NotImplementedError(f"xdna_ep.whisper does not implement {name}="
                                          f"{value!r} (only faster-whisper's default "
                                          f"{default!r})")


def transcribe(path: AudioSource, model: str | Path | WhisperModel | LoadedModel | None = None,
               device: str = "auto", language: str | None = None, beam_size: int = 1,
               timestamps: bool = True, progress: bool | None = None,
               provider_options: dict[str, Any] | None = None,
               options: TranscribeOptions | None = None,
               compute_type: str = "default") -> Transcript:
    """Transcribes one input in one call; returns text and timestamped segments.

    `options` (longform.TranscribeOptions) overrides language/beam_size/timestamps;
    compute_type as WhisperModel's (used only when the model is loaded here)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if isinstance(model, WhisperModel):
        wm = model.loaded
    elif isinstance(model, LoadedModel):
        wm = model
    else:
        wm = LoadedModel.load(model, device, provider_options, compute_type=compute_type)
    if options is None:
        code = normalise_language(language, wm.tokenizer)
        options = TranscribeOptions(
            decoding=DecodingOptions(language=code, beam_size=beam_size,
                                     timestamps=timestamps),
            progress=progress)
    transcript = transcribe_file(path, wm.backend, wm.tokenizer, options)
    transcript.npu_mac_share, transcript.device = npu_share(wm)
    return transcript
