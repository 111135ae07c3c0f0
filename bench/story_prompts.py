#!/usr/bin/env python3
"""Short prompts on a story model: how many greedy outputs hold a run of one
punctuation mark (",,", ". ."), the failure the story recipe's third phase
fixed (docs/training.md, "The shipped models").

The prompts are the first 2-4 words of the first 60 validation stories
(models/stories/val.txt), alternately of the story's first sentence and of
its middle one; each is continued with `unmask run -n 64` and the default
decoding, all in one `run --batch`. Prints the failing outputs and the count.

usage: python3 bench/story_prompts.py [MODEL]    (from the repository root, after make)
"""
import json
import os
import re
import subprocess
import sys
import tempfile


def prompts(val_path, n_stories=60):
    with open(val_path, encoding="utf-8") as f:
        stories = [s.strip() for s in f.read().split("<|endoftext|>") if s.strip()]
    out = []
    for story in stories[:n_stories]:
        sentences = re.split(r"(?<=[.!?])\s+", story)
        source = sentences[len(sentences) // 2] if len(out) % 2 else sentences[0]
        words = source.split()
        if len(words) >= 3:
            out.append(" ".join(words[: 2 + len(out) % 3]))
    return out


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else "models/stories"
    binary = os.environ.get("UNMASK_BIN", "build/unmask")
    ps = prompts("models/stories/val.txt")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for p in ps:
            f.write(json.dumps({"prompt": p, "gen_length": 64}) + "\n")
    try:
        out = subprocess.check_output([binary, "run", "-m", model, "--batch", f.name], stderr=subprocess.DEVNULL)
    finally:
        os.unlink(f.name)
    bad = 0
    for p, line in zip(ps, out.decode().splitlines()):
        text = json.loads(line)["text"]
        if re.search(r"([.,!?])\s*\1", text):
            bad += 1
            print(f"{p!r} -> {text[:60]!r}")
    print(f"{model}: {bad} of {len(ps)} outputs repeat a punctuation mark")


if __name__ == "__main__":
    main()
