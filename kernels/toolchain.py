"""The MLIR-AIE toolchain the designs target, how to find each piece and its version.

One table for kernels/build_xclbins.py (what is missing or too old, and the
design hash of its cache) and docs/HARDWARE.md. The minimum versions are the
ones the designs are written against (the IRON API of `aie.iron`: Worker,
Runtime.sequence with task groups, ObjectFifo split/join/forward with
placement; Peano's AIE2 target; xclbinutil packaging an npu1 xclbin). They are
targets, NOT versions anyone has validated on an NPU: the designs have never
been compiled with aiecc here (no toolchain on the development machines).
Pure Python, no package imports: build_xclbins.py runs without xdna_ep.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tool:
    key: str
    what: str            # how the error names it
    minimum: tuple[int, ...]
    install: str         # one line: how to get it


TOOLS: dict[str, Tool] = {
    "mlir_aie": Tool("mlir_aie", "the mlir-aie Python package `aie` (IRON, aiecc.py, aie_api "
                     "headers)", (1, 0),
                     "pip install the mlir_aie wheel of an MLIR-AIE release "
                     "(github.com/Xilinx/mlir-aie, README: quick setup)"),
    "aiecc": Tool("aiecc", "`aiecc.py` on PATH (ships with the mlir_aie wheel)", (1, 0),
                  "installed with mlir_aie; put its bin directory on PATH"),
    "peano": Tool("peano", "Peano (llvm-aie) clang++ for the AIE2 target", (19, 0),
                  "pip install the llvm-aie wheel of the nightly release "
                  "(github.com/Xilinx/llvm-aie/releases), or set PEANO_INSTALL_DIR"),
    "xclbinutil": Tool("xclbinutil", "`xclbinutil` (XRT) on PATH, used by aiecc.py to package "
                       "the xclbin", (2, 19),
                       "install XRT (e.g. built with amd/xdna-driver) and source "
                       "/opt/xilinx/xrt/setup.sh"),
}


def _ver(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _run_version(cmd: Sequence[str]) -> str:
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return (res.stdout + res.stderr).strip()


@dataclass
class Found:
    """One tool on this machine: where, its version text, and what is wrong (if anything)."""

    key: str
    path: str = ""
    version: str = ""
    problem: str = ""

    def describe(self) -> str:
        t = TOOLS[self.key]
        want = ".".join(map(str, t.minimum))
        if not self.path:
            return f"{t.what}: not found (designs target >= {want}; {t.install})"
        return (f"{t.what}: version {self.version or 'unknown'} at {self.path} is older than "
                f"the {want} the designs target ({t.install})")


def find_peano() -> Path | None:
    env = os.environ.get("PEANO_INSTALL_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path(p) / "llvm-aie" for p in sys.path if p]
    for c in candidates:
        if (c / "bin" / "clang++").is_file():
            return c
    return None


def _check(found: Found, text: str) -> Found:
    v = _ver(text)
    found.version = ".".join(map(str, v)) if v else text[:60]
    if v is not None and v < TOOLS[found.key].minimum:
        found.problem = found.describe()
    return found


def probe() -> dict[str, Found]:
    """Every tool of TOOLS as found here (problem empty = present and new enough)."""
    out: dict[str, Found] = {}
    f = Found("mlir_aie")
    if importlib.util.find_spec("aie") is None:
        f.problem = f.describe()
    else:
        f.path = str(Path(importlib.util.find_spec("aie").origin or "aie").parent)
        for dist in ("mlir_aie", "mlir-aie", "mlir_aie_wheel"):
            try:
                _check(f, importlib.metadata.version(dist))
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    out["mlir_aie"] = f
    aiecc = shutil.which("aiecc.py") or shutil.which("aiecc")
    f = Found("aiecc", aiecc or "")
    out["aiecc"] = _check(f, _run_version([aiecc, "--version"])) if aiecc else f
    peano = find_peano()
    f = Found("peano", str(peano) if peano else "")
    out["peano"] = _check(f, _run_version([str(peano / "bin" / "clang++"), "--version"])) \
        if peano else f
    xu = shutil.which("xclbinutil")
    f = Found("xclbinutil", xu or "")
    out["xclbinutil"] = _check(f, _run_version([xu, "--version"])) if xu else f
    for v in out.values():
        if not v.path and not v.problem:
            v.problem = v.describe()
    return out


def versions_key(found: dict[str, Found]) -> str:
    """The tool part of a design hash: every tool's path and version."""
    return ";".join(f"{k}={f.version}@{f.path}" for k, f in sorted(found.items()))
