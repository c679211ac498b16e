"""`xdna-ep transcribe`: audio files in, text (and subtitles) out.

openai-whisper's option spellings (`--output_format`/`-f`, `--output_dir`/`-o`,
`--beam_size`, `--word_timestamps True`, ...) are accepted beside ours. Every
input and option is checked before the model loads (a typo costs no start-up),
and no error ends in a traceback: one line on stderr, a non-zero exit, and the
outputs of the files done before are kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audio import AudioError
from .compute_type import COMPUTE_TYPES
from .formats import FORMATS, Transcript, render, to_json_line
from .model import DEVICES

PROG = "xdna-ep transcribe"
STDIN = "-"


def str2bool(value: str) -> bool:
    """openai-whisper's boolean option values (`--word_timestamps True`)."""
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


FILES = "files"  # dest of the positional inputs


def _add_inputs(namespace: argparse.Namespace, values: list[str] | None) -> None:
    setattr(namespace, FILES, [*(getattr(namespace, FILES, None) or []), *(values or [])])


class Files(argparse.Action):
    """The positional audio files; extends the list, so the inputs a boolean
    option hands back (BoolOption) keep their command-line order."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        _add_inputs(namespace, values)


class BoolOption(argparse.Action):
    """openai-whisper's boolean options: `--vad_filter`, `--vad_filter True|False`.

    Why not type=str2bool with nargs='?': argparse takes the word after the
    option as its value before any type check, so `cat a.wav | xdna-ep
    transcribe --vad_filter -` (stdin) and `--vad_filter a.wav` failed with
    "expected True or False, got '-'". A value that is no true/false spelling
    but '-' or an existing path is an input: it goes back to the files (in
    order, see Files) and the option is on; anything else is a usage error.
    """

    def __init__(self, option_strings: list[str], dest: str, default: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", const=True, default=default,
                         metavar="True|False", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if not isinstance(values, str):  # no value: argparse passes const (True)
            setattr(namespace, self.dest, bool(values))
            return
        try:
            on = str2bool(values)
        except argparse.ArgumentTypeError:
            if values != STDIN and not Path(values).exists():
                raise argparse.ArgumentError(
                    self, f"expected True or False (or no value), got {values!r}, which is "
                          f"no existing file either") from None
            on = True
            _add_inputs(namespace, [values])
        setattr(namespace, self.dest, on)


def optional_float(value: str) -> float | None:
    return None if value.strip().lower() == "none" else float(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files with Whisper",
                       description="Transcribe audio (wav/flac/ogg/mp3, any rate and channel "
                                   "count, '-' for stdin) with Whisper; the NPU path does "
                                   "the heavy work. openai-whisper's option spellings work.")
    p.add_argument(FILES, nargs="*", action=Files, help="audio files ('-' reads stdin)")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--sample", action="store_true",
                   help="transcribe the bundled real speech sample")
    p.add_argument("--model", default=None,
                   help="tiny.en (bundled, default), a CTranslate2 Whisper folder or an "
                        "Optimum ONNX export folder")
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="auto|npu|emulator: xdna-ep; cpu: FP32 on ONNX Runtime's CPU provider")
    p.add_argument("--format", "--output_format", "--output-format", "-f", dest="format",
                   default="txt", choices=(*FORMATS, "all"))
    p.add_argument("--output-dir", "--output_dir", "-o", dest="output_dir", default=None,
                   help="write <name>.<format> files here; '-' prints to stdout")
    p.add_argument("--language", default=None,
                   help="language code or name, any case (en, English, FR, ...)")
    p.add_argument("--task", default="transcribe", choices=("transcribe", "translate"))
    p.add_argument("--beam-size", "--beam_size", dest="beam_size", type=int, default=1)
    p.add_argument("--best-of", "--best_of", dest="best_of", type=int, default=5,
                   help="samples per fallback temperature")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--temperature-increment-on-fallback", "--temperature_increment_on_fallback",
                   dest="temperature_increment", type=optional_float, default=0.2)
    p.add_argument("--compression-ratio-threshold", "--compression_ratio_threshold",
                   dest="compression_ratio_threshold", type=optional_float, default=2.4)
    p.add_argument("--logprob-threshold", "--logprob_threshold", dest="logprob_threshold",
                   type=optional_float, default=-1.0)
    p.add_argument("--no-speech-threshold", "--no_speech_threshold", dest="no_speech_threshold",
                   type=optional_float, default=0.6)
    p.add_argument("--condition-on-previous-text", "--condition_on_previous_text",
                   dest="condition_on_previous_text", action=BoolOption, default=True)
    p.add_argument("--initial-prompt", "--initial_prompt", dest="initial_prompt", default=None)
    p.add_argument("--word-timestamps", "--word_timestamps", dest="word_timestamps",
                   action=BoolOption)
    p.add_argument("--vad-filter", "--vad_filter", dest="vad_filter", action=BoolOption)
    p.add_argument("--compute-type", "--compute_type", dest="compute_type", default="default",
                   choices=COMPUTE_TYPES,
                   help="faster-whisper's compute type for the part on ONNX Runtime's CPU "
                        "provider: int8* -> dynamic INT8 MatMul/Gemm, float* -> FP32; "
                        "default: int8, FP32 on --device cpu (NPU regions are always INT8)")
    p.add_argument("--quantization", default=None, choices=("static", "dynamic"),
                   help="INT8 activation scales (default: static with the bundled calibration)")
    p.add_argument("--report", default=None, type=Path,
                   help="write the partitioning report (.json/.html/.txt)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="map the files (or .txt/.lst lists of files) over Ray actors, JSON "
                        "Lines out (extra [ray]); ADDRESS of a cluster, default a local one")
    p.add_argument("--ray-actors", "--ray_actors", dest="ray_actors", type=int, default=1)
    p.set_defaults(run=run)


def _version() -> str:
    from .. import __version__

    return f"xdna-ep {__version__}"


class UsageError(ValueError):
    """An input or option the run cannot start with (exit 2, before the model loads)."""


@dataclass
class Plan:
    """What the run will do, all checked before the model loads."""

    sources: list[str]  # paths, or "-" for stdin
    audio_s: float | None  # total length (None when stdin is among the sources)
    language: str | None
    temperatures: tuple[float, ...]
    out_dir: Path | None  # None: stdout


def _temperatures(args: argparse.Namespace) -> tuple[float, ...]:
    t, inc = args.temperature, args.temperature_increment
    if t < 0 or t > 1.0:
        raise UsageError(f"--temperature must be within [0, 1], got {t}")
    if inc is None or inc <= 0:
        return (t,)
    temps, k = [], 0
    while t + k * inc <= 1.0 + 1e-6:
        temps.append(round(t + k * inc, 6))
        k += 1
    return tuple(temps)


def _check_source(src: str) -> float | None:
    """Seconds of audio in `src` (None for stdin); UsageError if it is unusable."""
    if src == STDIN:
        return None
    from .audio import probe

    try:
        info = probe(src)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except AudioError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {src}: {exc.strerror or exc}") from None
    if info.frames == 0:
        raise UsageError(f"{src}: the file contains no audio samples")
    return info.duration


def make_plan(args: argparse.Namespace) -> Plan:
    from .api import normalise_language

    sources = [str(f) for f in args.files]
    if args.sample:
        from .samples import bundled_sample

        sources.append(str(bundled_sample().audio))
    if not sources:
        raise UsageError("give audio files, '-' for stdin, or --sample")
    if sources.count(STDIN) > 1:
        raise UsageError("stdin ('-') can be read only once")
    if args.beam_size < 1 or args.best_of < 1:
        raise UsageError("--beam-size and --best-of must be >= 1")
    if args.vad_filter:
        from .vad import VadUnavailableError, silero_model_path

        try:
            silero_model_path()
        except VadUnavailableError as exc:
            raise UsageError(str(exc)) from None
    try:
        language = normalise_language(args.language)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out_dir = None
    if args.output_dir not in (None, STDIN):
        out_dir = Path(args.output_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--output-dir {out_dir} exists and is not a directory")
    lengths = [_check_source(src) for src in sources]
    audio_s = None if None in lengths else sum(x for x in lengths if x is not None)
    return Plan(sources, audio_s, language, _temperatures(args), out_dir)


def check_model_capabilities(tok: Any, language: str | None, task: str) -> None:
    """English-only checkpoints: no other language, no translation (before loading)."""
    from .api import normalise_language

    try:
        normalise_language(language, tok)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if task == "translate" and not tok.multilingual:
        raise UsageError("--task translate needs a multilingual checkpoint; this model is "
                         "English-only")


def _tokenizer_for(model: str | None) -> Any:
    import json

    from .model import load_tokenizer, resolve_onnx_dir

    try:
        onnx_dir = resolve_onnx_dir(model)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from None
    cfg_file = onnx_dir / "config.json"
    vocab = json.loads(cfg_file.read_text()).get("vocab_size", 0) if cfg_file.exists() else 0
    return load_tokenizer(onnx_dir, int(vocab))


def _write(t: Transcript, name: str, fmt: str, out_dir: Path | None, many: bool) -> None:
    formats = FORMATS if fmt == "all" else (fmt,)
    out = sys.stdout
    if out_dir is None:
        if many and fmt != "json":
            out.write(f"==> {name} <==\n")  # like head(1): files stay separable
        for f in formats:
            if f == "json":
                out.write(to_json_line(t))  # JSON Lines: one document per line
            elif f == "txt" and fmt == "txt":
                for seg in t.segments:
                    out.write(f"[{seg.start:7.2f} -> {seg.end:7.2f}] {seg.text.strip()}\n")
            else:
                out.write(render(t, f))
        out.flush()
        return
    stem = "stdin" if name == STDIN else Path(name).stem
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in formats:
            (out_dir / f"{stem}.{f}").write_text(render(t, f), encoding="utf-8")
    except OSError as exc:
        raise OSError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None


def _transcribe_via_model(model: Any, source: Any, topts: Any, vad: bool, words: bool
                          ) -> Transcript:
    """Through WhisperModel.transcribe, where the VAD filter and word timestamps live."""
    d = topts.decoding
    t0 = time.perf_counter()
    segments, info = model.transcribe(
        source, language=d.language, task=d.task, beam_size=d.beam_size, best_of=d.best_of,
        temperature=d.temperatures, compression_ratio_threshold=d.compression_ratio_threshold,
        log_prob_threshold=d.logprob_threshold, no_speech_threshold=d.no_speech_threshold,
        condition_on_previous_text=topts.condition_on_previous_text,
        initial_prompt=topts.initial_prompt, vad_filter=vad, word_timestamps=words)
    segs = list(segments)
    from .api import npu_share

    share, device = npu_share(model.loaded)
    return Transcript(text="".join(s.text for s in segs).strip(), segments=segs,
                      language=info.language, duration=info.duration,
                      wall_time=time.perf_counter() - t0, device=device, npu_mac_share=share,
                      extra={"duration_after_vad": round(info.duration_after_vad, 3)})


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed by the reader (| head): not an error of ours
        return 141
    except Exception as exc:  # noqa: BLE001 - the CLI never ends in a traceback
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run_ray(args: argparse.Namespace) -> int:
    from .batch import BatchOptions, run_cli

    inputs = [str(f) for f in args.files]
    address: str | None = args.ray
    if address is not None and (Path(address).exists() or address == "local"):
        if address != "local":  # `--ray a.wav b.wav`: the first file, not an address
            inputs.insert(0, address)
        address = None
    from .api import normalise_language

    try:
        language = normalise_language(args.language)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    opts = BatchOptions(args.model, args.device, args.beam_size, language,
                        bool(args.word_timestamps), bool(args.vad_filter))
    output = None
    if args.output_dir not in (None, STDIN):  # one JSON Lines file in the folder
        out_dir = Path(args.output_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--output-dir {out_dir} exists and is not a directory")
        out_dir.mkdir(parents=True, exist_ok=True)
        output = str(out_dir / "results.jsonl")
    return run_cli(inputs, opts, address, args.ray_actors, output)


def _run(args: argparse.Namespace) -> int:
    if args.ray is not None:
        return _run_ray(args)
    plan = make_plan(args)
    tok = _tokenizer_for(args.model)
    check_model_capabilities(tok, plan.language, args.task)

    from .api import WhisperModel, npu_share
    from .decoding import DecodingOptions
    from .longform import TranscribeOptions

    opts: dict[str, object] = {}
    if args.quantization:
        opts["quantization"] = args.quantization
    if args.report:
        opts["report"] = str(args.report)
    device, device_line = args.device, f"device {args.device} (asked for)"
    if device == "auto":
        from .device import choose_auto

        auto = choose_auto(plan.audio_s)
        device, device_line = auto.device, auto.line
    t0 = time.perf_counter()
    try:
        model = WhisperModel(args.model, device=device, compute_type=args.compute_type,
                             provider_options=opts if device != "cpu" else None)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from None
    load_s = time.perf_counter() - t0
    decoding = DecodingOptions(
        language=plan.language, task=args.task, beam_size=args.beam_size, best_of=args.best_of,
        temperatures=plan.temperatures,
        compression_ratio_threshold=args.compression_ratio_threshold,
        logprob_threshold=args.logprob_threshold, no_speech_threshold=args.no_speech_threshold)
    topts = TranscribeOptions(decoding, args.condition_on_previous_text,
                              progress=False if args.no_progress else None,
                              initial_prompt=args.initial_prompt)
    from .api import transcribe

    failed = 0
    first_line = True
    many = len(plan.sources) > 1
    for src in plan.sources:
        try:
            source: Any = sys.stdin.buffer if src == STDIN else src
            if args.vad_filter or args.word_timestamps:
                t = _transcribe_via_model(model, source, topts, args.vad_filter,
                                          args.word_timestamps)
            else:
                t = transcribe(source, model, options=topts)
            _write(t, src, args.format, plan.out_dir, many)
        except (FileNotFoundError, AudioError, ValueError, OSError) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        share, ran = npu_share(model.loaded)
        if first_line:
            print(f"xdna-ep: model loaded in {load_s:.1f} s; {device_line}; "
                  f"{model.loaded.compute_type.describe()}", file=sys.stderr)
            first_line = False
        path = f"{share:.1%} of MACs on the NPU path" if ran != "cpu" else \
            "CPU FP32 reference path"
        print(f"{'stdin' if src == STDIN else Path(src).name}: audio {t.duration:.1f} s, "
              f"transcribe {t.wall_time:.1f} s, RTF {t.rtf:.3f} (model load "
              f"{load_s:.1f} s not included), device {ran}, {path}", file=sys.stderr)
    return 1 if failed else 0
