#!/usr/bin/env bash
# Installs promtool (from Debian's prometheus package) for the tests of the alert
# rules (tests/deploy/) when it is missing and this runs as root, or says clearly what
# is missing. Only promtool is wanted: the Prometheus server the package also holds
# is neither started nor enabled here.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: prometheus (for promtool)"
  # invoke-rc.d asks policy-rc.d whether to start a service; where there is none,
  # one that answers "no" stands in for the install.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  exit 0
fi
echo "missing: promtool — install it (e.g. sudo apt-get install prometheus) to test the alert rules" >&2
exit 1
