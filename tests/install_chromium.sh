#!/bin/sh
# Install Debian's Chromium for the browser tests (tests/test_browser.py) when it is missing.
# Called by `make test` (the `browser` target) and, when pytest runs without make, by the tests
# themselves (tests/browser.py). Needs root and apt; exits non-zero, saying why, when it cannot.
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: no apt-get here; install Chromium with your system's package manager" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_chromium.sh: not root; run 'sudo apt-get install chromium' once" >&2
    exit 1
fi
echo "install_chromium.sh: installing Debian's chromium (about 120 MB) for the browser tests" >&2
apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
