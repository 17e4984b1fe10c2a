#!/usr/bin/env bash
# Fuzz the telemetry decoder with libFuzzer for N seconds (default 60).
#   Fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
# Builds Fuzz/out/decoder-fuzz from the FleetCore sources with -sanitize=fuzzer,address,
# seeds the corpus from the conformance fixtures, and exits non-zero on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"; shift || true
mkdir -p Fuzz/out Fuzz/corpus-work
swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
  -module-name FleetCore \
  Sources/FleetCore/*.swift Fuzz/DecoderFuzz.swift \
  -o Fuzz/out/decoder-fuzz
# Seed corpus: every fixture (the 300 KiB ones are skipped by -max_len below).
cp -f Tests/Fixtures/telemetry/valid/*.json Fuzz/corpus-work/ 2>/dev/null || true
for f in Tests/Fixtures/telemetry/invalid/*.json; do
  [ "$(basename "$f")" = reasons.json ] || cp -f "$f" Fuzz/corpus-work/
done
cd Fuzz/out
./decoder-fuzz ../corpus-work -max_total_time="$seconds" -max_len=300000 -rss_limit_mb=4096 \
  -timeout=10 -print_final_stats=1 -dict=../telemetry.dict "$@"
