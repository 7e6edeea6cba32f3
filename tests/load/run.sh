#!/usr/bin/env bash
# Load benchmark of the gateway (docs/benchmarks.md records its output).
#
# On loopback: the fake upstream (fake-llm) and the load generator (oha) share core 1;
# the system under test gets core 0 alone. Each point runs 15 s. Measured, in one run:
# the upstream called directly, the minimal hyper pass-through proxy (the floor), and
# the gateway with the default policy; non-streaming and streaming.
#   tests/load/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
command -v oha >/dev/null || cargo install oha --locked
cargo build --profile production -p signalbox -p signalbox-load >/dev/null

key=sb-demo-0123456789abcdef
body='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
sbody='{"model":"m","stream":true,"messages":[{"role":"user","content":"Hello, how are you today?"}]}'
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

taskset -c 1 target/production/fake-llm --listen 127.0.0.1:9001 --chunks 8 >/dev/null &
pids+=($!)
taskset -c 0 target/production/passthrough-proxy --listen 127.0.0.1:9002 --upstream 127.0.0.1:9001 >/dev/null &
pids+=($!)
env -u RUST_BACKTRACE taskset -c 0 target/production/signalbox serve --config tests/load/config.toml >/dev/null &
gateway=$!
pids+=($gateway)
sleep 1

# One load point; prints "req/s p50_us p99_us statuses" (oha counts the requests
# still in flight when the time is up as errors).
point() { # url body concurrency [extra oha args]
    local url=$1 data=$2 c=$3; shift 3
    taskset -c 1 oha --no-tui --output-format json -z "${secs}s" -c "$c" "$@" -m POST \
        -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$data" "$url" |
        python3 tests/load/summary.py
}

url_direct=http://127.0.0.1:9001/v1/chat/completions
url_proxy=http://127.0.0.1:9002/v1/chat/completions
url_gateway=http://127.0.0.1:9003/v1/chat/completions
# How long an idle virtual CPU polls before it halts: on a VM, the cost of every
# cross-core wake-up (and so of every hop) depends on it. Printed with the results.
poll=/sys/module/haltpoll/parameters/guest_halt_poll_ns
[ -r $poll ] && echo "guest halt polling: $(cat $poll) ns"
echo "| mode | target | concurrency | rate | req/s | p50 µs | p99 µs | statuses |"
echo "|---|---|---|---|---|---|---|---|"
for mode in json stream; do
    data=$body; [ $mode = stream ] && data=$sbody
    for name in direct proxy gateway; do
        url_var=url_$name
        url=${!url_var}
        read -r rps p50 p99 codes < <(point "$url" "$data" 1)
        echo "| $mode | $name | 1 | max | $rps | $p50 | $p99 | $codes |"
    done
    for name in direct proxy gateway; do
        url_var=url_$name
        url=${!url_var}
        read -r rps p50 p99 codes < <(point "$url" "$data" 32 -q 2000)
        echo "| $mode | $name | 32 | 2000/s | $rps | $p50 | $p99 | $codes |"
    done
    for name in proxy gateway; do
        url_var=url_$name
        url=${!url_var}
        read -r rps p50 p99 codes < <(point "$url" "$data" 32)
        echo "| $mode | $name | 32 | max | $rps | $p50 | $p99 | $codes |"
    done
done

# Resident memory with 1,000 concurrent streams held open by a slow upstream. The
# gateway restarts, so its policy comes from the compiled cache the first start wrote.
kill "$gateway"; wait "$gateway" 2>/dev/null || true
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
taskset -c 1 target/production/fake-llm --listen 127.0.0.1:9001 --chunks 100 --interval-ms 100 >/dev/null &
pids+=($!)
env -u RUST_BACKTRACE taskset -c 0 target/production/signalbox serve --config tests/load/config.toml >/dev/null &
gateway=$!
pids+=($gateway)
sleep 1
idle=$(awk '/VmRSS/ {print $2}' /proc/$gateway/status)
taskset -c 1 oha --no-tui -z "${secs}s" -c 1000 -m POST -H "authorization: Bearer $key" \
    -H 'content-type: application/json' -d "$sbody" "$url_gateway" >/dev/null &
load=$!
sleep $((secs - 3))
busy=$(awk '/VmRSS/ {print $2}' /proc/$gateway/status)
split=$(awk '/RssAnon|RssFile/ {printf "%s %d MiB, ", $1, $2 / 1024}' /proc/$gateway/status)
wait $load || true
peak=$(awk '/VmHWM/ {print $2}' /proc/$gateway/status)
echo
echo "gateway RSS: idle $((idle / 1024)) MiB, with 1000 concurrent streams $((busy / 1024)) MiB (${split%, }), peak $((peak / 1024)) MiB"
