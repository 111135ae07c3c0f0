#!/usr/bin/env python3
"""Reference vectors for tests/test_bpe_train.c, from Hugging Face `tokenizers`.

    pip install tokenizers
    python3 tests/data/bpe_train/make_reference.py [--unmask build/unmask] [--shared ../shared]

Writes tests/data/bpe_train/reference.json with

  merges:    for each case, the merges Hugging Face's BpeTrainer learns with a
             ByteLevel pre-tokenizer (GPT-2 regex, no prefix space), the 256
             byte characters as initial alphabet, min_frequency 2 and the
             specials <|endoftext|> and <|mdm_mask|>, fed the corpus cut at
             <|endoftext|> (what `unmask train-tokenizer` counts words in:
             Hugging Face's trainer does not cut at special tokens itself);
  encodings: texts encoded by Hugging Face `tokenizers` with the tokenizer.json
             that OUR learner wrote (`unmask train-tokenizer`, corpus
             tinystories_20k.txt, vocab 600), so the C test can check that our
             loader encodes our own file as Hugging Face does.

A last case learns from a random text of few letters (inline), where
overlapping pairs and ties abound.

tinystories_20k.txt is the first 20 KB of shared/data/tinystories/
hf_train_head_2MiB.txt (the head of the Hugging Face dataset
roneneldan/TinyStories, train split), cut after its last full line. The
2 MiB case needs that file; the test skips it when shared/ is missing.
"""
import argparse
import json
import os
import random
import subprocess
import tempfile

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = "<|endoftext|>"
SPECIALS = ["<|endoftext|>", "<|mdm_mask|>"]
MIN_FREQUENCY = 2


def hf_merges(text, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_FREQUENCY,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(text.split(SEP), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return merges, len(model["vocab"])


def ours(unmask, corpus, vocab_size, out_dir):
    path = os.path.join(out_dir, "tokenizer.json")
    subprocess.run([unmask, "train-tokenizer", "-q", "-o", path, "--vocab-size", str(vocab_size), corpus],
                   check=True)
    return path


ENCODE_TEXTS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "  leading spaces, trailing spaces   \n\n\ttabs and\r\nCRLF lines\n",
    "Numbers 12345 and 3.14159, symbols #@!$%^&*()_+-=[]{};':\",./<>? and 'quotes' don't won't I'll",
    "Ünïcödé: café naïve, 日本語のテキスト, emoji 🙂👍, Ελληνικά, русский текст",
    "special tokens inline: a<|endoftext|>b <|mdm_mask|> <|mdm_mask|><|mdm_mask|> end",
    "",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unmask", default="build/unmask")
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()

    small = os.path.join(HERE, "tinystories_20k.txt")
    small_text = open(small, encoding="utf-8").read()
    big = os.path.join(a.shared, "data/tinystories/hf_train_head_2MiB.txt")
    cases = []
    for v in (300, 600, 2000):
        merges, n_vocab = hf_merges(small_text, v)
        cases.append({"corpus": "tinystories_20k.txt", "vocab_size": v, "n_vocab": n_vocab, "merges": merges})
    merges, n_vocab = hf_merges(open(big, encoding="utf-8").read(), 2048)
    cases.append({"corpus": "shared:data/tinystories/hf_train_head_2MiB.txt", "vocab_size": 2048,
                  "n_vocab": n_vocab, "merges": merges})

    # few letters, long runs: overlapping pairs ("aaaa") and ties on every step
    rng = random.Random(1)
    runs = " ".join("".join(rng.choice("aab") for _ in range(rng.randint(1, 40))) for _ in range(60))
    merges, n_vocab = hf_merges(runs, 330)
    cases.append({"corpus": "text", "text": runs, "vocab_size": 330, "n_vocab": n_vocab, "merges": merges})

    with tempfile.TemporaryDirectory() as d:
        tok = Tokenizer.from_file(ours(a.unmask, small, 600, d))
    texts = ENCODE_TEXTS + [small_text]
    encodings = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]

    ref = {
        "source": "Hugging Face tokenizers %s, BpeTrainer + ByteLevel; made by make_reference.py"
                  % tokenizers.__version__,
        "specials": SPECIALS,
        "separator": SEP,
        "min_frequency": MIN_FREQUENCY,
        "merge_cases": cases,
        "encode_vocab_size": 600,
        "encodings": encodings,
    }
    with open(os.path.join(HERE, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")
    for c in cases:
        print(c["corpus"], c["vocab_size"], "->", len(c["merges"]), "merges,", c["n_vocab"], "tokens")


if __name__ == "__main__":
    main()
