#!/usr/bin/env bash
# The test suite: unit, property, conformance (Swift vs Python jsonschema) and end-to-end CLI
# tests. Tests that need a broker start their own mosquitto on a free loopback port.
# The scenario tests (the whole demo stack at 60x fleet time, ~6 min) run last, on their own:
# a second of CPU contention is a minute of scenario time. With arguments (e.g. --filter X)
# there is one run with them; SKIP_SCENARIOS=1 leaves the scenarios out.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 Tests/conformance/jsonschema_verdicts.py --self-test >/dev/null
swift build --build-tests
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
swift test --skip-build --skip ScenarioEndToEndTests
if [ "${SKIP_SCENARIOS:-0}" != 1 ]; then
    swift test --skip-build --filter ScenarioEndToEndTests
fi
