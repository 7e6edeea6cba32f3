"""The official `openai` Python client against a running Signalbox gateway.

Usage: python openai_sdk.py BASE_URL API_KEY
Exits non-zero (with the reason) unless a non-streaming and a streaming chat
completion both succeed and the streamed text matches the non-streamed one.
"""

import sys

from openai import OpenAI


def main() -> int:
    base_url, key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)

    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Hello from the openai SDK"}],
    )
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text, "empty completion"
    assert completion.usage and completion.usage.completion_tokens > 0, completion.usage
    target = raw.headers.get("x-signalbox-target")
    assert target, "no x-signalbox-target header"

    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Hello from the openai SDK"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
    streamed = "".join(parts)
    assert streamed == text, f"stream {streamed!r} != completion {text!r}"
    assert usage and usage.completion_tokens > 0, usage

    models = [m.id for m in client.models.list()]
    assert "auto" in models, models
    print(f"openai SDK ok: target {target}, {len(streamed)} chars streamed, models {models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
