#!/usr/bin/env bash
# Where the int8 matmul's time goes (bench/int8_kernel.c says what
# is timed): the micro-kernel alone in cache, then the blocked driver on one
# 4096 x 4096 matrix and 256 tokens on 1 and on all threads, per weight type,
# each against the one-thread int8 limit measured in the same run.
#
#   bench/int8_kernel.sh [THREADS] [REPS]      (default: physical cores, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory -j"$(nproc)" build/libunmask.a >/dev/null
mkdir -p build/bench
# shellcheck disable=SC2046 # the library flags split into words
cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Isrc -o build/bench/int8_kernel bench/int8_kernel.c build/libunmask.a \
    $(make --no-print-directory -s print-ldlibs)
THREADS=${1:-$(lscpu -p=Core,Socket | grep -v '^#' | sort -u | wc -l)}
build/bench/int8_kernel "$THREADS" "${2:-5}"
