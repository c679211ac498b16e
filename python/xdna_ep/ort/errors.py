"""The provider's warning and errors, shared by the provider core and the ONNX
Runtime adapter (users catch them from xdna_ep.ort)."""

from __future__ import annotations


class XDNAFallbackWarning(UserWarning):
    """XDNAExecutionProvider was requested but (part of) the model runs on CPU."""


class XDNAPlacementWarning(XDNAFallbackWarning):
    """XDNAExecutionProvider runs, but less than PLACEMENT_WARN_SHARE of the
    model's MACs are on the NPU (the message gives the top reasons)."""


class XDNAUnavailableError(RuntimeError):
    """XDNAExecutionProvider was requested with fallback=error and cannot run."""


class XDNARegionError(RuntimeError):
    """A region node failed during run() (the device or program raised)."""
