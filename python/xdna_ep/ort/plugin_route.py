"""The providers-list route onto the native plugin library.

`providers=["XDNAExecutionProvider", ...]` compiles (or takes from the cache) the
model in Python, then runs it the way any ONNX Runtime application would: the
compiled regions become com.microsoft EPContext nodes (epcontext.py) and the
ORT session selects the plugin library's XDNAExecutionProvider device with
`SessionOptions.add_provider_for_devices`. Region calls then stay in C++ (no
GIL, no Python custom op, no onnxruntime-extensions import).

Why a copy of the user's SessionOptions: devices added to an options object stay
there, and Optimum (like many applications) passes one SessionOptions to the
encoder and decoder sessions; a decoder whose options already named our device
would be re-targeted behind its back. The copy carries every attribute the
Python API can read back, the config entries we know of, and the
free-dimension overrides the provider read (ORT has no way to list them).

Which regions take this route: those on the host emulator and on the NPU (the
plugin opens the NPU through its native XRT backend; select_device asks it
first, so device=auto without an NPU is announced here). xdna-ep's measuring
tools see every region call through region taps (taps.py). This is the only
route regions take: a process whose plugin library cannot be loaded (not built,
corrupt, an ONNX Runtime without the plugin EP API) runs no region. Its sessions
fail naming the library and the reason (fallback=error, device=npu), or run the
user's model on the CPU provider, announced (fallback=allow: XDNAProvider.no_runner).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort

from .. import EP_NAME

log = logging.getLogger("xdna_ep")

# SessionOptions attributes the Python API reads and writes
_ATTRIBUTES = ("enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse",
               "enable_profiling", "profile_file_prefix", "execution_mode", "execution_order",
               "graph_optimization_level", "inter_op_num_threads", "intra_op_num_threads",
               "log_severity_level", "log_verbosity_level", "logid", "optimized_model_filepath",
               "use_deterministic_compute", "use_per_session_threads")

# session config entries copied when set (ep.context_* stay with the user's
# options: the Python side writes the compiled model, ORT must not)
_CONFIG_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning",
                "session.use_env_allocators", "session.disable_prepacking",
                "session.set_denormal_as_zero", "session.use_device_allocator_for_initializers",
                "session.intra_op_thread_affinities", "session.dynamic_block_base",
                "session.force_spinning_stop", "session.disable_cpu_ep_fallback",
                "session.disable_quant_qdq", "session.disable_double_qdq_remover",
                "session.enable_quant_qdq_cleanup", "session.qdq_matmulnbits_accuracy_level",
                "session.disable_aot_function_inlining", "session.strict_shape_type_inference",
                "session.allow_released_opsets_only", "session.node_partition_config_file",
                "session.x64quantprecision", "session.inference_log_level")

DEFAULT_LOG_SEVERITY = (-1, 2)  # not set (the environment's: warning), or warning
QUIET_LOG_SEVERITY = 3  # error

_UNAVAILABLE: list[str] = []  # why the plugin library could not be used (said once)


def available() -> str | None:
    """None when the plugin library is built and registered, else why not: a
    sentence naming the library's path and the reason (said once per process at
    warning level; every session then announces or raises it)."""
    if _UNAVAILABLE:
        return _UNAVAILABLE[0]
    from .. import plugin

    try:
        plugin.register()
    except Exception as exc:  # noqa: BLE001 - ORT's Fail is no RuntimeError; any is fatal
        # AttributeError: an onnxruntime without register_execution_provider_library
        why = (f"onnxruntime {ort.__version__} has no plugin execution-provider API "
               f"({exc}): upgrade onnxruntime" if isinstance(exc, AttributeError)
               else f"{type(exc).__name__}: {exc}")
        _UNAVAILABLE.append(f"the plugin library {plugin.library_path()} cannot be loaded "
                            f"({why})")
        log.warning("%s: %s; no region can run in this process", EP_NAME, _UNAVAILABLE[0])
        return _UNAVAILABLE[0]
    return None


def runs(device: str) -> bool:
    """Whether the plugin library runs this device's regions (the host emulator and
    the NPU through its native backend, when the library is built and registers)."""
    return device in ("emulator", "npu") and available() is None


def unavailable_selector(why: str):
    """A device selector (XDNAProvider.device_selector) for a process without a
    usable plugin library: device=npu cannot be had (RuntimeError: the session
    raises XDNAUnavailableError); auto and emulator name the emulator, whose
    regions then go back to the CPU provider (XDNAProvider.no_runner says why)."""
    def select(requested: str, fallback: str) -> tuple[PluginDevice, str]:
        if requested not in ("npu", "auto", "emulator"):
            raise ValueError(f"device must be one of auto, npu, emulator, got {requested!r}")
        if requested == "npu":
            raise RuntimeError(why)
        return PluginDevice("emulator"), f"device={requested}, but {why}"

    return select


@dataclass(frozen=True)
class PluginDevice:
    """The device a session's regions run on inside the plugin library: nothing is
    opened in Python (the plugin opens the NPU through its native backend)."""

    name: str  # "npu" | "emulator"


_AUTO_TOLD: list[str] = []  # device=auto without an NPU: said once per process


def select_device(requested: str, fallback: str) -> tuple[PluginDevice, str]:
    """(device, why) for provider option `device` on the plugin library. The NPU is
    what the plugin's native NPU backend opens (the device list is only a probe);
    device=npu without it raises RuntimeError with the reason, device=auto runs the
    emulator, announced once at warning level with the reason."""
    if requested == "emulator":
        return PluginDevice("emulator"), "emulator requested (device='emulator')"
    if requested not in ("npu", "auto"):
        raise ValueError(f"device must be one of auto, npu, emulator, got {requested!r}")
    from .. import plugin

    opens, why = plugin.npu_backend_opens()
    if opens:
        return PluginDevice("npu"), ("the plugin library's native NPU backend opened the NPU "
                                     f"(fallback={fallback})")
    if requested == "npu":
        raise RuntimeError(f"the plugin library's NPU backend cannot open the NPU: {why}")
    reason = f"no usable NPU: {why}; using the emulator (CPU)"
    if not _AUTO_TOLD:
        _AUTO_TOLD.append(reason)
        log.warning("%s: device=auto: %s", EP_NAME, reason)
    return PluginDevice("emulator"), reason


def runtime_options(device: str, fallback: str, num_threads: int | None) -> dict[str, str]:
    """The plugin's provider options for a compiled model: only what acts at run
    time (the compile options already shaped the EPContext payloads)."""
    opts = {"device": device, "fallback": fallback}
    if num_threads is not None:
        opts["num_threads"] = str(num_threads)
    return opts


def session_options(user: ort.SessionOptions | None, options: Mapping[str, str],
                    other_providers: Sequence[str] = (),
                    other_options: Sequence[Mapping[str, Any]] = (),
                    dim_overrides: Mapping[str, int] | None = None) -> ort.SessionOptions:
    """A new SessionOptions like `user`'s, with XDNAExecutionProvider's device
    added first, then the other providers the user listed (CPU is implicit)."""
    from .. import plugin

    so = ort.SessionOptions()
    if user is not None:
        for name in _ATTRIBUTES:
            try:
                setattr(so, name, getattr(user, name))
            except (AttributeError, TypeError, RuntimeError):
                continue  # an attribute this ORT version does not have
        for key in _CONFIG_KEYS:
            try:
                value = user.get_session_config_entry(key)
            except RuntimeError:
                continue  # ORT raises for a key that was never set
            so.add_session_config_entry(key, value)
    if so.log_severity_level in DEFAULT_LOG_SEVERITY:
        # ORT warns at every start of a session with a plugin EP that "some nodes
        # were not assigned to the preferred execution providers"; the session's
        # placement line says which nodes went where, in proportion. A level the
        # user chose is kept.
        so.log_severity_level = QUIET_LOG_SEVERITY
    for name, size in (dim_overrides or {}).items():
        so.add_free_dimension_override_by_name(name, int(size))
    # the emulator entry alone for device=emulator: the NPU entry (where one is
    # listed) would only be folded into the same EP and ignored
    backend = "emulator" if options.get("device") == "emulator" else None
    so.add_provider_for_devices(plugin.get_plugin_ep_devices(backend), dict(options))
    for name, opts in zip(other_providers, other_options, strict=True):
        if name == "CPUExecutionProvider":
            continue
        so.add_provider(name, {k: str(v) for k, v in opts.items()})
    return so


def is_plugin_error(exc: BaseException) -> bool:
    """True for an ORT failure raised by one of our EPContext nodes' compute (ORT
    names the fused node, XDNAExecutionProvider_..., and the library prefixes its
    own message with the EP name)."""
    return EP_NAME in str(exc)
