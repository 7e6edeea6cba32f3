#!/usr/bin/env bash
# What sharing limits through Redis costs (README, "Running a fleet"): the gateway with
# a tenant's requests- and tokens-per-minute limits and a daily budget (all far above
# the load) kept in process, then the same limits kept in a local redis-server
# ([cluster]). The gateway on core 0 alone; the fake upstream, Redis and oha on core 1;
# JSON answers. Prints per run: requests and req/s at concurrency 32 and the gateway's
# user and system CPU µs per request then; the latency p50 and p99 in µs of one client
# alone (concurrency 1, so no queueing hides the round trip to Redis); and the
# admission scripts Redis ran (0 in process, at least one per request with Redis).
#   tests/load/fleet.sh [SECONDS] [PROFILE]     (PROFILE: production (default) or release)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-6}
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
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)
json='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'

taskset -c 1 $bin/fake-llm --listen 127.0.0.1:9001 --chunks 8 >/dev/null &
pids+=($!)
taskset -c 1 redis-server --port 9379 --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" >/dev/null &
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
# Two rounds, alternating, so the machine's drift shows.
for round in 1 2; do
    for mode in local redis; do
        config=$dir/$mode.toml
        { sed 's#^cache_dir = .*#cache_dir = "'"$PWD"'/target/load/compiled"#' tests/load/config.toml
          echo "$limits"
          [ $mode = redis ] && echo "$cluster"
        } > "$config"
        env -u RUST_BACKTRACE taskset -c 0 $bin/signalbox serve --config "$config" >/dev/null 2>&1 &
        gateway=$!
        ready 9003
        load() {
            taskset -c 1 oha --no-tui --output-format json -z "$1s" -c "${2:-32}" -m POST \
                -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$json" \
                http://127.0.0.1:9003/v1/chat/completions
        }
        load 1 >/dev/null # warm the pools
        redis-cli -p 9379 config resetstat >/dev/null
        read -r u0 s0 < <(cpu $gateway)
        load "$secs" > "$dir/oha.json"
        read -r u1 s1 < <(cpu $gateway)
        load "$secs" 1 > "$dir/oha1.json"
        scripts=$(redis-cli -p 9379 info commandstats | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\).*/\1/p')
        python3 - "$dir/oha.json" "$dir/oha1.json" "${scripts:-0}" <<PY
import json, sys
r = json.load(open(sys.argv[1]))
codes = r["statusCodeDistribution"]
if set(codes) - {"200"}:
    print("non-200 answers:", codes, file=sys.stderr)
n = codes.get("200", 0)
p = json.load(open(sys.argv[2]))["latencyPercentiles"]
t = $tick
print("round $round $mode", n, round(n / $secs),
      "%.1f %.1f" % (($u1 - $u0) / t * 1e6 / n, ($s1 - $s0) / t * 1e6 / n),
      "%.0f %.0f" % (p["p50"] * 1e6, p["p99"] * 1e6), sys.argv[3])
PY
        kill $gateway
        wait $gateway 2>/dev/null || true
    done
done
