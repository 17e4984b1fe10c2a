#!/usr/bin/env bash
# One-time set-up of a fresh Debian 12 machine for fleetwatch: system packages and the Python
# test tools. Idempotent; safe to run again. Needs root (uses sudo when not root).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

packages=(
  pkg-config
  libmosquitto-dev mosquitto mosquitto-clients   # MQTT client library and the broker
  libncursesw5-dev                               # the TUI
  libsqlite3-dev sqlite3                         # the store
  tmux                                           # end-to-end TUI tests
  prometheus                                     # scrapes the ingester in a test
  python3 python3-pip                            # conformance test tooling
)
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
