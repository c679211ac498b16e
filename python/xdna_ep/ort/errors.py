"""The provider's warning and errors, shared by the provider core and the ONNX
Runtime adapter (users catch them from xdna_ep.ort)."""

from __future__ import annotations


class XDNAFallbackWarning(UserWarning):
    """XDNAExecutionProvider was requested but (part of) the model runs on CPU."""


class XDNAUnavailableError(RuntimeError):
    """XDNAExecutionProvider was requested with fallback=error and cannot run."""


class XDNARegionError(RuntimeError):
    """A region node failed during run() (the device or program raised)."""
