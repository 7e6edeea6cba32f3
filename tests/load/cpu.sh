#!/usr/bin/env bash
# CPU time per request at saturation (concurrency 32, JSON): the floor proxy and the
# gateway, each on core 0 alone, the fake upstream and oha on core 1, as in run.sh.
# Prints "name requests req/s user_us_per_request sys_us_per_request".
#   tests/load/cpu.sh [SECONDS] [PROFILE]     (PROFILE: production (default) or release)
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-6}
profile=${2:-production}
bin=target/$profile
command -v oha >/dev/null || cargo install oha --locked
cargo build --profile "$profile" -p signalbox -p signalbox-load >/dev/null

key=sb-demo-0123456789abcdef
body='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
taskset -c 1 $bin/fake-llm --listen 127.0.0.1:9001 --chunks 8 >/dev/null &
pids+=($!)
taskset -c 0 $bin/passthrough-proxy --listen 127.0.0.1:9002 --upstream 127.0.0.1:9001 >/dev/null &
proxy=$!
pids+=($proxy)
env -u RUST_BACKTRACE taskset -c 0 $bin/signalbox serve --config tests/load/config.toml >/dev/null 2>&1 &
gateway=$!
pids+=($gateway)
sleep 1.5

load() { # port seconds
    taskset -c 1 oha --no-tui --output-format json -z "$2s" -c 32 -m POST \
        -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
        "http://127.0.0.1:$1/v1/chat/completions"
}
# utime and stime of a process, in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }

tick=$(getconf CLK_TCK)
for name in proxy gateway; do
    pid=$proxy port=9002
    [ $name = gateway ] && pid=$gateway port=9003
    load $port 1 >/dev/null # warm the pools
    read -r u0 s0 < <(cpu $pid)
    n=$(load $port "$secs" | python3 -c 'import json, sys; print(sum(json.load(sys.stdin)["statusCodeDistribution"].values()))')
    read -r u1 s1 < <(cpu $pid)
    python3 -c "n, t = $n, $tick; print('$name', n, round(n / $secs), '%.1f %.1f' % (($u1 - $u0) / t * 1e6 / n, ($s1 - $s0) / t * 1e6 / n))"
done
