#!/usr/bin/env bash
# Compile-and-link check that csrc/ builds on a non-x86 CPU (aarch64) with the portable kernels only.
#
#   tools/check_aarch64.sh            (needs Debian's g++-aarch64-linux-gnu: apt-get install it)
#
# What it checks:
#   1. CMakeLists.txt configures for an aarch64 target: its non-x86 branch drops the *avx* sources and
#      does not define NNCORE_X86, and the threads library is found for the cross compiler.
#   2. Every remaining .cpp under csrc/ (kernels, common/ and the pybind11 bindings) compiles for
#      aarch64 with the project's warning flags, and links into _core.so against aarch64 libc and
#      libstdc++ (no OpenMP runtime: nncore runs its own thread pool). So no x86 intrinsic, cpuid or target attribute leaks outside an NNCORE_X86 guard.
#   3. The linked module leaves no nncore symbol undefined: portable code never calls a kernel that
#      exists only in an x86 source file (a compile-only check would miss that).
# What it does not check: that the result runs (nothing here executes aarch64 code; the portable
# path itself is tested on x86 with NNCORE_ISA=generic). The bindings compile against this host's
# CPython and pybind11 headers (LP64 and little-endian on both, so the layouts agree), because no
# aarch64 CPython is installed; the Python C-API symbols are left for the interpreter to resolve.
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX_AARCH64:-aarch64-linux-gnu-g++}
py=${PYTHON:-python3}
if ! command -v "$cxx" >/dev/null; then
  echo "$cxx not found: apt-get install g++-aarch64-linux-gnu" >&2
  exit 2
fi
start=$(date +%s)
out=build/aarch64
rm -rf "$out"
mkdir -p "$out"
cat >"$out/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER $(command -v "$cxx"))
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
EOF
# The bindings need pybind11's headers (a build-time dependency; a fresh venv may lack it).
"$py" -c 'import pybind11' 2>/dev/null || "$py" -m pip install --quiet pybind11
pybind11_dir=$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')
py_inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')

# Only 2 cores on the project's machines: builds from several work trees take turns.
exec 9>/tmp/nncore-build.lock
flock 9
cmake -S . -B "$out" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$out/toolchain.cmake" \
  -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR="$pybind11_dir" \
  -DPython_INCLUDE_DIR="$py_inc" -DPython_EXECUTABLE="$(command -v "$py")" \
  -DCMAKE_COMPILE_WARNING_AS_ERROR=ON >"$out/configure.log"
cmake --build "$out"
so=$(ls "$out"/_core*.so)
exec 9>&-

file "$so"
if ! file "$so" | grep -q "ARM aarch64"; then
  echo "FAIL: $so is not an aarch64 object" >&2
  exit 1
fi
if grep -q "avx" "$out/build.ninja"; then
  echo "FAIL: an *avx* source is part of the aarch64 build" >&2
  exit 1
fi
if grep -q "NNCORE_X86" "$out/build.ninja"; then
  echo "FAIL: NNCORE_X86 is defined for an aarch64 build" >&2
  exit 1
fi
# Unversioned undefined symbols are those no linked library (libc, libstdc++) provides:
# the CPython API, resolved by the interpreter at import, and nothing of nncore's own.
missing=$(aarch64-linux-gnu-nm -D --undefined-only "$so" | awk '$2 !~ /@/ {print $2}' |
  aarch64-linux-gnu-c++filt | grep -E 'nncore' || true)
if [ -n "$missing" ]; then
  echo "FAIL: nncore symbols left undefined on aarch64 (x86-only code called from portable code):" >&2
  echo "$missing" >&2
  exit 1
fi
if aarch64-linux-gnu-readelf -d "$so" | grep -Eq 'NEEDED.*lib(g|)omp'; then
  echo "FAIL: $so links an OpenMP runtime; nncore runs its own thread pool" >&2
  exit 1
fi
echo "aarch64 check passed: $(grep -c '\.cpp\.o:' "$out/build.ninja") sources compiled, no nncore symbol undefined ($(( $(date +%s) - start )) s)"
