#!/usr/bin/env python3
"""unmask serve with the official `openai` Python client: completions and chat
completions, whole and streamed, must parse without errors, and the streams'
text must add up to the whole answers.

    python3 tests/serve_openai.py [UNMASK_BIN] [MODEL]

(.ci/run runs it in a venv with `pip install openai`; defaults: build/unmask
and the shipped models/stories.) Starts the server on a free loopback port
with an API key and stops it with SIGTERM, which must exit 0."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import openai

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/unmask"
MODEL = sys.argv[2] if len(sys.argv) > 2 else "models/stories"
KEY = "test-key-123"


def start_server():
    log = tempfile.NamedTemporaryFile(prefix="unmask-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", "0", "--api-key", KEY, "-np", "4"],
                            stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(3000):
        with open(log.name) as f:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
        if m:
            return proc, int(m.group(1)), log.name
        if proc.poll() is not None:
            sys.exit("unmask serve exited: " + open(log.name).read())
        time.sleep(0.01)
    sys.exit("unmask serve did not start")


def main():
    proc, port, log = start_server()
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        model = client.models.list().data[0].id
        settings = dict(model=model, max_tokens=32, temperature=0.7, seed=5)

        whole = client.completions.create(prompt="Once upon a time", **settings)
        text = whole.choices[0].text
        assert whole.choices[0].finish_reason in ("stop", "length"), whole
        parts, canvases = [], 0
        for chunk in client.completions.create(prompt="Once upon a time", stream=True, **settings):
            if chunk.choices:
                parts.append(chunk.choices[0].text)
            canvases += getattr(chunk, "canvas", None) is not None or bool((chunk.model_extra or {}).get("canvas"))
        assert "".join(parts) == text, ("".join(parts), text)
        assert canvases > 0, "no canvas field in the stream"

        msgs = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell me one."}]
        chat = client.chat.completions.create(messages=msgs, **settings)
        answer = chat.choices[0].message.content
        assert chat.choices[0].message.role == "assistant"
        parts = []
        stream = client.chat.completions.create(messages=msgs, stream=True, stream_options={"include_usage": True},
                                                **settings)
        usage = None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert "".join(parts) == answer, ("".join(parts), answer)
        assert usage is not None and usage.total_tokens > 0

        try:
            client.completions.create(prompt="x", logprobs=1, model=model)
            raise AssertionError("logprobs was accepted")
        except openai.BadRequestError as e:
            assert "logprobs" in str(e)
        try:
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError:
            pass
        print(f"serve_openai: completions and chat, whole and streamed: ok ({len(text)} and {len(answer)} chars)")
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        os.unlink(log)
    if rc != 0:
        sys.exit(f"unmask serve exited {rc} after SIGTERM")


if __name__ == "__main__":
    main()
