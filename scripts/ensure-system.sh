#!/usr/bin/env bash
# Installs the system packages the exporter's demo and tests use (Debian/Ubuntu),
# or says clearly what is missing when it cannot install them.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts a redis-server service; the demo and tests start private ones.
  exit 0
fi
echo "missing: ${missing[*]} — install them (e.g. sudo apt-get install ${missing[*]}) and run again" >&2
exit 1
