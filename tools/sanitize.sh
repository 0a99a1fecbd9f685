#!/usr/bin/env bash
# Build nncore._core with AddressSanitizer + UndefinedBehaviorSanitizer in its own build folder
# (build/sanitize) and run the kernel tests and the reader fuzz tests against it. Fails on any
# sanitizer report (every report aborts the process) or test failure.
#
#   tools/sanitize.sh                 # the default test list below
#   tools/sanitize.sh tests/test_x.py # other tests
#
# The Python interpreter itself is not instrumented: libasan is preloaded so that it is the
# first library loaded (ASan requires that), and leak detection is off (the interpreter keeps
# its objects alive at exit by design, which LeakSanitizer would report).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
cxx=${CXX:-g++}
build=build/sanitize
pybind11_dir=$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -g"
(
  # Only 2 cores here: builds from several work trees take turns (as tools/dev_build.sh).
  exec 9>/tmp/nncore-build.lock
  flock 9
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_MODULE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -Dpybind11_DIR="$pybind11_dir" -DPython_EXECUTABLE="$(command -v "$py")" >/dev/null
  cmake --build "$build"
)
# A copy of the package with the instrumented module, so the working tree's module is untouched.
pkg="$build/py"
rm -rf "$pkg"
mkdir -p "$pkg"
cp -r python/nncore "$pkg/"
rm -f "$pkg"/nncore/_core*.so
cp "$build"/_core*.so "$pkg/nncore/"
asan=$("$cxx" -print-file-name=libasan.so)
ubsan=$("$cxx" -print-file-name=libubsan.so)
if [[ "$asan" != /* || ! -e "$asan" ]]; then
  echo "sanitize.sh: $cxx has no libasan.so" >&2
  exit 2
fi
preload="$asan"
if [[ "$cxx" != *clang* && "$ubsan" == /* && -e "$ubsan" ]]; then
  preload="$asan:$ubsan"
fi
if [[ $# -gt 0 ]]; then
  tests=("$@")
else
  tests=(tests/test_gemm.py tests/test_gemm_edges.py tests/test_conv.py tests/test_pool.py
         tests/test_rnn.py tests/test_norm_kernels.py tests/test_normalization.py
         tests/test_fuzz_readers.py tests/test_save_load.py)
fi
log="$build/reports"
rm -rf "$log"
mkdir -p "$log"
status=0
LD_PRELOAD="$preload" \
ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:halt_on_error=1:log_path=$PWD/$log/asan:strict_init_order=1" \
UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$PWD/$log/ubsan" \
PYTHONPATH="$pkg" NNCORE_SANITIZE=1 \
  "$py" -m pytest -q -p no:cacheprovider -x "${tests[@]}" || status=$?
# The sanitizers write their reports to files (pytest would capture stderr). A warning alone
# (e.g. "failed to allocate" for the tests that expect MemoryError) is shown, not a failure.
if compgen -G "$log/*" >/dev/null; then
  cat "$log"/* >&2
  if grep -q -E "ERROR: |runtime error" "$log"/*; then
    echo "sanitize.sh: sanitizer report(s) above" >&2
    exit 1
  fi
fi
if [[ $status -ne 0 ]]; then
  echo "sanitize.sh: tests failed (status $status)" >&2
  exit "$status"
fi
echo "sanitize.sh: no sanitizer report; tests passed"
