"""Python side of the NPU kernels: validated wrappers over the host emulator
(xdna_ep._emulator) and a numpy integer reference of every kernel.

The C++ arithmetic, IRON designs and byte-level contracts live in the
top-level kernels/<name>/ folders; this package is how the rest of xdna-ep
calls them. ``registry.KERNELS`` maps a kernel name to its stage functions.
"""
