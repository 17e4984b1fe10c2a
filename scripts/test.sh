#!/usr/bin/env bash
# The test suite: unit, property, conformance (Swift vs Python jsonschema) and end-to-end CLI
# tests. Tests that need a broker start their own mosquitto on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 Tests/conformance/jsonschema_verdicts.py --self-test >/dev/null
swift build --build-tests
swift test --skip-build "$@"
