"""`xdna-ep selftest`: every NPU design and kernel, on the device under test and
on a trusted baseline, byte for byte; then one Whisper encoder window.

    --device npu       the NPU (through pyxrt) against the host emulator
    --device emulator  the host emulator against the kernels' numpy references

Each case is a small Program of real kernels with seeded constants and inputs
(cases.py); outputs are compared as bytes (bit-exact expected), the first
differing byte is named (design, shape, output, offset); each launch is timed
and, on the NPU, its ERT command state recorded (devices.py). The report is a
table on the terminal and a JSON file to attach to an issue (report.py).
Nothing here claims an NPU measurement unless the NPU ran it.
"""

from .runner import SelftestResult, run_selftest

__all__ = ["SelftestResult", "run_selftest"]
