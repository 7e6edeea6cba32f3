"""Two fake LLM providers in one process, for driving the gateway's provider adapters
with the official clients: Anthropic's Messages API and OpenAI's Chat Completions.

Usage: python fake_providers.py PORT
Serves on 127.0.0.1:PORT until killed, printing nothing:
  POST /anthropic/v1/messages         needs `x-api-key: provider-secret`, an
                                      `anthropic-version` and an integer `max_tokens`
  POST /openai/v1/chat/completions    needs `authorization: Bearer provider-secret`
  GET  /health                        200
Both answer deterministically, as JSON or (with `"stream": true`) as their providers'
server-sent events: offered tools and asked in plain text, a call of the first tool
with {"city": "Paris"}; given a tool's result, "Tool said: <result>"; otherwise a
greeting. Input tokens are the request's characters of text / 4 (at least 1), output
tokens the answer's words (5 for a tool call).
"""

import itertools
import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "provider-secret"
CREATED = 1700000000
TOOL_INPUT = {"city": "Paris"}
TOOL_CALL_TOKENS = 5
ids = itertools.count(1)


def text_of(content):
    """The text in a message's content: a string, or a list of blocks or parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(b.get("text", b.get("content", ""))) for b in content
                       if isinstance(b, dict))
    return ""


def words(text):
    """The answer's words, each keeping its leading space."""
    return re.findall(r"\s*\S+", text)


def pieces(text, size=5):
    return [text[i:i + size] for i in range(0, len(text), size)]


def input_tokens(texts):
    return max(1, sum(len(t) for t in texts) // 4)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/anthropic/v1/messages":
            self.anthropic(request)
        elif self.path == "/openai/v1/chat/completions":
            self.openai(request)
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}"}})

    # --- Anthropic Messages ---------------------------------------------------------

    def anthropic(self, request):
        def error(status, kind, message):
            body = {"type": "error", "error": {"type": kind, "message": message}}
            self.send_json(status, body)

        if self.headers.get("x-api-key") != KEY:
            return error(401, "authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        max_tokens = request.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return error(400, "invalid_request_error", "max_tokens: an integer is required")

        messages = request.get("messages", [])
        users = [m["content"] for m in messages if m.get("role") == "user"]
        last = users[-1] if users and isinstance(users[-1], list) else []
        results = [b for b in last if b.get("type") == "tool_result"]
        tools = request.get("tools") or []
        n = next(ids)
        if results:
            text = "Tool said: " + text_of(results[0].get("content"))
            block, stop, used_out = {"type": "text", "text": text}, "end_turn", len(words(text))
        elif tools:
            block = {"type": "tool_use", "id": f"toolu_fake_{n}", "name": tools[0]["name"],
                     "input": TOOL_INPUT}
            stop, used_out = "tool_use", TOOL_CALL_TOKENS
        else:
            text = "Hello from the fake Anthropic"
            block, stop, used_out = {"type": "text", "text": text}, "end_turn", len(words(text))
        texts = [text_of(request.get("system"))] + [text_of(m.get("content")) for m in messages]
        used_in = input_tokens(texts)
        message = {"id": f"msg_fake_{n}", "type": "message", "role": "assistant",
                   "model": request.get("model"), "content": [block], "stop_reason": stop,
                   "stop_sequence": None,
                   "usage": {"input_tokens": used_in, "output_tokens": used_out}}
        if not request.get("stream"):
            return self.send_json(200, message)

        if block["type"] == "text":
            opening = dict(block, text="")
            deltas = [{"type": "text_delta", "text": w} for w in words(block["text"])]
        else:
            opening = dict(block, input={})
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in pieces(json.dumps(TOOL_INPUT))]
        self.start_events()
        self.event("message_start", {"type": "message_start", "message": dict(
            message, content=[], stop_reason=None,
            usage={"input_tokens": used_in, "output_tokens": 1})})
        self.event("content_block_start",
                   {"type": "content_block_start", "index": 0, "content_block": opening})
        self.event("ping", {"type": "ping"})
        for delta in deltas:
            self.event("content_block_delta",
                       {"type": "content_block_delta", "index": 0, "delta": delta})
        self.event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self.event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": used_out}})
        self.event("message_stop", {"type": "message_stop"})

    # --- OpenAI Chat Completions ----------------------------------------------------

    def openai(self, request):
        if self.headers.get("authorization") != f"Bearer {KEY}":
            return self.send_json(401, {"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error",
                "param": None, "code": "invalid_api_key"}})
        messages = request.get("messages", [])
        last = messages[-1] if messages else {}
        tools = request.get("tools") or []
        n = next(ids)
        call = None
        if last.get("role") == "tool":
            text, finish = "Tool said: " + text_of(last.get("content")), "stop"
        elif tools and last.get("role") == "user":
            call = {"id": f"call_fake_{n}", "type": "function",
                    "function": {"name": tools[0]["function"]["name"],
                                 "arguments": json.dumps(TOOL_INPUT)}}
            text, finish = None, "tool_calls"
        else:
            text, finish = "Hello from the fake OpenAI", "stop"
        used_in = input_tokens([text_of(m.get("content")) for m in messages])
        used_out = len(words(text)) if text is not None else TOOL_CALL_TOKENS
        usage = {"prompt_tokens": used_in, "completion_tokens": used_out,
                 "total_tokens": used_in + used_out}
        head = {"id": f"chatcmpl-fake-{n}", "created": CREATED, "model": request.get("model")}
        if not request.get("stream"):
            message = {"role": "assistant", "content": text}
            if call:
                message["tool_calls"] = [call]
            return self.send_json(200, dict(head, object="chat.completion", usage=usage, choices=[
                {"index": 0, "message": message, "finish_reason": finish}]))

        def chunk(delta, finish_reason=None):
            self.data(dict(head, object="chat.completion.chunk", choices=[
                {"index": 0, "delta": delta, "finish_reason": finish_reason}]))

        self.start_events()
        chunk({"role": "assistant", "content": ""})
        if call:
            function = call["function"]
            chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                   "function": {"name": function["name"], "arguments": ""}}]})
            for piece in pieces(function["arguments"]):
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        else:
            for word in words(text):
                chunk({"content": word})
        chunk({}, finish)
        if (request.get("stream_options") or {}).get("include_usage"):
            self.data(dict(head, object="chat.completion.chunk", choices=[], usage=usage))
        self.write("data: [DONE]\n\n")

    # --- HTTP -----------------------------------------------------------------------

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_events(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()  # HTTP/1.0: the stream ends when the connection closes

    def event(self, name, body):
        self.write(f"event: {name}\ndata: {json.dumps(body)}\n\n")

    def data(self, body):
        self.write(f"data: {json.dumps(body)}\n\n")

    def write(self, text):
        self.wfile.write(text.encode())
        self.wfile.flush()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
