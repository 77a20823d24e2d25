#!/usr/bin/env python3
"""Drives tutorlog's gateway with the official `openai` client.

Usage: openai_client.py BASE_URL API_KEY
Prints one JSON object: what the client saw, for the Rust test to check.
"""
import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=20)
    result = {}

    whole = client.chat.completions.create(
        model="auto",
        messages=[
            {"role": "system", "content": "You are a tutor."},
            {"role": "user", "content": "Explain merge sort in one line."},
        ],
        max_tokens=16,
    )
    result["complete"] = {
        "id": whole.id,
        "model": whole.model,
        "content": whole.choices[0].message.content,
        "finish_reason": whole.choices[0].finish_reason,
        "prompt_tokens": whole.usage.prompt_tokens,
        "completion_tokens": whole.usage.completion_tokens,
    }

    text = []
    usage = None
    chunks = 0
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Now stream a haiku about logs."}],
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
    result["stream"] = {
        "content": "".join(text),
        "chunks": chunks,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
    }

    models = client.models.list()
    result["models"] = sorted(m.id for m in models.data)

    try:
        client.chat.completions.create(
            model="no-such-model",
            messages=[{"role": "user", "content": "hi"}],
        )
        result["unknown_model"] = "accepted"
    except Exception as error:  # the client raises NotFoundError
        result["unknown_model"] = type(error).__name__

    print(json.dumps(result))


if __name__ == "__main__":
    main()
