#!/usr/bin/env bash
# Which fast-decoding methods keep quality: exact-match accuracy, forward passes
# (NFE) and tokens/s of every decoder and cache on the held-out problems of
# the shipped task model (models/addition), in one `unmask eval` run, so the
# rows are comparable. The first row is the LLaDA reference sampler.
#
#   bench/decode_quality.sh [LIMIT] [BLOCK]     (default: all 1000 problems, one block of 6)
#
# The answers are 5 digits and EOS (6 tokens); BLOCK 2 splits them into three
# semi-autoregressive blocks, where the prefix and dual caches have a prefix
# to reuse.
set -euo pipefail
cd "$(dirname "$0")/.."
U=${UNMASK:-build/unmask}
LIMIT=${1:-1000}
BLOCK=${2:-6}
"$U" eval -m models/addition --tasks models/addition/test.jsonl --limit "$LIMIT" -n 6 --block-length "$BLOCK" \
    --setting "--cache none --decoder topk" \
    --setting "--decoder topk --steps 3" \
    --setting "--decoder margin --steps 3" \
    --setting "--decoder entropy --steps 3" \
    --setting "--decoder topk --schedule power" \
    --setting "--decoder threshold --threshold 0.9" \
    --setting "--decoder threshold --threshold 0.7" \
    --setting "--decoder threshold --threshold 0.5" \
    --setting "--decoder factor --factor 1" \
    --setting "--decoder med --entropy-bound 0.3" \
    --setting "--decoder hierarchical" \
    --setting "--decoder credit" \
    --setting "--decoder threshold --threshold 0.9 --eos-rejection" \
    --setting "--cache prefix --decoder threshold --threshold 0.9" \
    --setting "--cache dual --decoder threshold --threshold 0.9" \
    --setting "--cache vicinity --window 2 --decoder threshold --threshold 0.9"
