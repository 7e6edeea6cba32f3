#!/usr/bin/env bash
# Floods a gateway with small caps (tests/load/flood.toml: 100 connections, 64
# requests in flight) at 10x what they admit, and reports how fast the excess is shed
# and what the gateway's memory does. Not part of tests/run: its figures go to
# docs/reliability.md with the command that made them.
#   tests/load/flood.sh [SECONDS] [PROFILE]   (PROFILE: release (default), production or dev)
# Prints, for each phase: the statuses, the latency percentiles oha saw, and the
# gateway's resident memory before, at its peak and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
profile=${2:-release}
dir=$profile
[ "$profile" = dev ] && dir=debug
bin=target/$dir
command -v oha >/dev/null || cargo install oha --locked
cargo build --profile "$profile" -p signalbox >/dev/null

key=sb-demo-0123456789abcdef
body='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
url=http://127.0.0.1:9013
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
env -u RUST_BACKTRACE $bin/signalbox serve --config tests/load/flood.toml >/dev/null 2>&1 &
gateway=$!
pids+=($gateway)
for _ in $(seq 50); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/^VmRSS/ {print $2}' "/proc/$gateway/status"; }
# Samples the gateway's RSS every 50 ms into $1 until killed.
sample() { while true; do rss >>"$1"; sleep 0.05; done; }
summary() { # oha JSON on stdin
    python3 -c '
import json, sys
r = json.load(sys.stdin)
codes = ",".join("%s:%s" % kv for kv in sorted(r["statusCodeDistribution"].items()))
# oha counts the requests still running when the time is up as errors.
errors = {k: v for k, v in r.get("errorDistribution", {}).items() if k != "aborted due to deadline"}
p = r["latencyPercentiles"]
ms = lambda s: "-" if s is None else "%.2f" % (s * 1000)
rps = round(r["summary"]["requestsPerSec"])
print("statuses %s errors %s p50 %s ms p99 %s ms req/s %d" % (codes, errors, ms(p["p50"]), ms(p["p99"]), rps))'
}
phase() { # name, then the oha arguments
    local name=$1
    shift
    local samples
    samples=$(mktemp)
    local before
    before=$(rss)
    sample "$samples" &
    local sampler=$!
    local result
    result=$(oha --no-tui --output-format json -z "${secs}s" "$@" | summary)
    kill $sampler
    sleep 1
    echo "$name: $result rss_kib before $before peak $(sort -n "$samples" | tail -1) after $(rss)"
    rm -f "$samples"
}

# 1. Connections: the 100 slots held by idle clients, then 1,000 clients connecting
#    anew for every request: each gets the bare 503 at once.
python3 -c '
import socket, sys, time
held = [socket.create_connection(("127.0.0.1", 9013)) for _ in range(100)]
time.sleep(2 * float(sys.argv[1]) + 8)
' "$secs" &
holders=$!
pids+=($holders)
sleep 1
phase "connection flood (100 held, 1000 more)" -c 1000 --disable-keepalive "$url/healthz"
# The same with 100 clients: the time to be shed without a storm of 1,000 connects
# overflowing the kernel's accept queue (whose retransmitted SYNs, 1 s, set the p99
# above whatever the gateway does).
phase "connection flood (100 held, 100 more)" -c 100 --disable-keepalive "$url/healthz"
kill $holders
wait $holders 2>/dev/null || true
sleep 1

# 2. Requests: 640 requests at once against 64 in-flight slots (HTTP/2, 10 connections
#    of 64 streams, so the connection cap is not what refuses them), each request
#    held ~200 ms by the simulated model: about nine in ten are shed with 503.
phase "request flood (640 streams, 64 slots)" --http2 -c 10 -p 64 -m POST \
    -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
    "$url/v1/chat/completions"

# 3. The same 64 slots at their own concurrency, for comparison: nothing shed.
phase "at capacity (64 streams)" --http2 -c 1 -p 64 -m POST \
    -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
    "$url/v1/chat/completions"
