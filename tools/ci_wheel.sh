#!/usr/bin/env bash
# CI step for the release artifacts: build the sdist and the repaired wheel (tools/build_wheel.sh),
# install the wheel into a fresh venv without a compiler and run the main job and the test suite
# but its slow tests against it (tools/test_wheel.sh), then the aarch64 compile check
# (tools/check_aarch64.sh) when the cross compiler is installed. Pass --full to include the slow
# tests in the wheel run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT

tools/build_wheel.sh "$dist"
tools/test_wheel.sh "$@" "$(ls "$dist"/nncore-*manylinux*.whl)" "$(ls "$dist"/nncore-*.tar.gz)"
if command -v aarch64-linux-gnu-g++ >/dev/null; then
  tools/check_aarch64.sh
else
  echo "aarch64 check skipped: g++-aarch64-linux-gnu is not installed"
fi
echo "ci_wheel: done in $(( $(date +%s) - start )) s"
