#!/usr/bin/env bash
# One-time set-up of a fresh Debian 12 machine for fleetwatch: system packages and the Python
# test tools. Idempotent; safe to run again. Needs root (uses sudo when not root).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# The system packages (one per line in scripts/packages.txt, shared with .ci/run): the MQTT
# library and broker, ncursesw for the TUI, SQLite, tmux for the TUI's end-to-end tests,
# prometheus (it scrapes the ingester in a test), prometheus-alertmanager and amtool (the
# alertmanager receiver is tested against it), Python for the conformance tooling.
mapfile -t packages < "$(dirname "$0")/packages.txt"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
# The system mosquitto service is not needed (tests and the demo start their own brokers on
# loopback ports); leave it as the machine's owner configured it.

# Python's jsonschema (Draft 2020-12) for the schema conformance test.
if ! python3 -c 'import jsonschema; jsonschema.Draft202012Validator' 2>/dev/null; then
  python3 -m pip install --quiet 'jsonschema>=4.18' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'jsonschema>=4.18' 2>/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-jsonschema
fi
command -v swift >/dev/null || { echo "setup: swift 6.x is not on PATH (https://swift.org/install)" >&2; exit 1; }
echo "setup: ok"
