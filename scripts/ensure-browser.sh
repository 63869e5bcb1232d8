#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser tests when it is missing (as root),
# or says clearly what is missing. The tests drive it with Playwright's Python client
# (`playwright` from PyPI); no browser is downloaded by Playwright.
set -euo pipefail

if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "missing: chromium — install it (e.g. sudo apt-get install chromium) to run the browser tests" >&2
exit 1
