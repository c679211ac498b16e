"""InferenceSession with the XDNA execution provider.

A real onnxruntime.InferenceSession (subclass): before ONNX Runtime sees the
model, the NPU regions are partitioned and compiled (or taken from the cache, or
from a shipped EPContext-style model) and each is replaced by one region node;
ORT then runs the rewritten model with the remaining providers, and the region
nodes call the device through xdna_ep.ort.region_op. run, run_with_ort_values,
IOBinding, get_inputs/get_outputs and profiling are ORT's own.

Only the providers list decides: without "XDNAExecutionProvider" in it this
class is a plain ORT session. With it, XDNA runs or a warning (fallback=allow)
or an error (fallback=error) says why not: never a silent CPU fallback. A model
whose regions the cost model keeps on the CPU (e.g. Whisper's per-token decoder)
gets a warning in both modes: that is a placement decision, not a failure.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from .. import EP_NAME
from ..compile.program import Program
from ..plan import PartitionPlan
from ..rewrite.graph import node_program, region_nodes, rewrite_model, set_string_attr
from . import pipeline, plan_io, region_op
from .cache import CacheCorrupt, CacheStale, ModelCache, entry_id, model_digest
from .epcontext import embed_programs, extract_programs
from .options import ProviderOptions, calibration_digest, parse_options, read_calibration

log = logging.getLogger("xdna_ep")

# the InferenceSession class install() replaces; sessions always build on it
_ORT_SESSION: type = ort.InferenceSession


class XDNAFallbackWarning(UserWarning):
    """XDNAExecutionProvider was requested but (part of) the model runs on CPU."""


class XDNAUnavailableError(RuntimeError):
    """XDNAExecutionProvider was requested with fallback=error and cannot run."""


class XDNARegionError(RuntimeError):
    """A region node failed during run() (the device or program raised)."""


@dataclass
class StartInfo:
    """How this session started (the benchmark and tests read it)."""

    source: str = ""  # "compiled" | "cache" | "epcontext" | "cpu-fallback" | "cpu-by-cost"
    seconds: float = 0.0
    cache_entry: Path | None = None
    regions: int = 0
    device: str = ""
    device_reason: str = ""
    notes: list[str] = field(default_factory=list)


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


def _load_proto(src: str | os.PathLike[str] | bytes) -> onnx.ModelProto:
    from ..capability.loader import ensure_node_names, load_model, validate_model

    if isinstance(src, bytes):
        try:
            model = onnx.load_model_from_string(src)
        except Exception as exc:  # noqa: BLE001 - protobuf decode errors
            raise ValueError(f"model bytes are not a valid ONNX protobuf ({exc})") from None
        validate_model(model, "model bytes")
        ensure_node_names(model)
        return model
    return load_model(src)


class InferenceSession(_ORT_SESSION):  # type: ignore[misc, valid-type]
    """onnxruntime.InferenceSession that understands "XDNAExecutionProvider"."""

    def __init__(self, path_or_bytes: str | os.PathLike[str] | bytes,
                 sess_options: ort.SessionOptions | None = None,
                 providers: Sequence[Any] | None = None,
                 provider_options: Sequence[Mapping[str, Any]] | None = None,
                 **kwargs: Any) -> None:
        xdna_raw, rest, rest_opts = split_providers(providers, provider_options)
        self._xdna_active = False
        self._xdna_table: region_op.ProgramTable | None = None
        self._pending_context: tuple[onnx.ModelProto, dict[str, Program], str] | None = None
        self.xdna_start = StartInfo()
        # the partition plan of this session (None for a plain ORT session): what
        # went where, MAC shares, launches; whisper and the benchmarks read it
        self.xdna_plan: PartitionPlan | None = None
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
            # region nodes are CPU-side custom ops that call the device
            rest, rest_opts = [*rest, "CPUExecutionProvider"], [*rest_opts, {}]
        so = sess_options if sess_options is not None else ort.SessionOptions()
        model_bytes = self._prepare(path_or_bytes, opts, so)
        if self._xdna_active:
            region_op.register_library(so)
        super().__init__(model_bytes, so, rest, rest_opts, **kwargs)
        # what ORT (set_providers -> session reset) and Optimum (session._model_path:
        # save_pretrained, model dir) read: the user's model, not our rewrite
        if isinstance(path_or_bytes, bytes):
            self._model_path, self._model_bytes = None, path_or_bytes
        else:
            self._model_path, self._model_bytes = os.fspath(path_or_bytes), None
        if self._pending_context is not None:
            self._write_context_model(*self._pending_context)
            self._pending_context = None
        self.xdna_start.seconds = time.perf_counter() - t0

    # -- runs: region failures surface as exceptions ------------------------------------
    def _guarded(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        table = self._xdna_table
        if table is None:
            return fn(*args, **kwargs)
        table.begin_run()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            err = table.end_run()
            if err:
                raise XDNARegionError(f"{EP_NAME} region call failed: {err}") from exc
            raise
        err = table.end_run()
        if err:
            raise XDNARegionError(f"{EP_NAME} region call failed: {err}")
        return result

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return self._guarded(super().run, output_names, input_feed, run_options)

    def run_with_ort_values(self, output_names: Any, input_dict_ort_values: Any,
                            run_options: Any = None) -> Any:
        return self._guarded(super().run_with_ort_values, output_names, input_dict_ort_values,
                             run_options)

    def run_with_iobinding(self, iobinding: Any, run_options: Any = None) -> Any:
        return self._guarded(super().run_with_iobinding, iobinding, run_options)

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
        self._xdna_active = False
        self._xdna_table = None
        super().set_providers(rest or None, rest_opts or None)

    def run_async(self, output_names: Any, input_feed: Any, callback: Any, user_data: Any,
                  run_options: Any = None) -> Any:
        """ORT's run_async; a region failure reaches the callback as its error string."""
        table = self._xdna_table
        if table is None:
            return super().run_async(output_names, input_feed, callback, user_data, run_options)

        def checked(results: Any, data: Any, err: str) -> None:
            region_err = table.pop_thread_error()
            if region_err:
                err = f"{EP_NAME} region call failed: {region_err}"
                results = []
            callback(results, data, err)

        return super().run_async(output_names, input_feed, checked, user_data, run_options)

    # -- ORT API with XDNA shown -------------------------------------------------------
    def get_providers(self) -> list[str]:
        inner = list(super().get_providers())
        return [EP_NAME, *inner] if self._xdna_active else inner

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        inner = dict(super().get_provider_options())
        if self._xdna_active:
            o = self.xdna_options
            inner = {EP_NAME: {"device": self.xdna_start.device, "quantization": o.quantization,
                               "cache_dir": str(o.cache_dir), "fallback": o.fallback}, **inner}
        return inner

    # -- preparation -------------------------------------------------------------------
    def _fail(self, opts: ProviderOptions, why: str) -> None:
        msg = f"{EP_NAME} cannot run this model: {why}"
        if opts.fallback == "error":
            raise XDNAUnavailableError(msg + " (provider option fallback=error)")
        warnings.warn(msg + "; the whole model runs on CPUExecutionProvider "
                      "(set fallback=error to make this an error)", XDNAFallbackWarning,
                      stacklevel=4)

    def _prepare(self, src: str | os.PathLike[str] | bytes, opts: ProviderOptions,
                 so: ort.SessionOptions) -> str | bytes:
        """The model ORT gets: rewritten with region nodes (bytes), or the original."""
        info = self.xdna_start
        if not isinstance(src, bytes) and not Path(src).is_file():
            raise FileNotFoundError(f"model file not found: {src}")
        # the unchanged model for ORT (a path keeps its external data resolvable)
        original: str | bytes = src if isinstance(src, bytes) else os.fspath(src)
        try:
            device, reason = pipeline.select_device(opts.device, opts.fallback)
        except Exception as exc:  # noqa: BLE001 - any device failure is reported
            if opts.device == "npu":  # asked for the hardware by name: never substitute
                raise XDNAUnavailableError(f"{EP_NAME}: device=npu is not available: "
                                           f"{exc}") from exc
            self._fail(opts, f"device {opts.device!r} is not available ({exc})")
            info.source = "cpu-fallback"
            return original
        info.device, info.device_reason = getattr(device, "name", opts.device), reason
        if info.device == "emulator":
            log.info("%s: regions run on the host emulator (%s)", EP_NAME, reason)
            if opts.num_threads is not None:
                from .._native import emulator

                # the emulator's thread pool is per process: the last session's
                # setting wins (said in the log and in docs/PROVIDER_OPTIONS.md)
                emulator.set_num_threads(opts.num_threads)
                log.info("%s: emulator threads set to %d (process-wide)", EP_NAME,
                         opts.num_threads)
        model, programs, plan = self._obtain(src, opts)
        self.xdna_plan = plan
        if plan is not None and opts.report is not None:  # also when nothing runs: it says why
            pipeline.write_report(plan, opts.report)
        if not programs and info.source == "cpu-fallback":
            return original  # _obtain already said why
        if not programs and plan is not None and _cost_kept_everything_on_cpu(plan):
            # a placement decision, not a failure: announced, but fallback=error is
            # about what cannot run (model or device), so it does not raise here
            reasons = sorted({r.cost_reason for r in plan.regions})[:2]
            warnings.warn(f"{EP_NAME} places no node on the NPU: the cost model keeps "
                          f"every region on CPUExecutionProvider ({'; '.join(reasons)})",
                          XDNAFallbackWarning, stacklevel=3)
            info.source = "cpu-by-cost"
            return original
        if not programs:
            why = "no node of the model can run on the NPU"
            if plan is not None:
                reasons = sorted({n.reason for n in plan.nodes if n.placement == "cpu"})[:3]
                why += f" (e.g. {'; '.join(reasons)})" if reasons else ""
            self._fail(opts, why)
            info.source = "cpu-fallback"
            return original
        table = region_op.ProgramTable()
        try:
            for node in region_nodes(model):
                ref, _ = node_program(node)
                prog = programs[ref]
                table.add(ref, region_op.RegionEntry(
                    device.load(prog), tuple(t.name for t in prog.inputs),
                    tuple(t.name for t in prog.outputs), int(_region_id(node))))
                set_string_attr(node, "session", table.token)
        except Exception as exc:  # noqa: BLE001 - a device that cannot load is reported
            self._fail(opts, f"loading the compiled regions on the {info.device} failed "
                             f"({type(exc).__name__}: {exc})")
            info.source = "cpu-fallback"
            return original
        self._xdna_table = table
        self._xdna_device = device
        self._xdna_active = True
        info.regions = len(table.entries)
        if _config(so, "ep.context_enable") == "1":
            # written after ORT's own session init, which refuses an existing file
            self._pending_context = (model, programs, self._context_path(src, so))
        return model.SerializeToString()

    def _obtain(self, src: str | os.PathLike[str] | bytes, opts: ProviderOptions
                ) -> tuple[onnx.ModelProto, dict[str, Program], PartitionPlan | None]:
        """(rewritten model, programs by reference, plan) from a shipped compiled model,
        the cache, or a fresh partition + compile."""
        info = self.xdna_start
        proto = _load_proto(src)
        if region_nodes(proto):  # a shipped compiled model (EPContext-style)
            info.source = "epcontext"
            return proto, extract_programs(proto), None
        samples = read_calibration(opts)
        key = {"model": model_digest(src), "options": opts.to_json(),
               "calibration": calibration_digest(opts, samples)}
        eid = entry_id(key["model"], key["options"], key["calibration"])
        cache = ModelCache(opts.cache_dir)
        try:
            entry = cache.load(eid, key)
        except CacheStale as exc:
            log.warning("%s: %s; rebuilding", EP_NAME, exc)
            entry = None
        except CacheCorrupt as exc:
            log.warning("%s: %s; rebuilding it", EP_NAME, exc)
            info.notes.append(f"corrupt cache entry rebuilt: {exc}")
            entry = None
        if entry is not None:
            info.source, info.cache_entry = "cache", entry.path
            plan_doc = entry.manifest.get("info", {}).get("plan")
            plan = plan_io.plan_from_dict(plan_doc) if plan_doc else None
            if plan is not None:  # this start's device, not the one that compiled
                plan.device, plan.device_reason = info.device, info.device_reason
            return entry.model, entry.programs, plan
        info.source = "compiled"
        name = "model bytes" if isinstance(src, bytes) else Path(src).name
        try:
            plan = pipeline.partition(proto, opts, info.device, info.device_reason, name)
            if not any(r.placement == "npu" for r in plan.regions):
                return proto, {}, plan
            compiled = pipeline.compile_regions(proto, plan, opts, samples)
            _drop_unrunnable(plan, compiled)
            if not compiled:
                return proto, {}, plan
            rewritten, nodes = rewrite_model(proto, plan, compiled)
        except Exception as exc:  # noqa: BLE001 - reported by _fail (warning or error)
            log.debug("partition/compile failure", exc_info=True)
            self._fail(opts, f"partitioning or compiling failed ({type(exc).__name__}: {exc})")
            info.source = "cpu-fallback"
            return proto, {}, None
        programs = {n.program: compiled[n.region] for n in nodes}
        try:
            info.cache_entry = cache.store(eid, key, rewritten, programs,
                                           {"plan": plan_io.plan_to_dict(plan)})
        except OSError as exc:  # read-only or full cache_dir: run uncached, say so
            log.warning("%s: cannot write the compiled-model cache in %s (%s); this "
                        "session runs without caching", EP_NAME, opts.cache_dir, exc)
            info.notes.append(f"cache not written: {exc}")
        log.info("%s: compiled %d region(s) (%.1f%% of the MACs); cache entry %s", EP_NAME,
                 len(nodes), 100.0 * plan.npu_mac_share, info.cache_entry)
        for why in plan.fallbacks:
            log.info("%s: kept on CPU: %s", EP_NAME, why)
        return rewritten, programs, plan

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

    def _write_context_model(self, model: onnx.ModelProto, programs: dict[str, Program],
                             path: str) -> None:
        shipped = embed_programs(model, programs)
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        onnx.save(shipped, str(tmp))
        os.replace(tmp, path)
        log.info("%s: compiled model written to %s", EP_NAME, path)
        self.xdna_start.notes.append(f"context model: {path}")


def _cost_kept_everything_on_cpu(plan: PartitionPlan) -> bool:
    """True when NPU-capable regions exist and the cost model (not a failure) put
    every one of them on the CPU."""
    return bool(plan.regions) and all(
        r.placement == "cpu" and r.cost_reason.startswith("cost:") for r in plan.regions)


def _drop_unrunnable(plan: PartitionPlan, compiled: dict[int, Program]) -> None:
    """Regions the region op cannot call (too many inputs/outputs, non-float32
    outputs) go back to the CPU with the reason in the plan (and the report)."""
    from ..rewrite.graph import OUTPUT_DTYPES, op_type_for

    for region in plan.regions:
        prog = compiled.get(region.id)
        if region.placement != "npu" or prog is None:
            continue
        try:
            op_type_for(len(prog.inputs), len(prog.outputs))
            bad = [t.name for t in prog.outputs if t.dtype not in OUTPUT_DTYPES]
            if bad:
                raise NotImplementedError(f"outputs {bad} are not float32")
        except NotImplementedError as exc:
            region.placement = "cpu"
            region.cost_reason = f"region op cannot call it: {exc}"
            plan.fallbacks.append(f"region {region.id}: {exc}")
            for n in plan.nodes:
                if n.region == region.id:
                    n.placement = "cpu"
                    n.reason = f"region {region.id} kept on CPU: {exc}"
            del compiled[region.id]


def _region_id(node: onnx.NodeProto) -> str:
    for a in node.attribute:
        if a.name == "region":
            return a.s.decode() or "-1"
    return "-1"
