"""A stand-in for a strong model behind the real one: an OpenAI-compatible chat server
whose every answer is the same valid JSON object, so a cascade that escalates from the
real model has somewhere to go.

Usage: python fake_strong.py PORT
Serves POST /v1/chat/completions (JSON, not streamed) and GET /health on 127.0.0.1:PORT
until killed.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = '{"colour": "blue", "from": "the strong fallback"}'


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        body = json.dumps({
            "id": "chatcmpl-strong",
            "object": "chat.completion",
            "created": 1700000000,
            "model": request.get("model", "strong"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": ANSWER}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
