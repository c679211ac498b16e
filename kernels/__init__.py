"""Kernel sources, IRON designs and the kernel manifest, shipped as package data."""
