"""Device discovery and selection, `xdna-ep devices`, and get_ep_devices()."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from xdna_ep.cli import main
from xdna_ep.runtime import (
    DeviceUnavailableError,
    EmulatorDevice,
    FallbackDevice,
    Probes,
    XrtDevice,
    get_ep_devices,
    probe_system,
    select_device,
)

from fakes.fake_npu_tree import make_fake_npu_tree  # isort: skip
from fakes.fake_pyxrt import make_fake_pyxrt  # isort: skip
from fakes.kernels_for_tests import fake_kernels, make_npu_files, make_program  # isort: skip


def fake_machine(root: Path, *, node: bool = True, driver: str = "amdxdna",
                 loaded: bool = True, firmware: str | None = "1.5.5.391",
                 pyxrt: bool = True, skip_xclbin: tuple[str, ...] = ()) -> Probes:
    """A FAKE machine with an NPU, described as files under `root` (the same tree
    the plugin library's probe is tested on, fakes/fake_npu_tree.py)."""
    tree = make_fake_npu_tree(root, node=node, driver=driver, loaded=loaded, firmware=firmware)
    manifest, xdir = make_npu_files(root / "kernels", skip_xclbin=skip_xclbin)
    fake = make_fake_pyxrt()

    def importer():
        if not pyxrt:
            raise ModuleNotFoundError("No module named 'pyxrt'")
        return fake

    return Probes(dev_root=tree.dev_root, sys_root=tree.sys_root, proc_modules=tree.proc_modules,
                  import_pyxrt=importer, manifest=manifest, xclbin_dirs=(xdir,))


def test_auto_on_this_machine_picks_the_emulator_and_says_why(caplog) -> None:
    info = probe_system()
    with caplog.at_level(logging.INFO, logger="xdna_ep.runtime"):
        choice = select_device("auto")
    assert choice.name == "emulator" and choice.requested == "auto"
    assert info.problems and info.problems[0].message in choice.reason
    assert "emulator" in choice.reason
    lines = [r.getMessage() for r in caplog.records if r.name == "xdna_ep.runtime"]
    assert len(lines) == 1 and "emulator" in lines[0] and info.problems[0].message in lines[0]
    assert isinstance(choice.open(), EmulatorDevice)


def test_npu_on_this_machine_names_the_missing_piece() -> None:
    info = probe_system()
    with pytest.raises(DeviceUnavailableError) as e:
        select_device("npu")
    assert e.value.missing == info.problems[0].missing
    assert info.problems[0].message in str(e.value)


def test_auto_picks_the_npu_on_a_machine_that_has_one(tmp_path: Path) -> None:
    probes = fake_machine(tmp_path)
    choice = select_device("auto", probes=probes)
    assert choice.name == "npu"
    assert "/accel0" in choice.reason and "1.5.5.391" in choice.reason
    assert "0.0-fake" in choice.reason and "2 xclbin" in choice.reason
    dev = choice.open(timeout_ms=500)
    assert isinstance(dev, FallbackDevice) and isinstance(dev.primary, XrtDevice)
    assert isinstance(select_device("npu", "error", probes=probes).open(), XrtDevice)
    with fake_kernels():
        prog = make_program()
        x = np.random.default_rng(0).normal(0, 2, (4, 8)).astype(np.float32)
        got = dev.load(prog).run({"x": x})
        want = EmulatorDevice().load(prog).run({"x": x})
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    assert dev.events == []
    assert any(n == "kernel.call" for n, _ in probes.import_pyxrt().calls)


@pytest.mark.parametrize("kwargs, missing, says", [
    ({"node": False}, "device-node", "accel* not found"),
    ({"driver": "intel_vpu"}, "device-node", "intel_vpu"),
    ({"loaded": False}, "driver", "amdxdna driver is not loaded"),
    ({"firmware": "1.4.2.100"}, "firmware", "1.4.2.100 on"),
    ({"pyxrt": False}, "pyxrt", "No module named 'pyxrt'"),
    ({"skip_xclbin": ("d_da",)}, "xclbin", "no xclbin d_da"),
])
def test_npu_request_names_each_missing_piece(tmp_path: Path, kwargs, missing, says) -> None:
    probes = fake_machine(tmp_path, **kwargs)
    with pytest.raises(DeviceUnavailableError) as e:
        select_device("npu", probes=probes)
    assert e.value.missing == missing and says in str(e.value)
    auto = select_device("auto", probes=probes)
    assert auto.name == "emulator" and says in auto.reason


def test_unreadable_firmware_version_is_not_a_blocker(tmp_path: Path) -> None:
    choice = select_device("auto", probes=fake_machine(tmp_path, firmware=None))
    assert choice.name == "npu" and "firmware unknown" in choice.reason


def test_explicit_emulator_and_bad_arguments() -> None:
    choice = select_device("emulator", "error")
    assert choice.name == "emulator" and choice.fallback == "error"
    with pytest.raises(ValueError, match="device must be one of"):
        select_device("gpu")
    with pytest.raises(ValueError, match="fallback must be one of"):
        select_device("auto", "sometimes")


def test_get_ep_devices_mirrors_plugin_eps(tmp_path: Path) -> None:
    devs = get_ep_devices(fake_machine(tmp_path))
    assert [d.device.metadata["backend"] for d in devs] == ["npu", "emulator"]
    hw, emu = devs
    assert hw.ep_name == "XDNAExecutionProvider" and hw.device.type == "NPU"
    assert hw.device.vendor == "AMD" and hw.device.vendor_id == 0x1022
    assert hw.device.device_id == 0x1502
    assert hw.device.metadata["firmware"] == "1.5.5.391"
    assert hw.device.metadata["driver"] == "amdxdna 2.19.0"
    assert hw.device.metadata["usable"] == "yes"
    assert emu.device.metadata["driver"].startswith("none")
    here = get_ep_devices()
    assert here[-1].device.metadata["backend"] == "emulator"


def test_devices_cli_json_and_text(capsys) -> None:
    assert main(["devices", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["auto"]["device"] == "emulator"
    assert doc["hardware_validated"] is False
    assert doc["npu_problems"] and doc["npu_problems"][0]["message"] in doc["auto"]["reason"]
    assert doc["emulator"]["active_kernel_path"] in doc["emulator"]["kernel_paths"]
    assert main(["devices"]) == 0
    text = capsys.readouterr().out
    assert "auto -> emulator" in text and "not yet validated on hardware" in text
    assert "there is no NPU on this machine" in text


def test_xrt_device_without_pyxrt_names_it() -> None:
    with pytest.raises(DeviceUnavailableError, match="pyxrt") as e:
        XrtDevice()
    assert e.value.missing == "pyxrt"
