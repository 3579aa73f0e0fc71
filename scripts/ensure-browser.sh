#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/browser).
# Idempotent: exits 0 at once when /usr/bin/chromium exists. As root it installs the
# `chromium` package with apt-get; otherwise it says what to run and exits 1.
# (`playwright install` is not used: the tests drive the system Chromium.)
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-browser: $CHROMIUM is missing; the browser tests need Debian's Chromium." >&2
    echo "ensure-browser: install it with:  sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 1
fi

echo "ensure-browser: installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium

if [ ! -x "$CHROMIUM" ]; then
    echo "ensure-browser: apt-get finished but $CHROMIUM is still missing" >&2
    exit 1
fi
