"""Byte comparison of two runs' outputs (why hand-written: numpy compares values,
and the selftest must name the first differing BYTE, as the hardware sees it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    """The first byte where the device under test and the baseline differ."""

    output: str
    offset: int          # byte offset inside that output
    expected: int        # baseline byte
    got: int             # device byte
    detail: str = ""     # shape/dtype mismatches

    def to_json(self) -> dict[str, object]:
        return {"output": self.output, "offset": self.offset, "expected": self.expected,
                "got": self.got, "detail": self.detail}

    def __str__(self) -> str:
        if self.detail:
            return f"{self.output}: {self.detail}"
        return (f"{self.output} byte {self.offset}: expected 0x{self.expected:02x}, "
                f"got 0x{self.got:02x}")


def first_difference(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray],
                     names: Sequence[str]) -> Difference | None:
    """None when every named output is byte-identical."""
    for name in names:
        if name not in got:
            return Difference(name, -1, 0, 0, "missing from the device's outputs")
        a, b = np.ascontiguousarray(expected[name]), np.ascontiguousarray(got[name])
        if a.dtype != b.dtype or a.shape != b.shape:
            return Difference(name, -1, 0, 0, f"expected {a.dtype}{list(a.shape)}, got "
                                              f"{b.dtype}{list(b.shape)}")
        ab, bb = a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8)
        diff = np.flatnonzero(ab != bb)
        if diff.size:
            i = int(diff[0])
            return Difference(name, i, int(ab[i]), int(bb[i]))
    return None
