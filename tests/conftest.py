"""Shared pytest fixtures.

The cost model's CPU side is pinned to the documented constants
(cost.CpuCostModel) for every test, so placements do not depend on the speed
of the machine running the suite (hostbench.py measures the host otherwise;
test_hostbench.py tests that).

`kernel_path` runs a test once per instruction-set path this CPU supports
(portable, avx2, avx512_vnni, amx), forcing it for the test's duration, so
every path the emulator can take is checked against the numpy reference.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from xdna_ep import _emulator
from xdna_ep.cost import CpuCostModel
from xdna_ep.hostbench import set_host_figures


@pytest.fixture(autouse=True, scope="session")
def _fixed_host_figures() -> Iterator[None]:
    set_host_figures(CpuCostModel())
    yield
    set_host_figures(None)


@pytest.fixture(params=_emulator.kernel_paths())
def kernel_path(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = _emulator.active_kernel_path()
    _emulator.set_kernel_path(request.param)
    try:
        yield request.param
    finally:
        _emulator.set_kernel_path(previous)
