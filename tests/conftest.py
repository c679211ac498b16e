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


@pytest.fixture
def no_cost_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions partition with use_cost_model=False: tests of placement on tiny
    widths, which the cost model would rightly keep on the CPU."""
    from xdna_ep import partition as partition_mod
    from xdna_ep.ort import stages

    def partition(model, opts, device_name, device_reason="", model_name="", dims=None,
                  dims_source=None, overrides=None):
        return partition_mod.partition_model(
            model, exclude_ops=list(opts.exclude_ops), exclude_nodes=list(opts.exclude_nodes),
            use_cost_model=False, device=device_name, device_reason=device_reason,
            model_name=model_name, dims=dims or None, dims_source=dims_source)

    monkeypatch.setattr(stages, "partition", partition)


@pytest.fixture(scope="session")
def fake_backend(tmp_path_factory: pytest.TempPathFactory):
    """The plugin's NPU backend built against the FAKE XRT library, once per session
    (npu_support.py; FakeBackend.build_seconds says how long the build took)."""
    from npu_support import build_fake_backend

    return build_fake_backend(tmp_path_factory.mktemp("fake_xrt_build"))


@pytest.fixture()
def fake_npu(fake_backend, tmp_path, monkeypatch):
    """The plugin on the FAKE NPU (npu_support.fake_npu_for_test)."""
    from npu_support import fake_npu_for_test

    yield from fake_npu_for_test(fake_backend, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def lm():
    """The two-region linear model of test_ort_support (big_linear_model), built once
    per test module that asks for it."""
    from test_ort_support import big_linear_model

    return big_linear_model(two_regions=True)
