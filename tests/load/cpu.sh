#!/usr/bin/env bash
# CPU time per request at saturation (concurrency 32): the floor proxy and the gateway,
# each on core 0 alone, the fake upstream and oha on core 1, as in run.sh. The
# workloads: a JSON answer, and streams of 20 and of 200 content chunks (the per-chunk
# cost of the stream relay is the difference between the two, over 180 chunks); then
# Anthropic's Messages API, JSON and a stream of 20, passed through, and a Messages
# request translated to the chat upstream. WORKLOADS="json stream20" picks some (a
# build from before /v1/messages existed takes only the chat ones).
# Prints "workload name requests req/s user_us_per_request sys_us_per_request".
#   tests/load/cpu.sh [SECONDS] [PROFILE]     (PROFILE: production (default) or release)
# GATEWAY=path/to/signalbox measures another build of the gateway (before/after runs);
# the floor proxy and the fake upstream are always this checkout's.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-6}
profile=${2:-production}
bin=target/$profile
gateway_bin=${GATEWAY:-$bin/signalbox}
command -v oha >/dev/null || cargo install oha --locked
cargo build --profile "$profile" -p signalbox -p signalbox-load >/dev/null

key=sb-demo-0123456789abcdef
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
taskset -c 0 $bin/passthrough-proxy --listen 127.0.0.1:9002 --upstream 127.0.0.1:9001 >/dev/null &
proxy=$!
pids+=($proxy)
env -u RUST_BACKTRACE taskset -c 0 "$gateway_bin" serve --config tests/load/config.toml >/dev/null 2>&1 &
gateway=$!
pids+=($gateway)

# Waits until something answers on a loopback port.
ready() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
load() { # port seconds body [path]
    taskset -c 1 oha --no-tui --output-format json -z "$2s" -c 32 -m POST \
        -H "authorization: Bearer $key" -H 'content-type: application/json' \
        -H 'anthropic-version: 2023-06-01' -d "$3" \
        "http://127.0.0.1:$1${4:-/v1/chat/completions}"
}
# utime and stime of a process, in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }

tick=$(getconf CLK_TCK)
json='{"model":"m","messages":[{"role":"user","content":"Hello, how are you today?"}]}'
stream='{"model":"m","stream":true,"messages":[{"role":"user","content":"Hello, how are you today?"}]}'
messages='{"model":"claude","max_tokens":64,"messages":[{"role":"user","content":"Hello, how are you today?"}]}'
messages_stream='{"model":"claude","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello, how are you today?"}]}'
for workload in ${WORKLOADS:-json stream20 stream200 messages messages-stream20 messages-to-chat}; do
    body=$json chunks=8 path=/v1/chat/completions
    case $workload in
        stream20) body=$stream chunks=20 ;;
        stream200) body=$stream chunks=200 ;;
        # Anthropic's Messages API passed through to an Anthropic upstream.
        messages) body=$messages path=/v1/messages ;;
        messages-stream20) body=$messages_stream chunks=20 path=/v1/messages ;;
        # A Messages request served by a chat upstream: translated both ways.
        messages-to-chat) body=${messages/claude/m} path=/v1/messages ;;
    esac
    taskset -c 1 $bin/fake-llm --listen 127.0.0.1:9001 --chunks $chunks >/dev/null &
    upstream=$!
    pids+=($upstream)
    ready 9001
    ready 9002
    ready 9003
    for name in proxy gateway; do
        pid=$proxy port=9002
        [ $name = gateway ] && pid=$gateway port=9003
        # The floor proxy forwards bytes: a translated request has no floor of its own.
        [ $name = proxy ] && [ $workload = messages-to-chat ] && continue
        load $port 1 "$body" $path >/dev/null # warm the pools
        read -r u0 s0 < <(cpu $pid)
        n=$(load $port "$secs" "$body" $path | python3 -c '
import json, sys
codes = json.load(sys.stdin)["statusCodeDistribution"]
if set(codes) - {"200"}:
    print("non-200 answers:", codes, file=sys.stderr)
print(codes.get("200", 0))')
        read -r u1 s1 < <(cpu $pid)
        python3 -c "n, t = $n, $tick; print('$workload $name', n, round(n / $secs), '%.1f %.1f' % (($u1 - $u0) / t * 1e6 / n, ($s1 - $s0) / t * 1e6 / n))"
    done
    kill $upstream
    wait $upstream 2>/dev/null || true
done
