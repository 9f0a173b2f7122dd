#!/usr/bin/env bash
# Installs Debian's chromium for the console's headless-browser test (tests/console), once.
# Idempotent: does nothing when /usr/bin/chromium exists. Playwright drives this system
# browser; `playwright install` (a browser download) is never used.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
else
  SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
