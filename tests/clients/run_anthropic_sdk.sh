#!/usr/bin/env bash
# Drives the gateway's `POST /v1/messages` with the official `anthropic` Python client
# (installed into a virtual environment under target/). Two fake providers
# (tests/clients/fake_providers.py) stand behind it: target `claude` on an Anthropic
# upstream (the request passes through) and target `gpt` on an OpenAI chat upstream
# (translated both ways). Needs the debug binary: run after the Rust tests.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/py-anthropic
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check anthropic
python=$venv/bin/python

key=sb-anthropic-sdk-test-key
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
work=$(mktemp -d)
fake_pid=
gateway_pid=
step="starting the fake providers"
finish() {
    local status=$?
    if [ -n "$gateway_pid" ]; then kill "$gateway_pid" 2>/dev/null || true; fi
    if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
    if [ "$status" -ne 0 ]; then
        echo "anthropic SDK stage failed while $step"
        echo "--- gateway log"
        cat "$work/gateway.log" 2>/dev/null || true
        if [ -s "$work/fake.log" ]; then
            echo "--- fake providers log"
            cat "$work/fake.log"
        fi
    fi
    rm -rf "$work"
}
trap finish EXIT

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" tests/clients/fake_providers.py "$port" >"$work/fake.log" 2>&1 &
fake_pid=$!
healthy() {
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
        "http://127.0.0.1:$port/health" 2>/dev/null
}
deadline=$((SECONDS + 10))
until healthy; do
    kill -0 "$fake_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ] || exit 1
    sleep 0.1
done

step="starting the gateway"
cat >"$work/signalbox.toml" <<EOF
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "fake-anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:$port/anthropic/v1"
api_key_env = "FAKE_PROVIDER_KEY"

[[providers]]
name = "fake-openai"
kind = "openai"
base_url = "http://127.0.0.1:$port/openai/v1"
api_key_env = "FAKE_PROVIDER_KEY"

[[targets]]
id = "claude"
provider = "fake-anthropic"
model = "claude"
input_price = 3.0
output_price = 15.0
context_window = 200000

[[targets]]
id = "gpt"
provider = "fake-openai"
model = "gpt"
input_price = 2.5
output_price = 10.0
context_window = 128000

[[tenants]]
id = "sdk"
key_hashes = ["sha256:$hash"]
policy = "embedded:default"
safe_route = ["claude"]
EOF
FAKE_PROVIDER_KEY=provider-secret target/debug/signalbox serve --config "$work/signalbox.toml" \
    --listen 127.0.0.1:0 >"$work/gateway.log" 2>&1 &
gateway_pid=$!
deadline=$((SECONDS + 10))
until grep -q "^signalbox listening on " "$work/gateway.log"; do
    kill -0 "$gateway_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ] || exit 1
    sleep 0.1
done
base=$(sed -n 's/^signalbox listening on //p' "$work/gateway.log")
[ -n "$base" ] || exit 1

step="running tests/clients/anthropic_sdk.py against $base"
"$python" tests/clients/anthropic_sdk.py "$base" "$key" claude gpt

step="stopping the gateway"
kill -TERM "$gateway_pid"
wait "$gateway_pid"
gateway_pid=
