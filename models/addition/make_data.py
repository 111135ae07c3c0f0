#!/usr/bin/env python3
"""Seeded generator of the addition task: "A+B=" -> "C" with A and B drawn
uniformly below 10^DIGITS and written with DIGITS digits, the sum with
DIGITS + 1 (zero-padded: "0042+1234=" -> "01276"), as JSONL
{"prompt": ..., "response": ...} for `unmask train --sft` and `unmask eval --tasks`.
Fixed widths put each digit at a fixed distance from the digits it depends on,
which a small model learns in minutes; unpadded numbers it did not learn in
the same budget.

The test split is held out: no (A, B) pair of it appears in the training split.

usage: make_data.py OUT_DIR [--train N] [--test N] [--seed S] [--digits D]
"""
import argparse
import json
import os
import random


def draw(rng, digits):
    return rng.randrange(10 ** digits), rng.randrange(10 ** digits)


def write(path, pairs, digits):
    with open(path, "w", encoding="utf-8") as f:
        for a, b in pairs:
            line = {"prompt": f"{a:0{digits}d}+{b:0{digits}d}=", "response": f"{a + b:0{digits + 1}d}"}
            f.write(json.dumps(line) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--train", type=int, default=200000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--digits", type=int, default=4)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    test = []
    seen = set()
    while len(test) < args.test:
        p = draw(rng, args.digits)
        if p not in seen:
            seen.add(p)
            test.append(p)
    train = []
    while len(train) < args.train:
        p = draw(rng, args.digits)
        if p not in seen:  # held out: never train on a test pair
            train.append(p)
    os.makedirs(args.out_dir, exist_ok=True)
    write(os.path.join(args.out_dir, "train.jsonl"), train, args.digits)
    write(os.path.join(args.out_dir, "test.jsonl"), test, args.digits)
    print(f"{len(train)} training and {len(test)} test problems in {args.out_dir}")


if __name__ == "__main__":
    main()
