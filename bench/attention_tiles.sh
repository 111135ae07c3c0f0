#!/usr/bin/env bash
# The f32 products of inference attention's key tiles, as the path in use
# runs them (bench/attention_tiles.c says what is timed), against the
# one-thread FMA limit measured in the same run.
#
#   bench/attention_tiles.sh [REPS]      (default 50; UNMASK_CPU=avx2 etc. masks the CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory -j"$(nproc)" build/libunmask.a >/dev/null
mkdir -p build/bench
# shellcheck disable=SC2046 # the library flags split into words
cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Isrc -o build/bench/attention_tiles bench/attention_tiles.c \
    build/libunmask.a $(make --no-print-directory -s print-ldlibs)
build/bench/attention_tiles "${1:-50}"
