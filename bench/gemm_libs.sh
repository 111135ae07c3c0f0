#!/usr/bin/env bash
# Our matmul against oneDNN, OpenBLAS and BLIS on llada-1b's shapes, in one
# run (bench/gemm_libs.c says what is timed). Installs the libraries'
# Debian packages if missing, builds the project, then prints a Markdown
# table of GFLOP/s with each library's ratio to ours.
#
#   bench/gemm_libs.sh [THREADS] [REPS]      (default: physical cores, 3)
#
# The libraries are only measured here; unmask does not link them.
set -euo pipefail
cd "$(dirname "$0")/.."

make --no-print-directory install-packages PACKAGES="libdnnl-dev libopenblas-dev libblis-dev"
make --no-print-directory -j"$(nproc)" build/libunmask.a >/dev/null
mkdir -p build/bench
cc -std=c11 -D_DEFAULT_SOURCE -O2 -Iinclude -Isrc -o build/bench/gemm_libs bench/gemm_libs.c build/libunmask.a \
    -ldnnl -ldl -lm -pthread

THREADS=${1:-$(lscpu -p=Core,Socket | grep -v '^#' | sort -u | wc -l)}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS BLIS_NUM_THREADS=$THREADS
# the pthread build of OpenBLAS and the OpenMP build of BLIS, as Debian installs them
export OPENBLAS_LIB=${OPENBLAS_LIB:-libopenblas.so.0} BLIS_LIB=${BLIS_LIB:-libblis.so.4}
build/bench/gemm_libs "$THREADS" "${2:-3}"
