"""ONNX Runtime integration of the XDNA execution provider.

    provider.py        the provider core (device, compiled model, loaded programs,
                       fallback policy); no onnxruntime class, what a native EP calls
    stages.py          its calls into partition, compile, device selection, report
    compiled_model.py  the compiled-model artifact: cache entries and shipped
                       (EPContext-style) models, written, read and validated
    plan_json.py       PartitionPlan <-> JSON (stored in cache entries)
    epcontext.py       EPContext models for the native plugin library (payload writer)
    compile_cli.py     `xdna-ep compile`: model -> EPContext model
    options.py         provider options: parsing and validation
    session.py         the ONNX Runtime adapter: InferenceSession
    install.py         install()/uninstall(): "XDNAExecutionProvider" in onnxruntime
    plugin_route.py    the session's route onto the native plugin library (options,
                       device selection through its NPU backend)
    taps.py            region taps: every region call of a plugin session in Python
                       (for `bench accuracy` and the self-test)
    errors.py          XDNAFallbackWarning, XDNAUnavailableError, XDNARegionError
"""

from __future__ import annotations

from .errors import XDNAFallbackWarning, XDNARegionError, XDNAUnavailableError
from .install import install, is_installed, uninstall
from .options import ProviderOptionError, ProviderOptions, parse_options
from .session import InferenceSession


def get_ep_devices() -> list:
    """ONNX Runtime's own OrtEpDevice objects of XDNAExecutionProvider (the plugin
    library registered first): what `SessionOptions.add_provider_for_devices`
    takes. The NPU entry (device type NPU, ep_metadata backend=npu) where an
    amdxdna NPU and the NPU backend library are usable, and the emulator entry on
    the host CPU (backend=emulator). `xdna-ep devices` (runtime.get_ep_devices)
    describes the machine's NPUs and why one is or is not usable."""
    from ..plugin import get_plugin_ep_devices

    return get_plugin_ep_devices()


__all__ = [
    "InferenceSession", "ProviderOptionError", "ProviderOptions", "XDNAFallbackWarning",
    "XDNARegionError", "XDNAUnavailableError", "get_ep_devices", "install", "is_installed", "parse_options",
    "uninstall",
]
