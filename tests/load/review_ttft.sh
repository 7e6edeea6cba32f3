#!/usr/bin/env bash
# What holding a stream for the policy's review costs the client in time to first
# byte (docs/benchmarks.md, "Reviewing answers"): `policies/cascade` over two simulated
# targets (first token after 50 ms, then 200 tokens/s; 64-token answers), one tenant per
# `review_streams` mode, REQUESTS streamed requests each, one at a time. Prints the
# median and p90 of curl's time to first byte per mode, in ms.
#   tests/load/review_ttft.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-40}
cargo build --release -p signalbox >/dev/null
cargo build-policies >/dev/null
work=$(mktemp -d)
gateway=
trap '[ -n "$gateway" ] && kill "$gateway" 2>/dev/null; rm -rf "$work"' EXIT

hash() { printf 'sha256:%s' "$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)"; }
{
    printf '[server]\nlisten = "127.0.0.1:0"\n\n'
    printf '[[providers]]\nname = "sim"\nkind = "simulated"\n[providers.simulated]\nlatency_ms = 50\ntokens_per_second = 200\n\n'
    printf '[[targets]]\nid = "small"\nprovider = "sim"\nmodel = "m"\ninput_price = 0.1\noutput_price = 0.2\n\n'
    printf '[[targets]]\nid = "large"\nprovider = "sim"\nmodel = "m"\ninput_price = 5.0\noutput_price = 15.0\n\n'
    for mode in off hold early; do
        case $mode in
            off) setting='"off"' ;;
            hold) setting='"hold"' ;;
            early) setting='{ first_tokens = 8 }' ;;
        esac
        printf '[[tenants]]\nid = "%s"\nkey_hashes = ["%s"]\nsafe_route = ["small"]\nreview_streams = %s\n' \
            "$mode" "$(hash "sb-ttft-$mode")" "$setting"
        printf 'policy = "%s"\n[tenants.policy_config]\nladder = ["small", "large"]\n\n' \
            "$PWD/target/policies/wasm32-wasip2/policy/signalbox_policy_cascade.wasm"
    done
} >"$work/gateway.toml"

target/release/signalbox serve --config "$work/gateway.toml" >"$work/out" 2>"$work/log" &
gateway=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" && break; sleep 0.1; done
base=$(sed -n 's/^signalbox listening on //p' "$work/out")
body='{"model":"m","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"Tell me about rivers."}]}'

for mode in off hold early; do
    for _ in $(seq "$n"); do
        curl -sS -o /dev/null -w '%{time_starttransfer}\n' "$base/v1/chat/completions" \
            -H "authorization: Bearer sb-ttft-$mode" -H 'content-type: application/json' -d "$body"
    done | sort -n | awk -v mode="$mode" '{ t[NR] = $1 * 1000 }
        END { printf "%-6s time to first byte: median %6.1f ms   p90 %6.1f ms   (%d requests)\n",
              mode, t[int((NR + 1) / 2)], t[int(NR * 0.9)], NR }'
done
