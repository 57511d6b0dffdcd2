#!/usr/bin/env bash
# Puts Debian's promtool (package `prometheus`) into .venv/bin so the alert rules can be checked.
# Only the one binary is unpacked: the Prometheus server is not installed or started.
# Best effort: without apt (a user's non-Debian machine) it says so and the test skips.
set -u
dest="${1:-.venv/bin}"
command -v promtool >/dev/null 2>&1 && exit 0
[ -x "$dest/promtool" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "promtool: no apt-get here; the promtool test will skip" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 0
if ! apt-get download prometheus >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get download prometheus >/dev/null 2>&1 || { echo "promtool: download failed" >&2; exit 0; }
fi
dpkg-deb -x prometheus_*.deb root && cd - >/dev/null && cp "$tmp/root/usr/bin/promtool" "$dest/promtool"
echo "promtool: installed into $dest"
