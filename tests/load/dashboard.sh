#!/usr/bin/env bash
# Dashboard benchmark (docs/benchmarks.md records its output): a gateway whose usage
# ledger holds ROWS rows (default 100,000, over 30 days, 20 keys, 3 models) and whose
# decision log holds 10,000 lines; each dashboard page and JSON endpoint is fetched
# 20 times with curl by a signed-in session, and the median and slowest times are
# printed. Criterion: every one under 200 ms. PROFILE=debug measures the debug build
# (slower: an upper bound for the release build, without building it).
#   [PROFILE=release|debug] tests/load/dashboard.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-100000}
profile=${PROFILE:-release}
if [ "$profile" = release ]; then
    cargo build --release -p signalbox 2>/dev/null
else
    cargo build -p signalbox 2>/dev/null
fi

token=sb-load-admin-token
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

config=$work/gateway.toml
sed -e "s|@LEDGER@|true|" -e "s|@DB@|$work/usage.db|" tests/load/ledger.toml >"$config"
printf '\n[decision_log]\npath = "%s"\n' "$work/decisions.jsonl" >>"$config"
env -u RUST_BACKTRACE "target/$profile/signalbox" serve --config "$config" >/dev/null &
pids+=($!)
until curl -sf http://127.0.0.1:9004/healthz >/dev/null; do sleep 0.1; done

# The gateway made the ledger's table at start-up; fill it as served requests would.
python3 - "$work" "$rows" <<'PY'
import json, random, sqlite3, sys, time
work, rows = sys.argv[1], int(sys.argv[2])
random.seed(7)
now = int(time.time() * 1000)
db = sqlite3.connect(f"{work}/usage.db", timeout=10)
models = [("fake-m", "m", 0.15, 0.60), ("fake-l", "l", 2.5, 10.0), ("fake-s", "s", 0.05, 0.2)]
def row(i):
    target, model, pin, pout = random.choice(models)
    tin, tout = random.randint(10, 4000), random.randint(10, 800)
    return (now - random.randint(0, 30 * 86400_000), "load", f"key-{i % 20}", target, model,
            tin, tout, (tin * pin + tout * pout) / 1e6, random.randint(50, 3000), 200,
            "default@0123456789ab", 0, f"req-{i:016x}")
db.executemany("INSERT INTO usage (ts_ms, tenant, key_id, target, model, input_tokens, output_tokens,"
               " cost_usd, latency_ms, status, policy, fallback_depth, request_id)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (row(i) for i in range(rows)))
db.commit()
with open(f"{work}/decisions.jsonl", "a") as log:
    for i in range(10000):
        log.write(json.dumps({
            "ts_ms": now - (10000 - i) * 1000, "request_id": f"req-{i:016x}", "tenant": "load",
            "request": {"model": "m", "input_tokens": 12, "max_output_tokens": None, "stream": False,
                        "has_tools": False, "message_count": 1, "message_chars": 40, "metadata": []},
            "snapshot": [{"target": "fake-m", "healthy": True}],
            "decision": {"policy": "default@0123456789ab", "targets": ["fake-m"],
                         "reason": "cheapest available serving the model"},
            "outcome": {"ending": "completed", "status": 200, "target": "fake-m", "fallback_depth": 0,
                        "latency_ms": 120, "ttft_ms": None, "input_tokens": 12, "output_tokens": 30,
                        "cost_usd": 0.00002}}) + "\n")
PY

jar=$work/cookies
curl -s -o /dev/null -c "$jar" --data-urlencode "token=$token" http://127.0.0.1:9004/dashboard/sign-in
echo "| path | median ms | slowest ms |"
echo "|---|---|---|"
slow=0
for path in /dashboard /dashboard/policies /dashboard/usage /dashboard/decisions /dashboard/replay \
    /dashboard/api/overview /dashboard/api/tenants /dashboard/api/tenants/load/policies \
    /dashboard/api/tenants/load/decisions "/dashboard/api/tenants/load/decisions/req-0000000000002706" \
    "/dashboard/api/usage?group_by=day" "/dashboard/api/usage?group_by=key" \
    "/dashboard/api/usage?group_by=model" "/dashboard/api/usage?group_by=target"; do
    times=()
    for _ in $(seq 20); do
        out=$(curl -s -b "$jar" -o /dev/null -w '%{http_code} %{time_total}' "http://127.0.0.1:9004$path")
        [ "${out%% *}" = 200 ] || { echo "$path answered ${out%% *}" >&2; exit 1; }
        times+=("${out#* }")
    done
    read -r median worst < <(printf '%s\n' "${times[@]}" | sort -n |
        awk '{t[NR] = $1 * 1000} END {printf "%.1f %.1f\n", t[int((NR + 1) / 2)], t[NR]}')
    echo "| \`$path\` | $median | $worst |"
    awk -v w="$worst" 'BEGIN {exit !(w >= 200)}' && slow=1
done
if [ "$slow" = 1 ]; then
    echo "SLOW: a page or endpoint took 200 ms or more" >&2
    exit 1
fi
