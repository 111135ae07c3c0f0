#!/usr/bin/env python3
"""Training and validation text of models/stories from ../shared/data/tinystories
(TinyStories, Eldan & Li 2023, CDLA-Sharing-1.0).

train.txt: the first 2 MiB of the TinyStories train split and the first
10,000 lines of TinyStoriesV2-GPT4, as they are (stories separated by
<|endoftext|>), then the validation stories after the first VAL_STORIES,
with a separator between the parts.
val.txt: the first VAL_STORIES stories of the validation split, which are
blank-line separated and keep mis-encoded quotes (UTF-8 read as cp1252):
repaired, then joined with <|endoftext|> like the training text. The rest
of that split goes to training: the data here is small (about 1.2M
tokens), and the model is still learning after 25 passes over it.

usage: prepare_data.py DATA_DIR OUT_DIR
"""
import os
import sys

VAL_STORIES = 400
SEP = "<|endoftext|>"

# UTF-8 punctuation that was decoded as cp1252 once: the three bytes of each
# character show up as these three characters.
MOJIBAKE = {
    "â€œ": "\u201c", "â€\x9d": "\u201d", "â€": "\u201d", "â€™": "\u2019", "â€˜": "\u2018",
    "â€”": "\u2014", "â€“": "\u2013", "â€¦": "\u2026",
}


def repair(text):
    # longest spellings first, so "â€" alone is the last resort
    for bad in sorted(MOJIBAKE, key=len, reverse=True):
        text = text.replace(bad, MOJIBAKE[bad])
    return text


def main():
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    parts = []
    for name in ("hf_train_head_2MiB.txt", "v2gpt4_train_head_10klines.txt"):
        with open(os.path.join(data, name), encoding="utf-8") as f:
            parts.append(f.read().strip())
    with open(os.path.join(data, "hf_validation_head_4302.txt"), encoding="utf-8") as f:
        stories = [s.strip() for s in repair(f.read()).split("\n\n") if s.strip()]
    parts.append(("\n" + SEP + "\n").join(stories[VAL_STORIES:]))
    with open(os.path.join(out, "train.txt"), "w", encoding="utf-8") as f:
        f.write(("\n" + SEP + "\n").join(parts) + "\n")
    with open(os.path.join(out, "val.txt"), "w", encoding="utf-8") as f:
        f.write(("\n" + SEP + "\n").join(stories[:VAL_STORIES]) + "\n")
    print(f"train.txt: {sum(len(p) for p in parts)} characters; val.txt: {min(VAL_STORIES, len(stories))} stories")


if __name__ == "__main__":
    main()
