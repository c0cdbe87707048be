#!/usr/bin/env bash
# The browser tests (tests/e2e/test_web.py) drive Debian's chromium with Playwright; install it
# from the distribution if it is missing. Playwright's own browser downloads are never used.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then exit 0; fi

echo "installing Debian's chromium for the browser tests" >&2
if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "/usr/bin/chromium is missing and this user cannot install it: apt-get install chromium" >&2
    exit 1
fi
test -x /usr/bin/chromium
