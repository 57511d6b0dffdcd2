#!/usr/bin/env bash
# Measures what a new user waits for: a fresh clone's `make serve` until /healthz answers, and
# the size of the virtualenv it made. Usage: scripts/measure-serve.sh [REPO] [COMMIT]
# (default: this checkout, HEAD). pip may answer from its cache and local find-links: say so
# when quoting the figures.
set -eu
repo="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
commit="${2:-HEAD}"
work=$(mktemp -d)
server=""
trap '[ -z "$server" ] || kill -- -"$server" 2>/dev/null; rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$commit"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$work/clone"
start=$(date +%s%N)
OPSGATE_PORT=$port setsid make serve >"$work/serve.log" 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do
  if ! kill -0 "$server" 2>/dev/null; then
    cat "$work/serve.log" >&2
    echo "make serve exited before the gateway was healthy" >&2
    exit 1
  fi
  if [ $(( $(date +%s%N) - start )) -gt 1800000000000 ]; then
    echo "no health after 30 min" >&2
    exit 1
  fi
  sleep 0.5
done
end=$(date +%s%N)
kill -- -"$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
printf 'commit %s: make serve to /healthz %s.%s s; .venv %s MB (%s packages)\n' \
  "$(git rev-parse --short HEAD)" $(( (end - start) / 1000000000 )) \
  $(( (end - start) / 100000000 % 10 )) \
  "$(du -sm .venv | cut -f1)" "$(.venv/bin/pip list 2>/dev/null | tail -n +3 | wc -l)"
