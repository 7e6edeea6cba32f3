#!/usr/bin/env bash
# One gateway against two replicas sharing their limits through Redis, on the same
# machine (README, "Running a fleet"; docs/benchmarks.md). Three setups, each loaded by
# two oha clients of 16 connections for SECONDS, JSON answers from the fast fake
# upstream, a tenant with requests- and tokens-per-minute limits and a daily budget far
# above the load:
#   one       one gateway, limits in process, both clients on it;
#   one+redis the same gateway with [cluster] (limits in Redis);
#   two       two replicas with [cluster], one client each, each replica pinned to
#             its own core (the fake upstream, Redis and the clients float).
# Prints per setup: requests answered 200, req/s, and the p50 and p99 in µs.
#   tests/load/fleet_scale.sh [SECONDS] [PROFILE]   (PROFILE: production (default) or release)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
profile=${2:-production}
bin=target/$profile
command -v oha >/dev/null || cargo install oha --locked
command -v redis-server >/dev/null || { echo "needs redis-server" >&2; exit 1; }
cargo build --profile "$profile" -p signalbox -p signalbox-load >/dev/null

key=sb-demo-0123456789abcdef
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
ready() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
json='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'

$bin/fake-llm --listen 127.0.0.1:9001 --chunks 8 >/dev/null &
pids+=($!)
redis-server --port 9379 --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null &
pids+=($!)
ready 9001
ready 9379

limits='
[tenants.limits]
requests_per_minute = 100000000
tokens_per_minute = 4000000000
budget_usd_per_day = 1000000.0
'
cluster='
[cluster]
redis_url = "redis://127.0.0.1:9379"
timeout_ms = 50
'
# A config listening on port $1, with [cluster] when $2 is "redis".
config() {
    { sed -e 's#^cache_dir = .*#cache_dir = "'"$PWD"'/target/load/compiled"#' \
          -e 's#^listen = .*#listen = "127.0.0.1:'"$1"'"#' tests/load/config.toml
      echo "$limits"
      [ "$2" = redis ] && echo "$cluster"
    } > "$dir/$1.toml"
    echo "$dir/$1.toml"
}
# Starts a gateway from config $1 (pinned to core $2 when given); prints its pid.
start() {
    if [ -n "${2:-}" ]; then
        env -u RUST_BACKTRACE taskset -c "$2" $bin/signalbox serve --config "$1" >/dev/null 2>&1 &
    else
        env -u RUST_BACKTRACE $bin/signalbox serve --config "$1" >/dev/null 2>&1 &
    fi
    echo $!
}
# Two clients at once, against ports $1 and $2, for $3 seconds; their reports go to
# $dir/a.json and $dir/b.json.
load() {
    local clients=()
    for side in a:"$1" b:"$2"; do
        oha --no-tui --output-format json -z "$3s" -c 16 -m POST \
            -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$json" \
            "http://127.0.0.1:${side#*:}/v1/chat/completions" > "$dir/${side%%:*}.json" &
        clients+=($!)
    done
    wait "${clients[@]}"
}
report() {
    python3 - "$dir/a.json" "$dir/b.json" <<PY
import json, sys
rs = [json.load(open(f)) for f in sys.argv[1:]]
n = sum(r["statusCodeDistribution"].get("200", 0) for r in rs)
other = [c for r in rs for c in r["statusCodeDistribution"] if c != "200"]
if other:
    print("non-200 answers:", other, file=sys.stderr)
p50 = max(r["latencyPercentiles"]["p50"] for r in rs)
p99 = max(r["latencyPercentiles"]["p99"] for r in rs)
print("$1", n, round(n / $secs), "%.0f %.0f" % (p50 * 1e6, p99 * 1e6))
PY
}
# Stops gateways by pid and waits until they are gone (they are not this shell's
# children: `start` ran in a subshell).
stop() {
    for p in "$@"; do
        kill "$p"
        while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    done
}

# Two rounds, so the machine's drift shows.
for round in 1 2; do
    g=$(start "$(config 9003 local)")
    ready 9003
    load 9003 9003 1 >/dev/null
    load 9003 9003 "$secs"
    report "round $round one"
    stop "$g"

    g=$(start "$(config 9003 redis)")
    ready 9003
    load 9003 9003 1 >/dev/null
    load 9003 9003 "$secs"
    report "round $round one+redis"
    stop "$g"

    a=$(start "$(config 9003 redis)" 0)
    b=$(start "$(config 9004 redis)" 1)
    ready 9003
    ready 9004
    load 9003 9004 1 >/dev/null
    load 9003 9004 "$secs"
    report "round $round two"
    stop "$a" "$b"
done
