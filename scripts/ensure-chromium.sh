#!/usr/bin/env bash
# Installs Debian's `chromium` for the dashboard's browser tests (Playwright drives it through
# `executable_path`; no browser is downloaded). Best effort: without apt or root it says so and
# the browser tests skip (under CI=true a missing browser fails them instead).
set -u
for name in chromium chromium-browser; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: no apt-get here; the dashboard browser tests will skip" >&2
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium: not root; run 'sudo apt-get install chromium' for the browser tests" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q chromium >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -q chromium >/dev/null 2>&1 || {
    echo "chromium: apt-get install failed; the dashboard browser tests will skip" >&2
    exit 0
  }
fi
echo "chromium: installed $(command -v chromium)"
