#!/usr/bin/env bash
# Rebuild xdna_ep._emulator in place for development (serialised with flock so
# several builds at once do not trample each other). Usage: scripts/dev_build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
if ! "$PY" -c "import pybind11, cmake, ninja" 2>/dev/null; then
  # pip's isolated build env had them; a dev rebuild needs them in the venv
  "$PY" -m pip install -q cmake ninja pybind11
fi
export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
PYBIND11_DIR=$("$PY" -c "import pybind11; print(pybind11.get_cmake_dir())")
exec 9>/tmp/xdna_ep_dev_build.lock
flock 9
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$PYBIND11_DIR" \
  -DPython_EXECUTABLE="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" -DXDNA_EP_OUTPUT_DIR="$PWD/build/dev/out" >/dev/null
cmake --build build/dev -j 2
# Swap the module in atomically: tests running meanwhile never see a half-written file.
for so in build/dev/out/_emulator*.so build/dev/out/libxdna_ep_provider.so; do
  cp "$so" "python/xdna_ep/.$(basename "$so").tmp"
  mv -f "python/xdna_ep/.$(basename "$so").tmp" "python/xdna_ep/$(basename "$so")"
done
