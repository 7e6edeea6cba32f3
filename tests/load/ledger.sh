#!/usr/bin/env bash
# Usage-ledger benchmark (docs/benchmarks.md records its output): the gateway at
# 2,000 requests/s (32 connections) for SECONDS, once with the ledger off and once
# with it on. Checks that the ledger holds exactly one row per request the gateway
# answered (its own requests counter, scraped from /metrics) and prints both p99s.
#   tests/load/ledger.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
command -v oha >/dev/null || cargo install oha --locked
cargo build --release -p signalbox -p signalbox-load >/dev/null

key=sb-demo-0123456789abcdef
token=sb-load-admin-token
body='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

taskset -c 1 target/release/fake-llm --listen 127.0.0.1:9001 --chunks 8 >/dev/null &
pids+=($!)

run() { # on|off -> "p99_us answered rows"
    local config=$work/gateway-$1.toml
    sed -e "s|@LEDGER@|$([ "$1" = on ] && echo true || echo false)|" \
        -e "s|@DB@|$work/usage-$1.db|" tests/load/ledger.toml >"$config"
    env -u RUST_BACKTRACE taskset -c 0 target/release/signalbox serve --config "$config" >/dev/null &
    local gateway=$!
    pids+=($gateway)
    sleep 1
    local p99
    read -r _ _ p99 _ < <(taskset -c 1 oha --no-tui --output-format json -z "${secs}s" -c 32 -q 2000 \
        -m POST -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
        http://127.0.0.1:9003/v1/chat/completions | python3 tests/load/summary.py)
    sleep 1
    local answered
    answered=$(curl -s -H "authorization: Bearer $token" http://127.0.0.1:9004/metrics |
        awk '/^signalbox_requests_total/ {n += $2} END {print n + 0}')
    kill -TERM "$gateway"; wait "$gateway" 2>/dev/null || true
    local rows=-
    if [ "$1" = on ]; then
        rows=$(target/release/signalbox usage --config "$config" --json |
            python3 -c 'import json,sys; print(sum(g["requests"] for g in json.load(sys.stdin)))')
    fi
    echo "$p99 $answered $rows"
}

read -r p99_off answered_off _ < <(run off)
read -r p99_on answered_on rows < <(run on)
echo "| ledger | req/s offered | p99 µs | answered | ledger rows |"
echo "|---|---|---|---|---|"
echo "| off | 2000 | $p99_off | $answered_off | - |"
echo "| on | 2000 | $p99_on | $answered_on | $rows |"
if [ "$rows" != "$answered_on" ]; then
    echo "LOST ROWS: $answered_on answered, $rows in the ledger" >&2
    exit 1
fi
