"""InferenceSession with the XDNA execution provider: the ONNX Runtime adapter.

A real onnxruntime.InferenceSession (subclass). Before ONNX Runtime sees the
model, the provider core (provider.py: device, compiled model from a shipped
EPContext-style model, the cache or a fresh partition + compile, fallback
policy) prepares it; this class then hands ORT the compiled model and shows the
core's fallback notices as XDNAFallbackWarning. Regions on the host emulator
run in the native plugin library: the compiled model goes to ORT as EPContext
nodes with XDNAExecutionProvider's device selected (plugin_route.py), so ORT
calls C++ for every region; regions on the NPU run there too, through the
plugin's native XRT backend (its fallbacks to the emulator are announced here).
That is the only way regions run: in a process whose plugin library cannot be
loaded, a session fails naming the library and why (fallback=error), or runs
the user's model on the CPU provider, announced (fallback=allow). run,
run_with_ort_values, IOBinding, get_inputs/get_outputs and profiling are ORT's own.

Only the providers list decides: without "XDNAExecutionProvider" in it this
class is a plain ORT session. With it, XDNA runs or a warning (fallback=allow)
or an error (fallback=error) says why not: never a silent CPU fallback. A model
whose regions the cost model keeps on the CPU (e.g. Whisper's per-token decoder)
gets a warning in both modes: that is a placement decision, not a failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from .. import EP_NAME
from ..compile.program import Program
from ..plan import PartitionPlan
from . import dims as dims_mod
from . import placement, plugin_route
from .compiled_model import write_shipped_model
from .errors import XDNAFallbackWarning, XDNAPlacementWarning, XDNARegionError, XDNAUnavailableError
from .options import ProviderOptions, parse_options
from .provider import PreparedModel, StartInfo, XDNAProvider
from .taps import RegionCall

log = logging.getLogger("xdna_ep")

__all__ = ["InferenceSession", "StartInfo", "XDNAFallbackWarning", "XDNAPlacementWarning",
           "XDNARegionError", "XDNAUnavailableError", "split_providers"]

# input shapes compiled by one session after which the log suggests padding
MANY_SHAPES = 8

# the InferenceSession class install() replaces; sessions always build on it
_ORT_SESSION: type = ort.InferenceSession


def split_providers(providers: Sequence[Any] | None,
                    provider_options: Sequence[Mapping[str, Any]] | None
                    ) -> tuple[dict[str, Any] | None, list[Any], list[dict[str, Any]] | None]:
    """(XDNA options or None, other providers, their options) from ORT's arguments.

    Accepts names, (name, options) tuples, and a parallel provider_options list.
    """
    if providers is None:
        return None, [], None
    if isinstance(providers, str):
        raise TypeError("providers must be a list of provider names, e.g. "
                        f"['{EP_NAME}', 'CPUExecutionProvider']")
    if provider_options is not None and len(provider_options) != len(providers):
        raise ValueError("provider_options must have one entry per provider "
                         f"({len(provider_options)} for {len(providers)} providers)")
    xdna: dict[str, Any] | None = None
    rest: list[Any] = []
    rest_opts: list[dict[str, Any]] = []
    for i, p in enumerate(providers):
        if isinstance(p, tuple):
            if len(p) != 2 or not isinstance(p[0], str) or not isinstance(p[1], Mapping):
                raise TypeError(f"provider entry {p!r} must be a name or a (name, dict) tuple")
            name, opts = p[0], dict(p[1])
            if provider_options is not None and provider_options[i]:
                raise ValueError(f"provider {name!r}: options given both in the tuple and in "
                                 "provider_options")
        elif isinstance(p, str):
            name, opts = p, dict(provider_options[i]) if provider_options is not None else {}
        else:
            raise TypeError(f"provider entry {p!r} must be a name or a (name, dict) tuple")
        if name == EP_NAME:
            if xdna is not None:
                raise ValueError(f"{EP_NAME} is listed twice in providers")
            xdna = opts
        else:
            rest.append(name)
            rest_opts.append(opts)
    return xdna, rest, rest_opts


def _config(so: ort.SessionOptions | None, key: str) -> str:
    if so is None:
        return ""
    try:
        return so.get_session_config_entry(key)
    except RuntimeError:
        return ""


@dataclass
class _ShapeVariant:
    """The session of one concrete input shape (compiled at its first run):
    `session` None means the base session runs it (everything on the CPU)."""

    session: Any
    plan: PartitionPlan | None
    native: bool = False  # its regions run in the plugin library


def _no_route(device: str) -> str:
    """Why compiled regions for `device` have nowhere to run (a session subclass
    whose _xdna_runs_natively declines the device: regions run only in the plugin
    library)."""
    return (f"{EP_NAME}: the compiled regions for device {device!r} can only run in the "
            "plugin library, and this session does not run that device there")


def _plugin_runs(device: str) -> bool:
    """Whether the plugin library runs this device's regions (plugin_route.runs)."""
    return plugin_route.runs(device)


def _epcontext_bytes(prepared: PreparedModel) -> bytes:
    from .epcontext import epcontext_model

    assert prepared.rewritten is not None
    dims = prepared.plan.dims if prepared.plan is not None else None
    return epcontext_model(prepared.rewritten, prepared.programs, dims=dims).SerializeToString()


@contextlib.contextmanager
def _native_model(prepared: PreparedModel) -> Iterator[str | bytes]:
    """The compiled model as ORT loads it on the plugin library, for the duration of
    the ORT session's creation.

    From the cache, ORT reads the entry's EPContext file itself (nothing copied in
    Python) through a descriptor held open meanwhile (/proc/self/fd/N): another
    process that rebuilds the entry (os.replace + delete) cannot pull the file from
    under ORT, and nothing touches the file's stamps, which the digest index keys
    on (a hard link would change its ctime and cost a full hash at the next start).
    Without /proc the bytes are read through the descriptor; without a cache file
    (e.g. a read-only cache_dir) the model is built here."""
    src = prepared.epcontext_file
    if src is None:
        yield _epcontext_bytes(prepared)
        return
    fd = _open_entry_file(src)  # FileNotFoundError (entry gone) goes to the caller
    try:
        by_fd = f"/proc/self/fd/{fd}"
        if os.path.exists(by_fd):
            yield by_fd
        else:
            with os.fdopen(os.dup(fd), "rb") as f:
                yield f.read()
    finally:
        os.close(fd)


def _open_entry_file(path: Path) -> int:
    """A read descriptor of a cache entry's file (the tests make it vanish here)."""
    return os.open(path, os.O_RDONLY)


def _announce(plan: PartitionPlan | None, device: str, stacklevel: int,
              warn: bool = True, cpu_quantization: str = "none") -> None:
    """The placement line: logged, and below the share threshold also an
    XDNAPlacementWarning (`warn` False: an XDNAFallbackWarning already said
    that nothing runs on the NPU, the line is only logged)."""
    if plan is None:
        return
    summary = placement.summarize(plan, device, cpu_quantization)
    if summary.low:
        log.warning("%s", summary.line())
        if warn:
            warnings.warn(summary.line(), XDNAPlacementWarning, stacklevel=stacklevel + 1)
    else:
        log.info("%s", summary.line())


class InferenceSession(_ORT_SESSION):  # type: ignore[misc, valid-type]
    """onnxruntime.InferenceSession that understands "XDNAExecutionProvider"."""

    def __init__(self, path_or_bytes: str | os.PathLike[str] | bytes,
                 sess_options: ort.SessionOptions | None = None,
                 providers: Sequence[Any] | None = None,
                 provider_options: Sequence[Mapping[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        xdna_raw, rest, rest_opts = split_providers(providers, provider_options)
        self._xdna_active = False
        self._xdna_native = False  # regions run in the plugin library
        self._xdna_plugin_so: ort.SessionOptions | None = None
        self._xdna_tap: Any = None  # taps.RegionTap of a measuring session
        # NPU->emulator fallbacks the plugin had counted when this session last
        # looked (-1: not an NPU session on the plugin; taps.npu_fallbacks)
        self._xdna_fallbacks_seen = -1
        self.xdna_start = StartInfo()
        # the partition plan of this session (None for a plain ORT session): what
        # went where, MAC shares, launches; whisper and the benchmarks read it
        self.xdna_plan: PartitionPlan | None = None
        # the compiled programs this session runs, by program reference (the latest
        # input shape's for a session compiled per shape)
        self.xdna_programs: dict[str, Program] = {}
        # compiled per input shape at its first run (symbolic dims without a size)
        self._xdna_deferred: tuple[str, ...] = ()
        self._xdna_variants: dict[str, _ShapeVariant] = {}
        self._xdna_variant_lock = threading.Lock()
        self._xdna_pinned = ""  # shape key the base session was compiled for, if one
        # the model file ORT runs when XDNA runs none of it (the user's, or its INT8
        # twin with cpu_quantization=dynamic_int8); None until such a session exists
        self.xdna_cpu_model: str | None = None
        if xdna_raw is None:  # not requested: a plain ORT session
            super().__init__(path_or_bytes, sess_options, providers, provider_options, **kwargs)
            return
        if not isinstance(path_or_bytes, (str, os.PathLike, bytes)):
            raise TypeError("path_or_bytes must be a model path or the model's bytes, got "
                            f"{type(path_or_bytes).__name__}")
        t0 = time.perf_counter()
        opts = parse_options(xdna_raw)
        self.xdna_options = opts
        if not rest:
            rest, rest_opts = ["CPUExecutionProvider"], [{}]
        if "CPUExecutionProvider" not in rest:
            # nodes XDNA does not take run on the CPU provider
            rest, rest_opts = [*rest, "CPUExecutionProvider"], [*rest_opts, {}]
        so = sess_options if sess_options is not None else ort.SessionOptions()
        provider = self._xdna_provider(opts)
        provider.native_devices = self._xdna_runs_natively
        missing = plugin_route.available()
        if missing is None:  # the plugin library is there: it opens the NPU
            provider.device_selector = plugin_route.select_device
        else:  # no region can run: an error, or the CPU provider announced
            provider.no_runner = missing
            provider.device_selector = plugin_route.unavailable_selector(missing)
        self._xdna_provider_core = provider
        on_call = self._xdna_on_region_call()
        # the rewritten model in Python is needed to write ep.context_enable's file,
        # and by a tap, which finds each region's program by its node name
        provider.need_model = _config(so, "ep.context_enable") == "1" or on_call is not None
        if on_call is not None:
            from .taps import RegionTap

            self._xdna_tap = RegionTap(on_call)
        self.xdna_start = provider.start
        prepared = provider.prepare(path_or_bytes, session_options=so)
        self._xdna_src = (path_or_bytes if isinstance(path_or_bytes, bytes)
                          else os.fspath(path_or_bytes))
        self._xdna_so, self._xdna_rest = so, (rest, rest_opts, kwargs)
        self.xdna_plan = prepared.plan
        self.xdna_programs = dict(prepared.programs)
        for notice in prepared.notices:
            warnings.warn(notice, XDNAFallbackWarning, stacklevel=2)
        _announce(prepared.plan, self.xdna_start.device, stacklevel=2,
                  warn=prepared.rewritten is not None or prepared.native,
                  cpu_quantization=opts.cpu_quantization)
        choice = provider.dims_choice
        if (choice is not None and not prepared.deferred
                and (prepared.rewritten is not None or prepared.native)
                and provider.pinned(choice.dims, choice.source)):
            # compiled for exactly this shape: a run of another shape compiles its own
            # (a model left unchanged, nothing placed, runs any shape as it is)
            self._xdna_pinned = dims_mod.shape_key(choice.dims)
        user_model = self._xdna_src
        model_for_ort: str | bytes = user_model
        ort_so, ort_providers, ort_options = so, rest, rest_opts
        if prepared.deferred:
            # the base session is the user's model; runs go to the session of
            # their input shape, compiled at the first run with that shape
            self._xdna_deferred = prepared.deferred
            self._xdna_active = True
            model_for_ort = self._xdna_cpu_model()
        elif prepared.native:
            # the user's EPContext model as it is, a cache file (through _native_model
            # below), or the compiled model built here before its proto is dropped
            if not prepared.epcontext and prepared.epcontext_file is None:
                model_for_ort = _epcontext_bytes(prepared)
            ort_so, ort_providers, ort_options = self._plugin_options(), None, None
            self._xdna_native = self._xdna_active = True
        elif prepared.rewritten is not None:
            raise XDNAUnavailableError(_no_route(self.xdna_start.device))
        else:  # nothing runs on XDNA: the user's model (or its INT8 twin) on the CPU
            model_for_ort = self._xdna_cpu_model()
        context_path = (self._context_path(path_or_bytes, so) if self._xdna_active
                        and _config(so, "ep.context_enable") == "1" else None)
        if context_path is None:
            # ORT parses its own copy from the bytes: without this, the rewritten
            # proto (all CPU-side FP32 weights, ~190 MB for the Whisper decoder)
            # would be alive next to the bytes and ORT's copy at the start's peak
            prepared.rewritten = None
        if prepared.native and self.xdna_start.device == "npu":
            from .taps import npu_fallbacks

            self._xdna_fallbacks_seen = npu_fallbacks()[0]
        try:
            if prepared.native and prepared.epcontext_file is not None:
                with _native_model(prepared) as model:
                    super().__init__(model, ort_so, None, None, **kwargs)
            else:
                super().__init__(model_for_ort, ort_so, ort_providers, ort_options, **kwargs)
        except Exception as exc:
            if (prepared.native and self.xdna_start.device == "npu"
                    and plugin_route.is_plugin_error(exc) and "NPU" in str(exc)):
                # the plugin refused to put a region on the NPU (fallback=error): the
                # compiled model is fine, the device is not
                raise XDNAUnavailableError(f"{EP_NAME}: the NPU cannot run this model's "
                                           f"regions: {exc}") from exc
            if prepared.epcontext_file is None:
                raise
            # a cache entry whose EPContext model is gone (another process rebuilt
            # it) or passed its checksum yet does not load (e.g. re-signed after an
            # edit): compiled again, never trusted
            prepared = provider.recompile(f"{type(exc).__name__}: {exc}")
            self.xdna_plan = prepared.plan
            self.xdna_programs = dict(prepared.programs)
            for notice in prepared.notices:
                warnings.warn(notice, XDNAFallbackWarning, stacklevel=2)
            if prepared.native:
                with _native_model(prepared) as model:
                    super().__init__(model, ort_so, None, None, **kwargs)
            else:  # the new compile placed nothing: the user's model on the CPU
                self._xdna_native = self._xdna_active = False
                super().__init__(self._xdna_cpu_model(), so, rest, rest_opts, **kwargs)
        # what ORT (set_providers -> session reset) and Optimum (session._model_path:
        # save_pretrained, model dir) read: the user's model and options, not ours
        if isinstance(path_or_bytes, bytes):
            self._model_path, self._model_bytes = None, path_or_bytes
        else:
            self._model_path, self._model_bytes = os.fspath(path_or_bytes), None
        self._sess_options_initial = sess_options
        if context_path is not None and prepared.deferred:
            log.warning("%s: ep.context_enable: no compiled model written, the model is "
                        "compiled per input shape at its first run (give provider option "
                        "dims to compile it at session start)", EP_NAME)
        if context_path is not None and prepared.rewritten is not None:
            # written after ORT's own session init, which refuses an existing file
            write_shipped_model(prepared.rewritten, prepared.programs, context_path)
            log.info("%s: compiled model written to %s", EP_NAME, context_path)
            self.xdna_start.notes.append(f"context model: {context_path}")
        self._xdna_check_fallbacks(stacklevel=2)
        self.xdna_start.seconds = time.perf_counter() - t0

    def _xdna_check_fallbacks(self, stacklevel: int) -> None:
        """Announces NPU regions the plugin moved to its emulator (fallback=allow)
        since the last check: warning, log line, start notes and the plan (and the
        report file). The plugin's counter is per process: with several NPU sessions
        running at once, a fallback is announced by the session that looks first."""
        if self._xdna_fallbacks_seen < 0:
            return
        from .taps import npu_fallbacks

        count, reason = npu_fallbacks()
        if count <= self._xdna_fallbacks_seen:
            return
        self._xdna_fallbacks_seen = count
        msg = (f"{EP_NAME}: {reason} (the host emulator runs it instead: fallback=allow; "
               "speed is CPU speed)")
        log.warning("%s", msg)
        warnings.warn(msg, XDNAFallbackWarning, stacklevel=stacklevel + 1)
        self.xdna_start.notes.append(msg)
        plan = self.xdna_plan
        if plan is not None:
            plan.fallbacks.append(msg)
            if self.xdna_options.report is not None:
                from . import stages as stages_mod

                stages_mod.write_report(plan, self.xdna_options.report)

    def _plugin_options(self) -> ort.SessionOptions:
        """SessionOptions for a session on the plugin library, made once per
        session (its per-shape sessions share it): a copy of the user's, see
        plugin_route.py for why a copy."""
        if self._xdna_plugin_so is None:
            provider = self._xdna_provider_core
            choice = provider.dims_choice
            overrides = ({k: v for k, v in choice.dims.items()
                          if choice.source.get(k) == dims_mod.SOURCE_SESSION}
                         if choice is not None else {})
            opts = self.xdna_options
            rest, rest_opts, _ = self._xdna_rest
            runtime = plugin_route.runtime_options(self.xdna_start.device, opts.fallback,
                                                   opts.num_threads)
            if self._xdna_tap is not None:
                runtime["tap"] = str(self._xdna_tap.token)
            self._xdna_plugin_so = plugin_route.session_options(
                self._xdna_so, runtime, rest, rest_opts, overrides)
        return self._xdna_plugin_so

    def _xdna_cpu_model(self) -> str | bytes:
        """The model ORT runs on the CPU when XDNA runs none of it: the user's, or
        its dynamic-INT8 twin (provider option cpu_quantization)."""
        model = self._xdna_provider_core.cpu_model()
        if isinstance(model, bytes):
            return model
        self.xdna_cpu_model = os.fspath(model)
        return self.xdna_cpu_model

    def _xdna_provider(self, options: ProviderOptions) -> XDNAProvider:
        """The provider core for this session (a measuring subclass, e.g. `bench
        accuracy`, configures it further)."""
        return XDNAProvider(options)

    def _xdna_runs_natively(self, device: str) -> bool:
        """Whether this session runs the device's regions in the plugin library."""
        return _plugin_runs(device)

    def _xdna_on_region_call(self) -> Callable[[RegionCall], None] | None:
        """What sees every region call of this session on the plugin library (a
        region tap, taps.py), or None for no tap. The provider core's observer
        (`bench accuracy`) gets each region's id, program and outputs; a measuring
        subclass (the self-test's twin) may return its own."""
        provider = self._xdna_provider_core
        observe = provider.observe
        if observe is None:
            return None

        def on_call(call: RegionCall) -> None:
            rid, program = provider.region_of(call.region)
            observe(rid, program, call.outputs)

        return on_call

    # -- runs: region failures surface as exceptions ------------------------------------
    def _guarded(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._guarded_with(self._xdna_native, fn, *args, **kwargs)

    def _guarded_with(self, native: bool, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """fn(...) with region failures raised as XDNARegionError: the plugin's come
        back as ORT errors naming XDNA (a region tap's exception is recorded by the
        tap and named here)."""
        if not native:
            return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
            self._xdna_check_fallbacks(stacklevel=3)
            return result
        except Exception as exc:
            if plugin_route.is_plugin_error(exc):
                tap_exc = self._xdna_tap.take_error() if self._xdna_tap is not None else None
                if tap_exc is not None:
                    raise XDNARegionError(
                        f"{EP_NAME} region tap raised {type(tap_exc).__name__}: {tap_exc} "
                        f"({exc})") from tap_exc
                raise XDNARegionError(f"{EP_NAME} region call failed: {exc}") from exc
            raise

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        v = self._route(input_feed)
        if v is not None and v.session is not None:
            return self._guarded_with(v.native, v.session.run, output_names, input_feed,
                                      run_options)
        base = v is None  # else the base session runs the user's model on the CPU
        return self._guarded_with(self._xdna_native and base, super().run, output_names,
                                  input_feed, run_options)

    def run_with_ort_values(self, output_names: Any, input_dict_ort_values: Any,
                            run_options: Any = None) -> Any:
        v = self._route(input_dict_ort_values)
        if v is not None and v.session is not None:
            return self._guarded_with(v.native, v.session.run_with_ort_values,
                                      output_names, input_dict_ort_values, run_options)
        base = v is None
        return self._guarded_with(self._xdna_native and base, super().run_with_ort_values,
                                  output_names, input_dict_ort_values, run_options)

    def run_with_iobinding(self, iobinding: Any, run_options: Any = None) -> Any:
        if self._xdna_deferred:
            raise NotImplementedError(
                f"{EP_NAME}: run_with_iobinding on a session compiled per input shape (symbolic "
                f"dims {', '.join(self._xdna_deferred)} had no size at session start) is not "
                "supported: give the sizes with provider option dims or SessionOptions "
                "free-dimension overrides, or use run()")
        return self._guarded(super().run_with_iobinding, iobinding, run_options)

    # -- per-shape sessions (symbolic dims without a size at session start) -----------
    def _route(self, feed: Mapping[str, Any]) -> _ShapeVariant | None:
        """None: the base session runs this feed (its shape is the one compiled at
        start, or the model has no shape-specific compile). Otherwise the
        session of the feed's input shape, compiled at its first run."""
        if not (self._xdna_deferred or self._xdna_pinned) or not isinstance(feed, Mapping):
            return None
        from ..capability.shapes import symbolic_input_dims

        provider = self._xdna_provider_core
        assert provider.skeleton is not None
        run_dims = dims_mod.dims_from_arrays(symbolic_input_dims(provider.skeleton), feed)
        key = dims_mod.shape_key(run_dims)
        if key == self._xdna_pinned:
            return None
        with self._xdna_variant_lock:
            v = self._xdna_variants.get(key)
            if v is None:
                v = self._xdna_variants[key] = self._build_variant(run_dims)
                if len(self._xdna_variants) == MANY_SHAPES:
                    log.warning("%s: %d input shapes compiled by this session; each new shape "
                                "compiles (seconds) and keeps its own programs: pad inputs to a "
                                "few fixed shapes", EP_NAME, MANY_SHAPES)
        return v

    def _build_variant(self, run_dims: Mapping[str, int]) -> _ShapeVariant:
        provider = self._xdna_provider_core
        prepared = provider.prepare_shape(run_dims)
        self.xdna_plan = prepared.plan
        self.xdna_programs = dict(prepared.programs)
        for notice in prepared.notices:
            warnings.warn(notice, XDNAFallbackWarning, stacklevel=4)
        rest, rest_opts, kwargs = self._xdna_rest
        _announce(prepared.plan, self.xdna_start.device, stacklevel=4,
                  warn=prepared.rewritten is not None or prepared.native,
                  cpu_quantization=self.xdna_options.cpu_quantization)
        if prepared.rewritten is None and not prepared.native:
            if not self._xdna_pinned:  # the base session is the user's model
                return _ShapeVariant(None, prepared.plan)
            # the base session is specialised to the start shape: this shape runs
            # the user's model on the CPU provider (the notices above said why)
            cpu = _ORT_SESSION(self._xdna_cpu_model(), self._xdna_so, rest, rest_opts, **kwargs)
            return _ShapeVariant(cpu, prepared.plan)
        if not prepared.native:
            raise XDNAUnavailableError(_no_route(self.xdna_start.device))
        with _native_model(prepared) as model:
            inner = _ORT_SESSION(model, self._plugin_options(), None, None, **kwargs)
        return _ShapeVariant(inner, prepared.plan, native=True)

    def set_providers(self, providers: Any = None, provider_options: Any = None) -> None:
        """Without XDNA in the new list the session becomes a plain ORT session of
        the original model (the providers list decides); re-targeting XDNA in
        place is not supported: create a new session."""
        xdna, rest, rest_opts = split_providers(providers, provider_options)
        if xdna is not None:
            raise NotImplementedError(
                f"set_providers with {EP_NAME} on an existing session is not supported; "
                "create a new InferenceSession with the providers you want")
        if self._xdna_active:
            log.info("%s: set_providers(%s) drops XDNA; the model now runs on %s",
                     EP_NAME, rest, rest)
        self._xdna_active = self._xdna_native = False
        self._xdna_deferred, self._xdna_pinned = (), ""
        super().set_providers(rest or None, rest_opts or None)

    def run_async(self, output_names: Any, input_feed: Any, callback: Any, user_data: Any,
                  run_options: Any = None) -> Any:
        """ORT's run_async; a region failure reaches the callback as its error string."""
        if self._xdna_deferred:
            raise NotImplementedError(
                f"{EP_NAME}: run_async on a session compiled per input shape (symbolic dims "
                f"{', '.join(self._xdna_deferred)} had no size at session start) is not "
                "supported: give the sizes with provider option dims or SessionOptions "
                "free-dimension overrides, or use run()")
        return super().run_async(output_names, input_feed, callback, user_data, run_options)

    # -- ORT API with XDNA shown -------------------------------------------------------
    def get_providers(self) -> list[str]:
        inner = list(super().get_providers())
        if self._xdna_active and EP_NAME not in inner:
            return [EP_NAME, *inner]
        return inner

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        inner = dict(super().get_provider_options())
        if self._xdna_active:
            o = self.xdna_options
            inner.pop(EP_NAME, None)
            inner = {EP_NAME: {"device": self.xdna_start.device, "quantization": o.quantization,
                               "cache_dir": str(o.cache_dir), "fallback": o.fallback}, **inner}
        return inner

    # -- EPContext-style output (ep.context_enable) ----------------------------------
    @staticmethod
    def _context_path(src: str | os.PathLike[str] | bytes, so: ort.SessionOptions) -> str:
        """ep.context_file_path, defaulting like ORT to <model>_ctx.onnx next to the
        model (and recorded in the options, as ORT needs it for a model given as bytes)."""
        path = _config(so, "ep.context_file_path")
        if not path:
            if isinstance(src, bytes):
                raise ValueError("ep.context_enable=1 with a model given as bytes needs "
                                 "ep.context_file_path")
            p = Path(src)
            path = str(p.with_name(p.stem + "_ctx.onnx"))
            so.add_session_config_entry("ep.context_file_path", path)
        return path
