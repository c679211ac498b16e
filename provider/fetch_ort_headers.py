#!/usr/bin/env python3
"""Fetch ONNX Runtime's C/C++ API headers for building the plugin library.

Why a script: no PyPI wheel or Debian package ships onnxruntime_c_api.h /
onnxruntime_ep_c_api.h. The npm package ``com.github.asus4.onnxruntime``
(pinned version, ORT_API_VERSION 29) carries them, so they are fetched with
npm (the registry's own client: ``npm pack``), unpacked once into a cache and
reused. The headers are never committed to this repository.

Resolution order (first that works):
1. ``$ORT_INCLUDE_DIR`` (a folder holding onnxruntime_ep_c_api.h);
2. the cache ``$XDNA_EP_ORT_HEADERS_CACHE`` or ``~/.cache/xdna-ep/ort-headers/<version>``;
3. ``npm pack com.github.asus4.onnxruntime@<version>`` into the cache.

Prints the include directory on stdout (CMake reads it). Exit status 1 with a
message naming npm when nothing works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "com.github.asus4.onnxruntime"
VERSION = "0.4.9"
ORT_API_VERSION = 29
# The headers inside the npm tarball (one copy; the package repeats them per Apple platform).
HEADER_DIR_IN_TARBALL = "package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers/"
REQUIRED = ("onnxruntime_c_api.h", "onnxruntime_ep_c_api.h", "onnxruntime_cxx_api.h",
            "onnxruntime_cxx_inline.h")


class HeadersUnavailable(RuntimeError):
    """The ORT headers could not be found or fetched."""


def cache_dir() -> Path:
    root = os.environ.get("XDNA_EP_ORT_HEADERS_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "xdna-ep" / "ort-headers"
    return base / VERSION


def _complete(include: Path) -> bool:
    return all((include / h).is_file() for h in REQUIRED)


def _api_version(include: Path) -> int | None:
    for line in (include / "onnxruntime_c_api.h").read_text(errors="replace").splitlines():
        if line.startswith("#define ORT_API_VERSION"):
            return int(line.split()[2])
    return None


def _npm_pack(dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise HeadersUnavailable(
            f"building the XDNA plugin library needs ONNX Runtime's C API headers; they come "
            f"from the npm package {PACKAGE}@{VERSION}, but `npm` is not on PATH. Install npm "
            f"(e.g. `apt-get install npm`) or set ORT_INCLUDE_DIR to a folder holding "
            f"onnxruntime_ep_c_api.h (ORT_API_VERSION {ORT_API_VERSION}).")
    proc = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent",
                           "--pack-destination", str(dest)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HeadersUnavailable(
            f"`npm pack {PACKAGE}@{VERSION}` failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}. Set ORT_INCLUDE_DIR to skip npm.")
    tgz = sorted(dest.glob("*.tgz"))
    if not tgz:
        raise HeadersUnavailable(f"`npm pack {PACKAGE}@{VERSION}` produced no tarball")
    return tgz[0]


def _extract_headers(tgz: Path, include: Path) -> None:
    include.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            if (member.isfile() and member.name.startswith(HEADER_DIR_IN_TARBALL)
                    and member.name.endswith(".h")):
                name = member.name[len(HEADER_DIR_IN_TARBALL):]
                if "/" in name:
                    continue
                src = tar.extractfile(member)
                assert src is not None
                (include / name).write_bytes(src.read())
        lic = next((m for m in tar.getmembers() if m.name == "package/LICENSE"), None)
        if lic is not None:
            src = tar.extractfile(lic)
            assert src is not None
            (include / "LICENSE.onnxruntime").write_bytes(src.read())


def include_dir() -> Path:
    """The folder holding ORT's C API headers (fetching them if needed)."""
    override = os.environ.get("ORT_INCLUDE_DIR")
    if override:
        path = Path(override)
        if not (path / "onnxruntime_ep_c_api.h").is_file():
            raise HeadersUnavailable(f"ORT_INCLUDE_DIR={override} has no onnxruntime_ep_c_api.h")
        return path
    include = cache_dir() / "include"
    if _complete(include):
        return include
    with tempfile.TemporaryDirectory(prefix="xdna-ep-ort-") as tmp:
        tgz = _npm_pack(Path(tmp))
        staging = Path(tmp) / "include"
        _extract_headers(tgz, staging)
        if not _complete(staging):
            raise HeadersUnavailable(f"{PACKAGE}@{VERSION} lacks one of {REQUIRED}")
        include.parent.mkdir(parents=True, exist_ok=True)
        if include.exists():
            shutil.rmtree(include)
        shutil.move(str(staging), str(include))  # whole folder at once: no half-filled cache
    version = _api_version(include)
    if version != ORT_API_VERSION:
        raise HeadersUnavailable(f"{include}: ORT_API_VERSION {version}, expected {ORT_API_VERSION}")
    return include


def main() -> int:
    try:
        print(include_dir())
    except HeadersUnavailable as exc:
        print(f"fetch_ort_headers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
