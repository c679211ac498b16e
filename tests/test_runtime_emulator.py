"""EmulatorDevice: prepared once, runs the program's launches, validates inputs."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from xdna_ep.runtime import EmulatorDevice

from fakes.kernels_for_tests import (  # isort: skip
    PREPARE_CALLS, fake_kernels, make_program, numpy_reference)


@pytest.fixture()
def kernels():
    with fake_kernels():
        yield


def _x(m: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, (m, 8)).astype(np.float32)


def test_emulator_matches_numpy_reference(kernels) -> None:
    prog = make_program()
    loaded = EmulatorDevice().load(prog)
    for m in (1, 7, 64):
        x = _x(m, m)
        got = loaded.run({"x": x})
        want = numpy_reference(prog, x)
        assert set(got) == set(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].tobytes() == want[k].tobytes(), k


def test_constants_prepared_once_for_many_runs(kernels) -> None:
    loaded = EmulatorDevice().load(make_program())
    for i in range(5):
        loaded.run({"x": _x(3, i)})
    assert PREPARE_CALLS == {"t_scale": 2, "t_affine": 1}   # two scale stages, one affine
    assert loaded.runs == 5


@pytest.mark.parametrize("bad, match", [
    ({}, "'x' is missing"),
    ({"x": np.zeros((2, 8), np.float64)}, "dtype float64"),
    ({"x": np.zeros((2, 8, 1), np.float32)}, "rank"),
    ({"x": np.zeros((2, 9), np.float32)}, "axis 1"),
    ({"x": np.zeros((2, 8), np.float32), "y": np.zeros(1)}, "unexpected inputs"),
    ({"x": [[0.0] * 8]}, "numpy array"),
])
def test_bad_inputs_name_the_input(kernels, bad, match) -> None:
    loaded = EmulatorDevice().load(make_program())
    with pytest.raises((ValueError, TypeError), match=match):
        loaded.run(bad)


def test_non_contiguous_input_is_accepted(kernels) -> None:
    prog = make_program()
    x = _x(6).T.copy().T                          # Fortran order
    assert not x.flags.c_contiguous
    got = EmulatorDevice().load(prog).run({"x": x})
    assert got["q2"].tobytes() == numpy_reference(prog, np.ascontiguousarray(x))["q2"].tobytes()


def test_closed_program_refuses_to_run(kernels) -> None:
    loaded = EmulatorDevice().load(make_program())
    loaded.close()
    with pytest.raises(RuntimeError, match="closed"):
        loaded.run({"x": _x(2)})


def test_four_threads_at_once(kernels) -> None:
    prog = make_program()
    loaded = EmulatorDevice().load(prog)
    xs = [_x(5 + i, i) for i in range(8)]
    want = [numpy_reference(prog, x) for x in xs]
    got: dict[int, dict[str, np.ndarray]] = {}

    def work(t: int) -> None:
        for i in range(t, len(xs), 4):
            got[i] = loaded.run({"x": xs[i]})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(xs)):
        for k in want[i]:
            assert got[i][k].tobytes() == want[i][k].tobytes()
