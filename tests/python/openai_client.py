"""Drives Glassbox's OpenAI-compatible facade with the official `openai` SDK.

Usage: openai_client.py BASE_URL MODEL

Makes a plain call, a streamed call with `stream_options.include_usage`, a streamed call
without it, lists the models, retrieves one and calls an unknown model; prints one JSON object with what
the SDK returned (the Rust test `openai_facade` checks it). Exits non-zero if the SDK raises
where it should not.
"""

import json
import sys

import openai


def trace_id(headers):
    return headers["traceparent"].split("-")[1]


def main():
    base_url, model = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)
    out = {"sdk_version": openai.__version__}

    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "plain call"},
        ],
    )
    completion = raw.parse()
    out["plain"] = {
        "trace_id": trace_id(raw.headers),
        "completion": completion.model_dump(mode="json"),
    }

    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": [{"type": "text", "text": "streamed call"}]}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk.model_dump(mode="json") for chunk in raw.parse()]
    out["streamed"] = {"trace_id": trace_id(raw.headers), "chunks": chunks}

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "streamed without usage"}],
        stream=True,
    )
    out["streamed_no_usage"] = {"chunks": [chunk.model_dump(mode="json") for chunk in stream]}

    out["models"] = [entry.model_dump(mode="json") for entry in client.models.list()]
    out["model"] = client.models.retrieve(model).model_dump(mode="json")

    try:
        client.chat.completions.create(model="no-such-agent", messages=[{"role": "user", "content": "hi"}])
        out["unknown_model"] = {"raised": None}
    except openai.NotFoundError as error:
        out["unknown_model"] = {"raised": type(error).__name__, "status": error.status_code, "body": error.body}

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
