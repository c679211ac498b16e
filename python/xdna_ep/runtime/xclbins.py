"""Where a design's xclbin and instruction stream live, and how to read them.

The kernel manifest (kernels/manifest.json, shipped as xdna_ep._kernels)
names, per kernel and per fused design, its xclbin and instruction file. Files are looked up in a
search path: every directory in $XDNA_EP_XCLBIN_DIR (os.pathsep separated),
then the package's installed xclbin directory (xdna_ep/_kernels/xclbin).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENV_XCLBIN_DIR = "XDNA_EP_XCLBIN_DIR"
DEFAULT_KERNEL_NAME = "MLIR_AIE"
_INSTS_KEYS = ("insts", "instructions", "insts_file", "instr")


class ManifestError(RuntimeError):
    """The kernel manifest is missing or malformed."""


def kernels_dir() -> Path:
    return Path(importlib.import_module("xdna_ep._kernels").__file__).resolve().parent


def default_manifest_path() -> Path:
    return kernels_dir() / "manifest.json"


def search_path(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    dirs = [Path(p) for p in env.get(ENV_XCLBIN_DIR, "").split(os.pathsep) if p]
    return dirs + [kernels_dir() / "xclbin"]


@dataclass(frozen=True)
class DesignEntry:
    """A design as the manifest names it."""

    name: str
    xclbin: str            # file name (relative to a search-path directory) or absolute
    insts: str
    kernel: str = DEFAULT_KERNEL_NAME
    design: str = ""       # the launches' design name ("" = `name`; a dynamic form's
    #                        entry is "<design>.dynamic", its launches say "<design>")

    @property
    def launch_design(self) -> str:
        return self.design or self.name


DYNAMIC_FORM = ".dynamic"   # suffix of a design's dynamic-form entry


def entry_name(design: str, dynamic: bool, entries: Mapping[str, DesignEntry]) -> str:
    """The manifest entry whose files run a launch of `design`: its dynamic form's
    (own xclbin and instructions: the scales are reduced on the array, another
    runtime sequence) when the launch runs dynamic-mode stages and the manifest
    declares that form, else the design's own. Why separate files: the static
    xclbin of a fused design must never receive a dynamic launch."""
    key = design + DYNAMIC_FORM
    return key if dynamic and key in entries else design


@dataclass(frozen=True)
class DesignFiles:
    """A design whose files were found."""

    entry: DesignEntry
    xclbin: Path
    insts: Path


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    """The manifest document (through xdna_ep.kernel_specs.manifest when it offers a loader)."""
    if path is None:
        try:
            mod = importlib.import_module("xdna_ep.kernel_specs.manifest")
        except ModuleNotFoundError:
            mod = None
        loader = getattr(mod, "load_manifest", None)
        if callable(loader):
            try:
                doc = loader()
            except TypeError:        # a loader with required arguments: read the file
                doc = None
            if isinstance(doc, Mapping):
                return dict(doc)
        path = default_manifest_path()
    if not path.is_file():
        raise ManifestError(f"kernel manifest not found at {path} (it is written by the "
                            "kernels build: kernels/manifest.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"kernel manifest {path} is not valid JSON: {exc}") from exc


def design_entries(doc: Mapping[str, Any]) -> dict[str, DesignEntry]:
    """Every launchable design: each entry of "kernels" (a single-stage launch is
    named after its kernel) and of "designs" (fused chains). Either section may be
    a mapping name -> entry or a list of entries with "name"."""
    sections = [doc.get("kernels"), doc.get("designs")]
    if all(sec is None for sec in sections):
        raise ManifestError("kernel manifest has neither a 'kernels' nor a 'designs' section")
    kernel_name = str(doc.get("xclbin_kernel_name", DEFAULT_KERNEL_NAME))
    out = {}
    for raw in sections:
        if raw is None:
            continue
        items = raw.items() if isinstance(raw, Mapping) else \
            ((d.get("name"), d) for d in raw if isinstance(d, Mapping))
        for name, d in items:
            if not name or not isinstance(d, Mapping):
                raise ManifestError(f"kernel manifest: malformed design entry {name!r}")
            out[str(name)] = DesignEntry(
                str(name), str(d.get("xclbin", f"{name}.xclbin")),
                str(next((d[k] for k in _INSTS_KEYS if k in d), f"{name}.insts.bin")),
                str(d.get("kernel", kernel_name)))
            if d.get("dynamic_stages"):   # the dynamic form: its own files
                out[f"{name}{DYNAMIC_FORM}"] = DesignEntry(
                    f"{name}{DYNAMIC_FORM}",
                    str(d.get("dynamic_xclbin", f"{name}_dynamic.xclbin")),
                    str(d.get("dynamic_instructions", f"{name}_dynamic.insts.bin")),
                    str(d.get("kernel", kernel_name)), design=str(name))
    return out


def launch_entry_names(launches: Sequence[Any], manifest: Mapping[str, Any] | None = None
                       ) -> list[str]:
    """Per launch (a compile.program.Launch), the manifest entry whose files run it
    (entry_name; a launch runs the dynamic form when a stage has the `dynamic`
    attr). A manifest that does not parse leaves the design names: find_designs
    then reports it."""
    try:
        entries = design_entries(load_manifest() if manifest is None else manifest)
    except ManifestError:
        entries = {}
    return [entry_name(ln.design, any(st.attrs.get("dynamic") for st in ln.stages), entries)
            for ln in launches]


def _find(name: str, dirs: Sequence[Path]) -> Path | None:
    p = Path(name)
    if p.is_absolute():
        return p if p.is_file() else None
    for d in dirs:
        if (d / p).is_file():
            return d / p
    return None


@dataclass(frozen=True)
class Lookup:
    found: dict[str, DesignFiles]
    missing: dict[str, str]          # design -> what is missing


def find_designs(designs: Sequence[str] | None, *, manifest: Mapping[str, Any] | None = None,
                 dirs: Sequence[Path] | None = None) -> Lookup:
    """Locates the files of `designs` (all manifest designs when None)."""
    try:
        doc = load_manifest() if manifest is None else manifest
        entries = design_entries(doc)
    except ManifestError as exc:
        names = list(designs or [])
        return Lookup({}, {d: str(exc) for d in names} or {"*": str(exc)})
    dirs = search_path() if dirs is None else list(dirs)
    found, missing = {}, {}
    for name in (entries if designs is None else designs):
        e = entries.get(name)
        if e is None:
            missing[name] = f"design {name!r} is not in the kernel manifest"
            continue
        x, i = _find(e.xclbin, dirs), _find(e.insts, dirs)
        if x is None or i is None:
            absent = [f for f, p in ((e.xclbin, x), (e.insts, i)) if p is None]
            missing[name] = (f"no {' / '.join(absent)} for design {name!r} in "
                             f"{[str(d) for d in dirs]} (set ${ENV_XCLBIN_DIR})")
            continue
        found[name] = DesignFiles(e, x, i)
    return Lookup(found, missing)


def read_instructions(path: Path) -> np.ndarray:
    """Instruction words (uint32): `.txt` holds one hex word per line, else raw binary."""
    if path.suffix == ".txt":
        words = [int(tok, 16) for tok in path.read_text().split()]
        arr = np.array(words, dtype=np.uint32)
    else:
        data = path.read_bytes()
        if len(data) % 4:
            raise ValueError(f"instruction file {path} is {len(data)} bytes, "
                             "not a whole number of 32-bit words")
        arr = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    if arr.size == 0:
        raise ValueError(f"instruction file {path} is empty")
    return arr
