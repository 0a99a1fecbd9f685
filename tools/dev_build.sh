#!/usr/bin/env bash
# Developer build: compiles nncore._core into build/dev and copies it next to the Python sources, so
# `PYTHONPATH=python python -m pytest` runs against the working tree. Users install with `pip install .`.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
pybind11_dir=$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')
# Only 2 cores here: builds from several work trees take turns.
exec 9>/tmp/nncore-build.lock
flock 9
cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$pybind11_dir" \
  -DPython_EXECUTABLE="$(command -v "$py")" >/dev/null
cmake --build build/dev
cp build/dev/_core*.so python/nncore/
