#!/usr/bin/env bash
# Tokenizer encoding speed (MB/s of text), cold and warm merge cache.
#
#   bench/tokenizer.sh [TOKENIZER] [TEXT] [MIN_MB]
#
# Defaults: GPT-2's tokenizer.json and the TinyStories 2 MiB sample from
# ../shared, repeated to at least 8 MB. TOKENIZER may be a tokenizer.json, a
# model directory or a GGUF file.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/libunmask.a
mkdir -p build/bench
cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Isrc -o build/bench/tokenizer bench/tokenizer.c build/libunmask.a \
    -lcjson -lpcre2-8 -lutf8proc -lm -pthread
exec build/bench/tokenizer "$@"
