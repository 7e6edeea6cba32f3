#!/usr/bin/env bash
# Starts the gateway on its embedded default and drives it with the official `openai`
# Python client (installed into a virtual environment under target/). Called by
# tests/run after the Rust tests, so the debug binary already exists.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/py-openai
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check openai

log=$(mktemp)
target/debug/signalbox serve --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
    grep -q "listening on" "$log" && break
    sleep 0.1
done
base=$(sed -n 's/^signalbox listening on //p' "$log")
[ -n "$base" ] || { cat "$log"; echo "the gateway did not start"; exit 1; }

"$venv/bin/python" tests/clients/openai_sdk.py "$base" sb-demo-0123456789abcdef

kill -TERM "$pid"
wait "$pid"
trap - EXIT
rm -f "$log"
