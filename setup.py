"""Build entry: setuptools drives CMake to build the native emulator module and
the ONNX Runtime plugin library (libxdna_ep_provider.so, beside the module).

CMake, Ninja and pybind11 come from PyPI (see pyproject.toml build-system),
so a fresh machine needs only Python and a C++ compiler.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


PLUGIN_LIBRARY = "libxdna_ep_provider.so"  # provider/ (CMakeLists.txt), beside _emulator
NPU_LIBRARY = "libxdna_ep_npu.so"           # provider/npu/, built only where XRT is found


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        self.cmake_out_dir = out_dir  # where CMake puts _emulator and the plugin library
        build_temp = Path(self.build_temp).resolve() / "cmake"
        build_temp.mkdir(parents=True, exist_ok=True)
        # A cache from an earlier `pip install` names that run's temporary ninja
        # and cmake (deleted since): configure afresh each time; objects are kept.
        (build_temp / "CMakeCache.txt").unlink(missing_ok=True)
        cfg = "Debug" if self.debug else "Release"
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_temp), "-G", "Ninja",
            f"-DCMAKE_BUILD_TYPE={cfg}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DXDNA_EP_OUTPUT_DIR={out_dir}",
        ]
        if os.environ.get("XDNA_EP_BUILD_PROVIDER", "1") == "0":  # no plugin library
            configure.append("-DXDNA_EP_BUILD_PROVIDER=OFF")
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_temp), "-j", jobs], check=True)

    def copy_extensions_to_source(self) -> None:
        """An editable install (`pip install -e .`) copies only the declared
        extension module into python/xdna_ep; the plugin library CMake built
        beside it must follow, or get_library_path() finds nothing."""
        super().copy_extensions_to_source()
        built = getattr(self, "cmake_out_dir", None)
        for lib in (PLUGIN_LIBRARY, NPU_LIBRARY):
            if built is not None and (built / lib).exists():
                self.copy_file(str(built / lib), str(ROOT / "python" / "xdna_ep" / lib),
                               level=self.verbose)


def packages() -> tuple[list[str], dict[str, str]]:
    """python/xdna_ep is the package; the top-level models/ and kernels/ folders
    (where a reader of the design card looks for them) are mapped into it."""
    pkgs = find_packages("python")
    mapped = {"xdna_ep.models": "models", "xdna_ep._kernels": "kernels"}
    for pkg, folder in mapped.items():
        pkgs.append(pkg)
        pkgs += [f"{pkg}.{sub}" for sub in find_packages(folder)]
    package_dir = {"": "python", **mapped}
    for pkg in pkgs:
        for prefix, folder in mapped.items():
            if pkg.startswith(prefix + "."):
                package_dir[pkg] = folder + "/" + pkg[len(prefix) + 1:].replace(".", "/")
    return pkgs, package_dir


PACKAGES, PACKAGE_DIR = packages()

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    ext_modules=[CMakeExtension("xdna_ep._emulator")],
    cmdclass={"build_ext": CMakeBuild},
)
