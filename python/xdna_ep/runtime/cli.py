"""`xdna-ep devices [--json]`: what the runtime finds, which device auto would use,
and the plugin library's entries in ONNX Runtime's device list."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from .discovery import Probes, probe_system
from .selection import select_device


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("devices", help="list NPU devices, driver, firmware, xclbins "
                                              "and the device `auto` would use")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)
    return p


def build_command(missing: list[str]) -> str | None:
    """The one command that builds the missing xclbins into the first directory the
    runtime searches (None when nothing is missing)."""
    import os
    import sys

    from .xclbins import kernels_dir, search_path

    names = sorted(n for n in missing if n != "*")
    if not missing:
        return None
    out = search_path()[0]
    script = kernels_dir() / "build_xclbins.py"
    only = f" --only {' '.join(names)}" if names and "*" not in missing else ""
    return f"{sys.executable} {script} --out {os.fspath(out)}{only}"


def plugin_view() -> dict[str, Any]:
    """The plugin library's entries in `ort.get_ep_devices()` and its own word on the
    NPU entry ({"error": ...} when the library cannot be loaded)."""
    from .. import plugin

    try:
        devices = plugin.plugin_devices()
        probe = plugin.npu_probe()
    except (FileNotFoundError, OSError, RuntimeError) as exc:
        return {"error": str(exc)}
    return {"library": plugin.get_library_path(), "devices": [asdict(d) for d in devices],
            "npu_entry": probe.listed, "npu_detail": probe.detail}


def collect(probes: Probes | None = None) -> dict[str, Any]:
    from .._native import emulator

    probes = probes or Probes()
    info = probe_system(probes)
    choice = select_device("auto", probes=probes)
    return {
        "device_nodes": [asdict(n) for n in info.nodes],
        "driver": {"name": "amdxdna", "loaded": info.driver_loaded,
                   "version": info.driver_version},
        "pyxrt": {"version": info.pyxrt_version, "error": info.pyxrt_error},
        "xclbins": {"found": info.xclbins_found, "missing": info.xclbins_missing},
        "emulator": {"kernel_paths": list(emulator.kernel_paths()),
                     "active_kernel_path": emulator.active_kernel_path(),
                     "threads": emulator.num_threads()},
        "npu_problems": [{"missing": p.missing, "message": p.message} for p in info.problems],
        "auto": choice.to_json(),
        "build_command": build_command(list(info.xclbins_missing)),
        "plugin": plugin_view(),
        "hardware_validated": False,
    }


def _text(d: dict[str, Any]) -> str:
    lines = ["NPU device nodes:"]
    if d["device_nodes"]:
        for n in d["device_nodes"]:
            lines.append(f"  {n['path']}  driver={n['driver']}  firmware={n['firmware']}  "
                         f"board={n['vbnv']}")
    else:
        lines.append("  none (no /dev/accel/accel*): there is no NPU on this machine")
    drv = d["driver"]
    lines.append(f"amdxdna driver: {'loaded' if drv['loaded'] else 'not loaded'}"
                 + (f" (version {drv['version']})" if drv["version"] else ""))
    py = d["pyxrt"]
    lines.append(f"pyxrt: {py['version'] if py['version'] else 'not importable: ' + py['error']}")
    x = d["xclbins"]
    lines.append(f"xclbins: {len(x['found'])} found, {len(x['missing'])} missing")
    for name, path in sorted(x["found"].items()):
        lines.append(f"  found    {name}: {path}")
    for name, why in sorted(x["missing"].items()):
        lines.append(f"  missing  {why}" if name == "*" else f"  missing  {name}: {why}")
    if d.get("build_command"):
        lines.append(f"build what is missing: {d['build_command']}")
        lines.append("  (needs the MLIR-AIE toolchain: docs/HARDWARE.md; without it the "
                     "command names each missing tool)")
    e = d["emulator"]
    lines.append(f"emulator: kernel paths {', '.join(e['kernel_paths'])}; active "
                 f"{e['active_kernel_path']}; {e['threads']} thread(s)")
    a = d["auto"]
    lines.append(f"auto -> {a['device']}: {a['reason']}")
    lines.extend(_plugin_text(d["plugin"]))
    lines.append("note: the xrt (NPU) path is complete but not yet validated on hardware")
    return "\n".join(lines)


def _plugin_text(p: dict[str, Any]) -> list[str]:
    lines = ["plugin library in ONNX Runtime (ort.get_ep_devices()):"]
    if "error" in p:
        return lines + [f"  not available: {p['error']}"]
    for dev in p["devices"]:
        meta = dev["ep_metadata"]
        where = (f"{meta.get('device_node', '?')}, firmware {meta.get('firmware', '?')}"
                 if dev["backend"] == "npu" else f"host CPU, {meta.get('threads', '?')} thread(s)")
        lines.append(f"  backend={dev['backend']:<8} device type {dev['device_type']}, "
                     f"{dev['vendor_id']:#06x}:{dev['device_id']:#06x}, {where}")
    if not p["npu_entry"]:
        lines.append(f"  no NPU entry: {p['npu_detail']}")
    return lines


def run(args: argparse.Namespace) -> int:
    d = collect()
    print(json.dumps(d, indent=1, sort_keys=True) if args.json else _text(d))
    return 0
