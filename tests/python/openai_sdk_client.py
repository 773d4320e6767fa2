"""The official `openai` SDK as a client of Visa Keys' OpenAI-compatible surface.

tests/openai_sdk.rs starts the server and a mock provider, then runs one scenario of this
script per step: `python openai_sdk_client.py SCENARIO BASE_URL KEY [ARG]`. The script makes
the calls through the SDK exactly as an application would (only base_url and api_key changed)
and prints one JSON object with what the SDK returned or raised; the Rust test asserts on it,
on the provider's call count and on the ledger.
"""

import concurrent.futures
import json
import sys
import uuid

import openai

MESSAGES = [{"role": "user", "content": "hello"}]


def client(base_url, key, retries=2):
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=retries, timeout=20)


def create(c, model="chat", idempotency_key=None, **extra):
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    return c.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1000, extra_headers=headers, **extra)


def summary(completion):
    return {
        "id": completion.id,
        "model": completion.model,
        "content": completion.choices[0].message.content,
        "visa": (completion.model_extra or {}).get("visa"),
    }


def refusal(error):
    # `body` is the `error` object of OpenAI's shape, where our `limit` rides along.
    body = getattr(error, "body", None)
    limit = body.get("limit") if isinstance(body, dict) else None
    return {
        "class": type(error).__name__,
        "status": getattr(error, "status_code", None),
        "code": getattr(error, "code", None),
        "limit": limit,
    }


def main():
    scenario, base_url, key = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    c = client(base_url, key)
    if scenario == "plain":
        out = summary(create(c, model=arg or "chat"))
    elif scenario == "embeddings":
        # Twice with one Idempotency-Key: the second answer is the first's record.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        runs = [
            c.embeddings.create(model=arg or "embed", input=["hello", "world"], encoding_format="float", extra_headers=headers)
            for _ in range(2)
        ]
        first = runs[0]
        out = {
            "count": len(first.data),
            "vectors": [d.embedding for d in first.data],
            "model": first.model,
            "prompt_tokens": first.usage.prompt_tokens,
            "visa": (first.model_extra or {}).get("visa"),
            "same_again": runs[1].model_dump() == first.model_dump(),
        }
    elif scenario == "same_key_twice":
        k = str(uuid.uuid4())
        out = {"first": summary(create(c, idempotency_key=k)), "second": summary(create(c, idempotency_key=k))}
    elif scenario == "retried":
        # The provider fails the first attempt; the SDK retries on its own with the same headers.
        out = summary(create(c, idempotency_key=arg))
    elif scenario == "stream":
        # Streamed with the usage chunk, then the same Idempotency-Key again: the recorded stream.
        k = str(uuid.uuid4())
        runs = []
        for _ in range(2):
            events = create(c, idempotency_key=k, stream=True, stream_options={"include_usage": True})
            content, usage, models = "", None, set()
            for chunk in events:
                models.add(chunk.model)
                if chunk.choices and chunk.choices[0].delta.content:
                    content += chunk.choices[0].delta.content
                if chunk.usage:
                    usage = {"prompt": chunk.usage.prompt_tokens, "completion": chunk.usage.completion_tokens}
            runs.append({"content": content, "usage": usage, "models": sorted(models)})
        out = {"runs": runs}
    elif scenario == "responses":
        # The Responses API, plain: twice with one Idempotency-Key (the second is the record).
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        runs = [
            c.responses.create(model=arg or "chat", instructions="be brief", input="hello", max_output_tokens=1000,
                               extra_headers=headers)
            for _ in range(2)
        ]
        first = runs[0]
        out = {
            "id": first.id,
            "status": first.status,
            "model": first.model,
            "text": first.output_text,
            "usage": {"input": first.usage.input_tokens, "output": first.usage.output_tokens},
            "visa": (first.model_extra or {}).get("visa"),
            "same_again": runs[1].model_dump() == first.model_dump(),
        }
    elif scenario == "responses_stream":
        # Streamed: the typed events, then the same Idempotency-Key again (the recorded stream).
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        runs = []
        for _ in range(2):
            events = c.responses.create(model="chat", input=[{"role": "user", "content": "hello"}], stream=True,
                                        extra_headers=headers)
            types, text, final = [], "", None
            for event in events:
                types.append(event.type)
                if event.type == "response.output_text.delta":
                    text += event.delta
                if event.type == "response.completed":
                    final = event.response
            runs.append({"types": types, "text": text, "final_id": final.id, "final_text": final.output_text,
                         "output_tokens": final.usage.output_tokens})
        out = {"runs": runs}
    elif scenario == "responses_tool":
        # A function tool: the model calls it; its output goes back as a function_call_output.
        tools = [{"type": "function", "name": "weather", "description": "the weather in a city",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        called = c.responses.create(model="chat", input="weather in Paris?", tools=tools, extra_headers=headers)
        call = [item for item in called.output if item.type == "function_call"][0]
        follow_up = [{"role": "user", "content": "weather in Paris?"},
                     {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
                     {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        answered = c.responses.create(model="chat", input=follow_up, tools=tools, extra_headers=headers)
        out = {"name": call.name, "arguments": call.arguments, "call_id": call.call_id, "answer": answered.output_text}
    elif scenario == "responses_refused":
        # Calls until a limit refuses one: OpenAI's shape with our code and the limit, no retry.
        c = client(base_url, key, retries=0)
        done = 0
        while True:
            try:
                c.responses.create(model="chat", input="hello", extra_headers={"Idempotency-Key": str(uuid.uuid4())})
                done += 1
            except openai.APIStatusError as e:
                out = {"succeeded": done, **refusal(e)}
                break
    elif scenario == "agents_default_model":
        from agents.models import get_default_model
        out = {"model": get_default_model()}
    elif scenario == "agents":
        # The OpenAI Agents SDK with its default model settings: only OPENAI_BASE_URL and
        # OPENAI_API_KEY point it here (its traces, sent to OpenAI by default, are off).
        import os
        os.environ["OPENAI_BASE_URL"] = base_url
        os.environ["OPENAI_API_KEY"] = key
        from agents import Agent, Runner, set_tracing_disabled
        from agents.models import get_default_model
        set_tracing_disabled(True)
        agent = Agent(name="assistant", instructions="You are brief.")
        result = Runner.run_sync(agent, "hello")
        out = {"final_output": result.final_output, "model": get_default_model(),
               "responses": len(result.raw_responses)}
    elif scenario == "models":
        out = {"ids": [m.id for m in c.models.list()]}
    elif scenario == "errors":
        # One call per typed exception, without the SDK's retries so each error is seen as is.
        c = client(base_url, key, retries=0)
        out = {}
        cases = {
            "bad_key": lambda: create(client(base_url, "VisaKey_live_bogus", retries=0)),
            "unknown_model": lambda: create(c, model="no-such-model"),
            "no_idempotency_key": lambda: c.chat.completions.create(model="chat", messages=MESSAGES),
            "not_allowed": lambda: create(client(base_url, arg, retries=0)),
        }
        for name, call in cases.items():
            try:
                call()
                out[name] = {"class": None}
            except openai.APIStatusError as e:
                out[name] = refusal(e)
    elif scenario == "capped":
        # Calls until the key's cap refuses one: RateLimitError with our code, no retry.
        c = client(base_url, key, retries=0)
        done = 0
        while True:
            try:
                create(c)
                done += 1
            except openai.RateLimitError as e:
                out = {"succeeded": done, "refused": refusal(e)}
                break
    elif scenario == "race":
        # Racing SDK calls, each its own Idempotency-Key, on a key with a small cap.
        c = client(base_url, key, retries=0)
        calls = int(arg)

        def one(_):
            try:
                return summary(create(c))["visa"]["charged_micros"]
            except openai.RateLimitError as e:
                return refusal(e)["code"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(one, range(calls)))
        out = {"results": results}
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
