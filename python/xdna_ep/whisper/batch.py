"""Corpus-scale transcription on Ray: files mapped over actors, one model per actor.

    python -m xdna_ep.whisper.batch FILES|LIST... [--address ADDR] [--actors N]
    xdna-ep transcribe --ray [ADDRESS] FILES|LIST...

A LIST is a text file (.txt, .lst, .list) with one audio path per line (blank
lines and # comments skipped). Each actor loads the model once and transcribes
the files it is handed; results stream out as JSON Lines in completion order,
one line per input file. A file that fails, including one whose actor died, is
a line with "ok": false and the error: no input is ever missing from the output.
Ray is the optional extra `[ray]`; without it the entry says so in one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LIST_SUFFIXES = (".txt", ".lst", ".list")
MAX_IN_FLIGHT_PER_ACTOR = 2  # keeps every actor busy without queueing the corpus


class RayMissingError(RuntimeError):
    """ray is not installed."""


def expand_inputs(items: Sequence[str]) -> list[str]:
    """Audio paths from arguments; list files are replaced by the paths they hold."""
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.suffix.lower() in LIST_SUFFIXES:
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(f"cannot read list file {p}: {exc.strerror or exc}") from None
            base = p.parent
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    out.append(str(q if q.is_absolute() else base / q))
        else:
            out.append(item)
    if not out:
        raise ValueError("no audio files given (FILES or a .txt/.lst list file)")
    return out


@dataclass(frozen=True)
class BatchOptions:
    model: str | None = None
    device: str = "cpu"
    beam_size: int = 5
    language: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = False


class Worker:
    """One model per actor; transcribe() never raises (errors are results)."""

    def __init__(self, options: BatchOptions) -> None:
        from .api import WhisperModel

        self.options = options
        self.model = WhisperModel(options.model, device=options.device)

    def transcribe(self, path: str) -> dict[str, Any]:
        import time

        o = self.options
        t0 = time.perf_counter()
        try:
            segments, info = self.model.transcribe(
                path, beam_size=o.beam_size, language=o.language,
                word_timestamps=o.word_timestamps, vad_filter=o.vad_filter)
            segs = list(segments)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a result line
            return failure(path, f"{type(exc).__name__}: {exc}")
        from .formats import _segment_doc

        return {"file": path, "ok": True, "text": "".join(s.text for s in segs).strip(),
                "language": info.language, "duration": round(info.duration, 3),
                "wall_time": round(time.perf_counter() - t0, 3),
                "segments": [_segment_doc(s) for s in segs]}


def failure(path: str, error: str) -> dict[str, Any]:
    return {"file": path, "ok": False, "error": error}


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayMissingError("Ray batch transcription needs the optional extra: "
                              "pip install 'xdna-ep[ray]'") from None
    return ray


def run_batch(files: Sequence[str], options: BatchOptions, address: str | None = None,
              actors: int = 1) -> Iterator[dict[str, Any]]:
    """Result dicts, one per file, as they complete. `address`: an existing Ray
    cluster ("auto", "ray://host:port", ...); None starts (or reuses) a local one."""
    ray = _ray()
    if actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    remote_worker = ray.remote(Worker)
    pool = [remote_worker.remote(options) for _ in range(min(actors, len(files)))]
    pending = list(files)
    in_flight: dict[Any, tuple[str, int]] = {}  # object ref -> (file, actor index)
    busy = [0] * len(pool)

    def submit(k: int) -> None:
        path = pending.pop(0)
        in_flight[pool[k].transcribe.remote(path)] = (path, k)
        busy[k] += 1

    try:
        for k in range(len(pool)):
            while pending and busy[k] < MAX_IN_FLIGHT_PER_ACTOR:
                submit(k)
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            ref = done[0]
            path, k = in_flight.pop(ref)
            busy[k] -= 1
            try:
                yield ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - an actor that died, a lost object
                yield failure(path, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                if isinstance(exc, ray.exceptions.RayActorError):
                    pool[k] = remote_worker.remote(options)  # a fresh model for the rest
            while pending and busy[k] < MAX_IN_FLIGHT_PER_ACTOR:
                submit(k)
    finally:
        for actor in pool:
            ray.kill(actor)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="audio files and/or .txt/.lst list files")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--actors", type=int, default=1, help="actors (one model each)")
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu", choices=("auto", "npu", "emulator", "cpu"))
    p.add_argument("--beam-size", "--beam_size", dest="beam_size", type=int, default=5)
    p.add_argument("--language", default=None)
    p.add_argument("--output", "-o", default=None, help="JSON Lines file (default: stdout)")


def run_cli(inputs: Sequence[str], options: BatchOptions, address: str | None, actors: int,
            output: str | None) -> int:
    """JSON Lines out; exit 1 when any file failed, 2 for unusable arguments."""
    try:
        files = expand_inputs(inputs)
        _ray()
    except (ValueError, RayMissingError) as exc:
        print(f"xdna-ep batch: error: {exc}", file=sys.stderr)
        return 2
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    failed = 0
    try:
        for result in run_batch(files, options, address, actors):
            failed += not result["ok"]
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"xdna-ep batch: {len(files)} file(s), {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m xdna_ep.whisper.batch",
                                description="Transcribe many files on Ray (JSON Lines out).")
    add_arguments(p)
    a = p.parse_args(argv)
    opts = BatchOptions(a.model, a.device, a.beam_size, a.language)
    try:
        return run_cli(a.inputs, opts, a.address, a.actors, a.output)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        print(f"xdna-ep batch: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
