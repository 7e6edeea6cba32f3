"""The official `anthropic` Python client against a running Signalbox gateway's
`POST /v1/messages`.

Usage: python anthropic_sdk.py BASE_URL API_KEY MODEL [MODEL...]
For each MODEL: a message (whose answer must carry the gateway's `x-signalbox-target`
header), the same message streamed (the same text, against the deterministic fakes of
tests/clients/fake_providers.py), a tool round trip plain and streamed, and a token
count. Prints one line per model; exits non-zero, saying what was expected and what
came, if any of them fails.

`--direct` (a trial aid, not for CI) points the client straight at
fake_providers.py's Anthropic (BASE_URL ending in /anthropic, API_KEY provider-secret):
it adds the `x-api-key` header the fake requires and skips the two checks only the
gateway can pass, the `x-signalbox-target` header and the token count.
"""

import sys
import traceback

import anthropic

HELLO = [{"role": "user", "content": "Hello from the anthropic SDK"}]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [{
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]},
}]
TOOL_RESULT = "18C and sunny"


class Failed(Exception):
    pass


def check(condition, expected, got):
    if not condition:
        raise Failed(f"expected {expected}, got {got!r}")


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


def check_answer(message):
    texts = [block.text for block in message.content if block.type == "text"]
    check(texts and all(texts), "a text block with text", message.content)
    check(message.stop_reason == "end_turn", "stop_reason 'end_turn'", message.stop_reason)
    check(message.usage.output_tokens > 0, "usage.output_tokens > 0", message.usage)


def check_tool_call(message):
    check(message.stop_reason == "tool_use", "stop_reason 'tool_use'", message.stop_reason)
    calls = [block for block in message.content if block.type == "tool_use"]
    check(calls, "a tool_use block", message.content)
    call = calls[0]
    check(call.name == "get_weather", "a call of 'get_weather'", call.name)
    check(call.input == {"city": "Paris"}, "input {'city': 'Paris'}", call.input)
    return call


def after_tool(message, call):
    """The conversation with the assistant's tool call and the tool's result."""
    return QUESTION + [
        {"role": "assistant", "content": message.content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": TOOL_RESULT}]},
    ]


def check_tool_answer(message):
    check_answer(message)
    check(TOOL_RESULT in text_of(message), f"text containing {TOOL_RESULT!r}", text_of(message))


def drive(client, model, direct):
    """Runs every check against MODEL; returns the target that served it."""
    step = "message"
    try:
        raw = client.messages.with_raw_response.create(model=model, max_tokens=64, messages=HELLO)
        message = raw.parse()
        check_answer(message)
        target = raw.headers.get("x-signalbox-target")
        check(direct or target, "an x-signalbox-target header", dict(raw.headers))
        text = text_of(message)

        step = "streamed message"
        with client.messages.stream(model=model, max_tokens=64, messages=HELLO) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
        check(streamed == text, f"the non-streamed text {text!r}", streamed)
        check_answer(final)

        step = "tool call"
        message = client.messages.create(model=model, max_tokens=64, tools=TOOLS,
                                         messages=QUESTION)
        call = check_tool_call(message)
        step = "tool result"
        answer = client.messages.create(model=model, max_tokens=64, tools=TOOLS,
                                        messages=after_tool(message, call))
        check_tool_answer(answer)

        step = "streamed tool call"
        with client.messages.stream(model=model, max_tokens=64, tools=TOOLS,
                                    messages=QUESTION) as stream:
            message = stream.get_final_message()
        call = check_tool_call(message)
        step = "streamed tool result"
        with client.messages.stream(model=model, max_tokens=64, tools=TOOLS,
                                    messages=after_tool(message, call)) as stream:
            answer = stream.get_final_message()
        check_tool_answer(answer)

        if not direct:
            step = "count_tokens"
            count = client.messages.count_tokens(model=model, messages=HELLO)
            check(count.input_tokens > 0, "input_tokens > 0", count.input_tokens)
    except anthropic.APIStatusError as e:
        raise Failed(f"{step}: HTTP {e.status_code}: {e.body!r}") from None
    except anthropic.APIError as e:
        raise Failed(f"{step}: {type(e).__name__}: {e}") from None
    except Failed as e:
        raise Failed(f"{step}: {e}") from None
    except Exception as e:  # the client could not read the answer: keep the trace
        traceback.print_exc()
        raise Failed(f"{step}: {type(e).__name__}: {e}") from None
    return target or model


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--direct"]
    direct = "--direct" in sys.argv[1:]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    base_url, key, models = args[0], args[1], args[2:]
    client = anthropic.Anthropic(
        base_url=base_url, api_key=key, max_retries=0, timeout=30,
        # The fake wants the header the gateway sends upstream.
        **({"default_headers": {"x-api-key": key}} if direct else {}),
    )
    failed = 0
    for model in models:
        try:
            target = drive(client, model, direct)
            print(f"anthropic SDK via {target}: ok")
        except Failed as e:
            print(f"anthropic SDK, model {model}: FAILED at {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
