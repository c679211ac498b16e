"""Reader for CTranslate2 `model.bin` files, in numpy only.

Why our own reader: the converter must not need the ctranslate2 runtime (a large
native wheel) just to get at the weights, and the format is small and stable.

Layout (binary version 6, little-endian, as written by ctranslate2's ModelSpec):
    u32 binary_version
    str spec_name            (str = u16 length incl. the trailing NUL, bytes, NUL)
    u32 spec_revision
    u32 n_variables
    n_variables x { str name; u8 rank; u32 dims[rank]; u8 dtype_id; u32 n_bytes; bytes }
    u32 n_aliases
    n_aliases x { str alias; str target }
dtype ids follow ctranslate2's DataType enum: 0 float32, 1 int8, 2 int16, 3 int32,
4 float16, 5 bfloat16. Quantized weights (`.../weight` in int8 or int16) come with a
`.../weight_scale` variable; the float value is `weight / weight_scale` (per output
row for int8, one scalar for int16).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUPPORTED_BINARY_VERSIONS = (5, 6)

_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: raw 16-bit patterns, widened in _bf16_to_f32
}
_DTYPE_NAMES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}


class Ct2FormatError(ValueError):
    """The file is not a (complete) CTranslate2 model.bin."""


@dataclass
class Ct2Variable:
    """One stored variable, exactly as in the file (dtype name kept for diagnostics)."""

    name: str
    dtype: str
    array: np.ndarray


@dataclass
class Ct2Model:
    """The raw content of a model.bin: variables by name plus name aliases."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, Ct2Variable] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """Follow alias links (e.g. decoder/projection/weight -> decoder/embeddings/weight)."""
        seen = set()
        while name in self.aliases:
            if name in seen:
                raise Ct2FormatError(f"alias cycle at {name!r}")
            seen.add(name)
            name = self.aliases[name]
        return name

    def has(self, name: str) -> bool:
        return self.resolve(name) in self.variables

    def raw(self, name: str) -> np.ndarray:
        key = self.resolve(name)
        if key not in self.variables:
            raise KeyError(f"variable {name!r} not in the CTranslate2 model ({self.spec_name})")
        return self.variables[key].array

    def scalar(self, name: str) -> int | float:
        value = self.raw(name)
        if value.size != 1:
            raise Ct2FormatError(f"variable {name!r} is not a scalar (shape {value.shape})")
        return value.reshape(()).item()

    def float32(self, name: str) -> np.ndarray:
        """The variable as float32, dequantizing int8/int16 weights with their scale."""
        key = self.resolve(name)
        var = self.variables.get(key)
        if var is None:
            raise KeyError(f"variable {name!r} not in the CTranslate2 model ({self.spec_name})")
        if var.dtype in ("float32", "float16"):
            return var.array.astype(np.float32)
        if var.dtype == "bfloat16":
            return _bf16_to_f32(var.array)
        if var.dtype in ("int8", "int16"):
            scale_name = name + "_scale"
            if not self.has(scale_name):
                raise Ct2FormatError(
                    f"{var.dtype} variable {name!r} has no {scale_name!r}: only quantized "
                    "weights are stored as integers, so this file is not a valid model"
                )
            scale = self.float32(scale_name)
            values = var.array.astype(np.float32)
            if scale.ndim == 0 or scale.size == 1:
                return values / scale.reshape(())
            if scale.ndim == 1 and scale.shape[0] == values.shape[0]:
                return values / scale.reshape((-1,) + (1,) * (values.ndim - 1))
            raise Ct2FormatError(
                f"scale {scale_name!r} shape {scale.shape} does not match {name!r} {values.shape}"
            )
        raise NotImplementedError(f"variable {name!r} has dtype {var.dtype}, not a float weight")


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


class _Cursor:
    """Bounds-checked sequential reads so a truncated file gives a clear error."""

    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise Ct2FormatError(
                f"{self.path}: truncated while reading {what} at byte {self.pos} "
                f"(needs {n} bytes, file has {len(self.buf)})"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size, what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("<H", what + " length")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise Ct2FormatError(f"{self.path}: {what} is not NUL-terminated at byte {self.pos}")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Ct2FormatError(f"{self.path}: {what} is not UTF-8") from exc


def read_ct2_model(path: str | Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin (or a folder holding one) into numpy arrays.

    Arrays are copies (the file is read once into memory and then released), in the
    stored dtype; use Ct2Model.float32() for dequantized float values.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"CTranslate2 model file not found: {path}")
    data = path.read_bytes()
    cur = _Cursor(memoryview(data), path)
    version = cur.unpack("<I", "binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(
            f"{path}: unsupported CTranslate2 binary version {version} "
            f"(supported: {SUPPORTED_BINARY_VERSIONS}); is this a CTranslate2 model.bin?"
        )
    spec_name = cur.string("spec name")
    revision = cur.unpack("<I", "spec revision")
    model = Ct2Model(binary_version=version, spec_name=spec_name, spec_revision=revision)
    n_vars = cur.unpack("<I", "variable count")
    for _ in range(n_vars):
        name = cur.string("variable name")
        rank = cur.unpack("<B", f"rank of {name}")
        shape = tuple(cur.unpack("<I", f"shape of {name}") for _ in range(rank))
        type_id = cur.unpack("<B", f"dtype of {name}")
        if type_id not in _DTYPES:
            raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
        dtype = _DTYPES[type_id]
        n_bytes = cur.unpack("<I", f"byte count of {name}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if n_bytes != expected:
            raise Ct2FormatError(
                f"{path}: variable {name!r} declares {n_bytes} bytes, shape {shape} "
                f"x {_DTYPE_NAMES[type_id]} needs {expected}"
            )
        raw = cur.take(n_bytes, f"data of {name}")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        model.variables[name] = Ct2Variable(name, _DTYPE_NAMES[type_id], array)
    n_aliases = cur.unpack("<I", "alias count")
    for _ in range(n_aliases):
        alias = cur.string("alias name")
        model.aliases[alias] = cur.string("alias target")
    if cur.pos != len(data):
        raise Ct2FormatError(f"{path}: {len(data) - cur.pos} unexpected trailing bytes")
    for alias in model.aliases:
        model.resolve(alias)  # detect cycles early
    return model


def write_ct2_model(
    path: str | Path,
    spec_name: str,
    variables: dict[str, np.ndarray],
    aliases: dict[str, str] | None = None,
    revision: int = 3,
    binary_version: int = 6,
) -> None:
    """Write a model.bin in the same layout (used by tests to build small checkpoints).

    bfloat16 is not writable from numpy arrays; pass float32/float16/int8/int16/int32.
    """
    type_ids = {np.dtype(v): k for k, v in _DTYPES.items() if k != 5}

    def _str(s: str) -> bytes:
        b = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(b)) + b

    out = [struct.pack("<I", binary_version), _str(spec_name), struct.pack("<I", revision)]
    out.append(struct.pack("<I", len(variables)))
    for name in sorted(variables):
        arr = np.asarray(variables[name])  # not ascontiguousarray: it turns 0-d into 1-d
        key = arr.dtype.newbyteorder("<") if arr.dtype.itemsize > 1 else arr.dtype
        if key not in type_ids:
            raise ValueError(f"variables[{name!r}]: dtype {arr.dtype} cannot be stored")
        out.append(_str(name) + struct.pack("<B", arr.ndim))
        out.extend(struct.pack("<I", d) for d in arr.shape)
        raw = arr.astype(key, copy=False).tobytes()
        out.append(struct.pack("<B", type_ids[key]) + struct.pack("<I", len(raw)) + raw)
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in sorted(aliases.items()):
        out.append(_str(alias) + _str(target))
    Path(path).write_bytes(b"".join(out))
