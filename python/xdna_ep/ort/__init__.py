"""ONNX Runtime integration: the XDNAExecutionProvider name in ORT's providers
list, the region op, provider options and the compiled-model cache."""

from __future__ import annotations

from .install import install, is_installed, uninstall
from .options import ProviderOptionError, ProviderOptions, parse_options
from .session import (
    InferenceSession,
    XDNAFallbackWarning,
    XDNARegionError,
    XDNAUnavailableError,
)


def get_ep_devices() -> list:
    """The devices XDNAExecutionProvider can run on (NPUs, then the emulator),
    shaped like onnxruntime's plugin-EP device listing."""
    from ..runtime import get_ep_devices as devices

    return devices()


__all__ = [
    "InferenceSession", "ProviderOptionError", "ProviderOptions", "XDNAFallbackWarning",
    "XDNARegionError", "XDNAUnavailableError", "get_ep_devices", "install", "is_installed", "parse_options",
    "uninstall",
]
