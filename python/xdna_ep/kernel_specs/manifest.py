"""The kernel manifest (kernels/manifest.json, shipped as xdna_ep._kernels).

It names every NPU kernel and fused design: source folder, xclbin and
instruction file names, supported dtypes/shapes/tiles, and the versions that
enter compiled-model cache keys. Launch grouping asks `find_design(chain)`
whether a chain of stage kernels has a fused design (one device launch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

PACKAGE = "xdna_ep._kernels"
FILENAME = "manifest.json"
SUPPORTED_MANIFEST_VERSION = 1
REQUIRED_KERNELS = ("matmul", "quantize", "dequantize", "gelu", "layernorm", "softmax",
                    "attention", "add", "conv1d")
# The one kernel a design's dynamic form may add between (or before) its stages.
DYNAMIC_GLUE = "quantize"
_KERNEL_FIELDS = ("folder", "kernel_version", "header", "aie_source", "design", "xclbin",
                  "instructions", "dtypes", "shapes", "tile")


class ManifestError(ValueError):
    """kernels/manifest.json is missing, unreadable or malformed."""


@dataclass(frozen=True)
class KernelEntry:
    name: str
    folder: str
    kernel_version: int
    header: str
    aie_source: str
    design: str
    xclbin: str
    instructions: str
    dtypes: dict[str, Any]
    shapes: dict[str, Any]
    tile: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DesignEntry:
    name: str
    stages: tuple[str, ...]
    folder: str
    design: str
    xclbin: str
    instructions: str
    kernel_version: int
    # Stage kernels the design performs internally between its listed stages
    # (e.g. conv_frontend's quantize/dequantize around each gelu); a chain
    # matches when it equals `stages` after dropping these.
    glue: tuple[str, ...] = ()
    # The design takes compile-time scales only: a chain with dynamic-mode stages
    # (scale buffers travelling with int8 tensors) is never grouped into it.
    static_only: bool = False
    # The chain the design runs in dynamic mode (empty: none): `stages` with the
    # dynamic quantizes it performs itself, each scale reduced on the array
    # (kernels/common/dynamic_scale.h). Every kernel here that is not one of
    # `stages` (in order) is such a quantize, or one of the design's `glue` kernels
    # in its dynamic mode (conv_frontend's dequantize after each gelu); unlike `glue`
    # it may lead the chain (attn_block quantizes the float q/k/v it reads from IN).
    dynamic_stages: tuple[str, ...] = ()

    def matches(self, chain: tuple[str, ...]) -> bool:
        return tuple(k for k in chain if k not in self.glue) == self.stages and (
            not chain or chain[0] not in self.glue) and (not chain or chain[-1] not in self.glue)

    def dynamic_glue(self) -> tuple[bool, ...]:
        """Per stage of `dynamic_stages`: True where it is a quantize the design adds
        (the positions `stages` does not account for, matched in order)."""
        out, i = [], 0
        for k in self.dynamic_stages:
            if i < len(self.stages) and k == self.stages[i]:
                out.append(False)
                i += 1
            else:
                out.append(True)
        return tuple(out)

    def takes(self, kernels: Sequence[str], dynamic: Sequence[bool]) -> bool:
        """Whether the design runs this chain of stages (kernel names, and per stage
        whether it is a dynamic-mode stage). A chain with a dynamic-mode stage runs
        only as the design's dynamic form, whose added stages must all be dynamic
        quantizes; a chain without one only as its static form (stages + glue)."""
        chain = tuple(kernels)
        if not any(dynamic):
            return self.stages == chain or bool(self.glue) and self.matches(chain)
        if self.static_only or chain != self.dynamic_stages:
            return False
        return all(d for d, glue in zip(dynamic, self.dynamic_glue(), strict=True) if glue)


@dataclass(frozen=True)
class Manifest:
    manifest_version: int
    kernel_version: str
    kernels: dict[str, KernelEntry]
    designs: dict[str, DesignEntry]
    raw: dict[str, Any]

    def kernel(self, name: str) -> KernelEntry:
        try:
            return self.kernels[name]
        except KeyError:
            raise KeyError(f"kernel {name!r} is not in the manifest "
                           f"(known: {sorted(self.kernels)})") from None

    def find_design(self, kernel_chain: list[str] | tuple[str, ...]) -> DesignEntry | None:
        """The fused design whose stage list is exactly `kernel_chain` (or, with its
        glue, or its dynamic form), or None. Whether it runs the chain's stages in
        their mode (static or dynamic) is `DesignEntry.takes`."""
        chain = tuple(kernel_chain)
        for design in self.designs.values():
            if design.stages == chain:
                return design
        for design in self.designs.values():
            if design.glue and design.matches(chain):
                return design
        for design in self.designs.values():
            if design.dynamic_stages and design.dynamic_stages == chain:
                return design
        return None

    def version_key(self) -> str:
        """A short string for cache keys: changes whenever any kernel or design
        version (or the manifest's own kernel_version) changes."""
        parts = {"kernel_version": self.kernel_version,
                 "kernels": {k: v.kernel_version for k, v in sorted(self.kernels.items())},
                 "designs": {k: v.kernel_version for k, v in sorted(self.designs.items())},
                 # the chains launch grouping may put into each design: a cached
                 # program grouped under other rules must not be reused
                 "chains": {k: [v.stages, v.glue, v.static_only, v.dynamic_stages]
                            for k, v in sorted(self.designs.items())}}
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.kernel_version}+{digest}"


def _need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{FILENAME}: {where} is missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ManifestError(f"{FILENAME}: {where}.{key} has the wrong type "
                            f"({type(value).__name__})")
    return value


def _kernel(name: str, obj: Any) -> KernelEntry:
    where = f"kernels.{name}"
    if not isinstance(obj, dict):
        raise ManifestError(f"{FILENAME}: {where} must be an object")
    str_fields = ("folder", "header", "aie_source", "design", "xclbin", "instructions")
    vals: dict[str, Any] = {k: _need(obj, k, str, where) for k in str_fields}
    vals["kernel_version"] = _need(obj, "kernel_version", int, where)
    for k in ("dtypes", "shapes", "tile"):
        vals[k] = _need(obj, k, dict, where)
    extra = {k: v for k, v in obj.items() if k not in _KERNEL_FIELDS}
    return KernelEntry(name=name, extra=extra, **vals)


def _design(name: str, obj: Any, kernels: dict[str, KernelEntry]) -> DesignEntry:
    where = f"designs.{name}"
    if not isinstance(obj, dict):
        raise ManifestError(f"{FILENAME}: {where} must be an object")
    stages = _need(obj, "stages", list, where)
    if len(stages) < 2 or not all(isinstance(s, str) for s in stages):
        raise ManifestError(f"{FILENAME}: {where}.stages must list at least two kernel names")
    glue = obj.get("glue", [])
    if not isinstance(glue, list) or not all(isinstance(g, str) for g in glue):
        raise ManifestError(f"{FILENAME}: {where}.glue must be a list of kernel names")
    dyn = obj.get("dynamic_stages", [])
    if not isinstance(dyn, list) or not all(isinstance(k, str) for k in dyn):
        raise ManifestError(f"{FILENAME}: {where}.dynamic_stages must be a list of kernel names")
    unknown = [s for s in stages + glue + dyn if s not in kernels]
    if unknown:
        raise ManifestError(f"{FILENAME}: {where} names unknown kernels {unknown}")
    static_only = obj.get("static_only", False)
    if not isinstance(static_only, bool):
        raise ManifestError(f"{FILENAME}: {where}.static_only must be true or false")
    if dyn and static_only:
        raise ManifestError(f"{FILENAME}: {where} is static_only but lists dynamic_stages")
    entry = DesignEntry(
        name=name, stages=tuple(stages), glue=tuple(glue), static_only=static_only,
        dynamic_stages=tuple(dyn),
        **{k: _need(obj, k, str, where) for k in ("folder", "design", "xclbin", "instructions")},
        kernel_version=_need(obj, "kernel_version", int, where),
    )
    if dyn:
        added = [k for k, g in zip(dyn, entry.dynamic_glue(), strict=True) if g]
        kept = [k for k, g in zip(dyn, entry.dynamic_glue(), strict=True) if not g]
        if kept != list(stages) or any(k != DYNAMIC_GLUE and k not in glue for k in added):
            raise ManifestError(f"{FILENAME}: {where}.dynamic_stages must be its stages with "
                                f"only {DYNAMIC_GLUE!r} stages (or its glue) added, got {dyn}")
    return entry


def parse(data: Any) -> Manifest:
    """Validates a decoded manifest; raises ManifestError naming what is wrong."""
    if not isinstance(data, dict):
        raise ManifestError(f"{FILENAME}: top level must be a JSON object")
    version = _need(data, "manifest_version", int, "top level")
    if version != SUPPORTED_MANIFEST_VERSION:
        raise ManifestError(f"{FILENAME}: manifest_version {version} is not supported "
                            f"(expected {SUPPORTED_MANIFEST_VERSION})")
    kv = _need(data, "kernel_version", str, "top level")
    kernels = {n: _kernel(n, o) for n, o in _need(data, "kernels", dict, "top level").items()}
    missing = [k for k in REQUIRED_KERNELS if k not in kernels]
    if missing:
        raise ManifestError(f"{FILENAME}: kernels {missing} are missing")
    designs = {n: _design(n, o, kernels)
               for n, o in _need(data, "designs", dict, "top level").items()}
    chains = [d.stages for d in designs.values()] + [
        d.dynamic_stages for d in designs.values() if d.dynamic_stages]
    if len(set(chains)) != len(chains):
        raise ManifestError(f"{FILENAME}: two designs have the same stage chain")
    return Manifest(version, kv, kernels, designs, data)


def loads(text: str) -> Manifest:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{FILENAME} is not valid JSON: {exc}") from exc
    return parse(data)


@lru_cache(maxsize=1)
def load() -> Manifest:
    """The installed manifest (cached)."""
    try:
        text = resources.files(PACKAGE).joinpath(FILENAME).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ManifestError(f"{FILENAME} not found in package {PACKAGE}: {exc}") from exc
    return loads(text)


def find_design(kernel_chain: list[str] | tuple[str, ...]) -> DesignEntry | None:
    """The fused design for this exact chain of stage kernels, or None."""
    return load().find_design(kernel_chain)


def kernel_version() -> str:
    """The version string that enters compiled-model cache keys."""
    return load().version_key()


def load_manifest() -> dict[str, Any]:
    """The manifest as a plain dict for runtime/xclbins.py, with every single
    kernel also listed under "designs" (a one-stage launch's design name is
    its kernel name), so xclbin lookup works the same for both."""
    m = load()
    doc = json.loads(json.dumps(m.raw))
    designs = doc.setdefault("designs", {})
    for name, k in m.kernels.items():
        designs.setdefault(name, {"stages": [name], "folder": k.folder, "design": k.design,
                                  "xclbin": k.xclbin, "instructions": k.instructions,
                                  "kernel_version": k.kernel_version})
    return doc
