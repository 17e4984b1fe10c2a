#!/usr/bin/env bash
# Checks the objects of a build for the runtime CPU dispatch's invariants (x86-64 only):
#   - EdgeKernelsAVX2 uses AVX2 registers and fused multiply-adds;
#   - EdgeKernels and EdgeRuntime use no VEX-encoded (AVX) instruction at all;
#   - EdgeKernelsAVX2 defines no weak code symbol outside its own namespace (e.g. a stdlib
#     specialization, which the linker would merge with the baseline module's copy of the same
#     name: one of the two would then run for both, possibly AVX2 code on a CPU without it).
# Usage: scripts/check-kernel-isa.sh [BUILD_DIR]   (default .build-edge/release)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.build-edge/release}"
[ "$(uname -m)" = x86_64 ] || { echo "check-kernel-isa: not x86-64, nothing to check"; exit 0; }
fail=0
# The module's current objects (its output file map; a removed source's object may linger).
objects() {
    python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); print("\n".join(v["object"] for k, v in m.items() if k and "object" in v))' \
        "$dir/$1.build/output-file-map.json"
}
count() { objdump -d --no-show-raw-insn "$@" | grep -cE "$pattern" || true; }
mapfile -t avx2 < <(objects EdgeKernelsAVX2)
pattern='vfmadd[0-9]+ps'; fma=$(count "${avx2[@]}")
pattern='%ymm'; ymm=$(count "${avx2[@]}")
echo "EdgeKernelsAVX2: $fma vfmadd*ps, $ymm instructions on ymm registers"
[ "$fma" -gt 0 ] && [ "$ymm" -gt 0 ] || { echo "FAIL: EdgeKernelsAVX2 was not built for AVX2+FMA"; fail=1; }
pattern='^\s+[0-9a-f]+:\s+v[a-z]'
for m in EdgeKernels EdgeRuntime; do
    mapfile -t objs < <(objects $m)
    vex=$(count "${objs[@]}")
    echo "$m: $vex VEX instructions"
    [ "$vex" -eq 0 ] || { echo "FAIL: $m contains AVX instructions"; fail=1; }
done
weak=$(nm --defined-only "${avx2[@]}" | grep -E ' W ' | grep -v ' \$s15EdgeKernelsAVX2' || true)
if [ -n "$weak" ]; then echo "FAIL: shared weak code symbols in EdgeKernelsAVX2:"; echo "$weak"; fail=1; else echo "EdgeKernelsAVX2: no weak code symbols outside its own module"; fi
exit $fail
