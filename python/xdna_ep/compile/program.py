"""The NPU program: what one region compiles to, and what every device runs.

A Program is data, not code: a list of device launches, each a short chain of
kernel stages with named buffers, plus the quantized constants they read.
Devices (runtime/) interpret it; the cache stores it as JSON + npz (never
pickle) with a format version.

Buffer names are strings. Region inputs and outputs are float32 ONNX tensors;
intermediate buffers may be int8/int32/float32. Dimensions may be symbolic
(strings such as "M" or "T"): kernels take any M, so shapes of intermediates
follow from the inputs at run time.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROGRAM_FORMAT_VERSION = 1

Dim = int | str


@dataclass(frozen=True)
class TensorSpec:
    """A named region input/output as ONNX Runtime sees it."""

    name: str
    dtype: str  # numpy dtype name: "float32", "int64", ...
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Stage:
    """One kernel invocation inside a launch.

    kernel: a kernel name from kernels/manifest.json ("matmul", "gelu", ...).
    inputs/outputs: buffer names. consts: role -> constant name in
    Program.constants (e.g. {"weight": "l0.fc1.w", "requant": "l0.fc1.rq"}).
    attrs: JSON scalars/lists (scales, flags, head counts).
    """

    kernel: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    consts: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    source_nodes: tuple[str, ...] = ()  # ONNX node names this stage implements


@dataclass(frozen=True)
class Launch:
    """One device launch: on the NPU one xclbin runtime sequence (design), on
    the emulator the same stages run back to back in one call."""

    design: str  # design name from the manifest (a kernel or a fused chain)
    stages: tuple[Stage, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        produced: set[str] = set()
        needed: list[str] = []
        for st in self.stages:
            for b in st.inputs:
                if b not in produced and b not in needed:
                    needed.append(b)
            produced.update(st.outputs)
        return tuple(needed)


@dataclass
class Program:
    """A compiled region."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    launches: tuple[Launch, ...]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    kernel_version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)  # macs, sqnr_db, source nodes...
    format_version: int = PROGRAM_FORMAT_VERSION

    # -- derived -----------------------------------------------------------------
    @property
    def num_launches(self) -> int:
        return len(self.launches)

    def stages(self) -> list[Stage]:
        return [st for ln in self.launches for st in ln.stages]

    def validate(self) -> None:
        """Every buffer read is an input or produced earlier; every const exists."""
        known = {t.name for t in self.inputs}
        for ln in self.launches:
            for st in ln.stages:
                for b in st.inputs:
                    if b not in known:
                        raise ValueError(f"program {self.name!r}: stage {st.kernel} reads "
                                         f"buffer {b!r} before it is produced")
                for c in st.consts.values():
                    if c not in self.constants:
                        raise ValueError(f"program {self.name!r}: missing constant {c!r}")
                known.update(st.outputs)
        for t in self.outputs:
            if t.name not in known:
                raise ValueError(f"program {self.name!r}: output {t.name!r} never produced")

    # -- serialisation (JSON + npz, no pickle) --------------------------------------
    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "kernel_version": self.kernel_version,
            "inputs": [asdict(t) for t in self.inputs],
            "outputs": [asdict(t) for t in self.outputs],
            "launches": [
                {"design": ln.design, "stages": [asdict(st) for st in ln.stages]}
                for ln in self.launches
            ],
            "constants": sorted(self.constants),
            "meta": self.meta,
        }

    def save(self, directory: str | Path) -> Path:
        """Writes program.json and constants.npz into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "program.json").write_text(json.dumps(self.to_json_dict(), indent=1, sort_keys=True))
        (d / "constants.npz").write_bytes(npz_bytes(self.constants))
        return d

    @classmethod
    def from_json_dict(cls, doc: dict[str, Any], constants: dict[str, np.ndarray]) -> Program:
        version = doc.get("format_version")
        if version != PROGRAM_FORMAT_VERSION:
            raise ValueError(f"program format version {version!r} is not supported "
                             f"(this xdna-ep reads version {PROGRAM_FORMAT_VERSION})")
        def spec(t: dict[str, Any]) -> TensorSpec:
            return TensorSpec(t["name"], t["dtype"], tuple(t["shape"]))
        launches = tuple(
            Launch(ln["design"], tuple(
                Stage(st["kernel"], tuple(st["inputs"]), tuple(st["outputs"]),
                      dict(st["consts"]), dict(st["attrs"]), tuple(st.get("source_nodes", ())))
                for st in ln["stages"]))
            for ln in doc["launches"])
        missing = set(doc["constants"]) - set(constants)
        if missing:
            raise ValueError(f"program {doc['name']!r}: constants missing: {sorted(missing)[:5]}")
        prog = cls(doc["name"], tuple(spec(t) for t in doc["inputs"]),
                   tuple(spec(t) for t in doc["outputs"]), launches,
                   {k: constants[k] for k in doc["constants"]}, doc.get("kernel_version", ""),
                   dict(doc.get("meta", {})))
        prog.validate()
        return prog

    @classmethod
    def load(cls, directory: str | Path) -> Program:
        d = Path(directory)
        doc = json.loads((d / "program.json").read_text())
        with np.load(d / "constants.npz", allow_pickle=False) as npz:
            constants = {k: npz[k] for k in npz.files}
        return cls.from_json_dict(doc, constants)

    def to_bytes(self) -> bytes:
        """One self-contained blob (zip of program.json + constants.npz).

        Byte-stable: the same program gives the same bytes on every run (fixed
        zip timestamps and attributes, constants in sorted order), so cache
        blobs are reproducible and can be compared or hashed as files."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            _write_member(z, "program.json",
                          json.dumps(self.to_json_dict(), sort_keys=True).encode())
            _write_member(z, "constants.npz", npz_bytes(self.constants))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Program:
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            doc = json.loads(z.read("program.json"))
            with np.load(io.BytesIO(z.read("constants.npz")), allow_pickle=False) as npz:
                constants = {k: npz[k] for k in npz.files}
        return cls.from_json_dict(doc, constants)

    def digest(self) -> str:
        """sha256 over the program's JSON and constant bytes (cache checksums)."""
        h = hashlib.sha256(json.dumps(self.to_json_dict(), sort_keys=True).encode())
        for k in sorted(self.constants):
            a = np.ascontiguousarray(self.constants[k])
            h.update(k.encode())
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()


# -- deterministic zip/npz writing ------------------------------------------------------
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: no wall clock in the bytes


def _write_member(z: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # unix, on every platform
    info.external_attr = 0o644 << 16
    z.writestr(info, data)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (readable by np.load, no pickle) whose bytes depend only on the
    arrays: members in sorted name order with fixed timestamps (np.savez stamps
    the current time and keeps insertion order)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
            _write_member(z, f"{name}.npy", member.getvalue())
    return buf.getvalue()
