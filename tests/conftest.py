"""Shared pytest fixtures.

`kernel_path` runs a test once per instruction-set path this CPU supports
(portable, avx2, avx512_vnni, amx), forcing it for the test's duration, so
every path the emulator can take is checked against the numpy reference.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xdna_ep import _emulator


@pytest.fixture(params=_emulator.kernel_paths())
def kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = _emulator.active_kernel_path()
    _emulator.set_kernel_path(request.param)
    try:
        yield request.param
    finally:
        _emulator.set_kernel_path(previous)
