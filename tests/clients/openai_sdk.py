"""The official `openai` Python client against a running Signalbox gateway.

Usage: python openai_sdk.py BASE_URL API_KEY [MODEL [--sampled]]
Exits non-zero (with the reason) unless a non-streaming and a streaming chat
completion, and a non-streaming and a streaming response (the Responses API), succeed. Against the deterministic simulated models the streamed text
must equal the non-streamed one; `--sampled` (a real model) only requires text.
"""

import sys

from openai import OpenAI


def main() -> int:
    base_url, key = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else "auto"
    sampled = "--sampled" in sys.argv[4:]
    client = OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=30)

    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "Hello from the openai SDK"}],
        max_tokens=24,
    )
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text, "empty completion"
    assert completion.usage and completion.usage.completion_tokens > 0, completion.usage
    target = raw.headers.get("x-signalbox-target")
    assert target, "no x-signalbox-target header"

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Hello from the openai SDK"}],
        max_tokens=24,
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
    if sampled:
        assert streamed, "empty stream"
    else:
        assert streamed == text, f"stream {streamed!r} != completion {text!r}"
    assert usage and usage.completion_tokens > 0, usage

    # The Responses API, whole and streamed (translated to the targets' chat).
    response = client.responses.create(model=model, input="Hello from the openai SDK",
                                       max_output_tokens=24)
    # A sampled model may run into max_output_tokens: `incomplete`, with its text.
    ended = ("completed", "incomplete") if sampled else ("completed",)
    assert response.status in ended, response
    assert response.output_text, f"empty response: {response}"
    assert response.usage and response.usage.output_tokens > 0, response.usage
    deltas, final = [], None
    for event in client.responses.create(model=model, input="Hello from the openai SDK",
                                         max_output_tokens=24, stream=True):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert final is not None, "no response.completed or response.incomplete event"
    assert final.output_text == "".join(deltas), (final.output_text, deltas)
    if not sampled:
        assert final.output_text == response.output_text, (final.output_text, response.output_text)

    models = [m.id for m in client.models.list()]
    assert model in models, models
    print(f"openai SDK ok: target {target}, {len(streamed)} chars streamed, models {models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
