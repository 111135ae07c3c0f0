#!/usr/bin/env bash
# unmask against llama.cpp's diffusion CLI on the same GGUF files, the same
# canvas and the same threads: the time of one denoising step of each.
#
#   bench/vs_llama_cpp.sh LLAMA_DIFFUSION_CLI [WORK_DIR] [SHAPES] [TYPES] [CANVASES] [REPS]
#       (defaults /tmp/unmask-vs-llama, "llada-1b", "q8_0 q4_0", "256", 2; THREADS=N, default nproc;
#        UNMASK=path runs that unmask binary; UNMASK_CPU=avx2 etc. masks the CPU for unmask)
#
# LLAMA_DIFFUSION_CLI is a llama-diffusion-cli binary you built (llama.cpp's
# examples/diffusion; README, Performance, says which one the published
# numbers used). The models are random LLaDA-shaped weights made here with
# init-random and converted with unmask convert, with the shipped stories
# model's tokenizer so that llama.cpp can load them (about 3 GB of disk for
# llada-1b, 30 GB for llada-8b).
#
# One step is one forward pass over the whole canvas (prompt + masks) and
# the choice of what to commit: llama.cpp's "time per step" with its
# confidence-based block schedule, and `unmask run --reference` (LLaDA's
# low-confidence top-k, no cache) ms_per_forward over 3 steps. llama.cpp
# computes the logits of every canvas position, unmask those of the masked
# ones (what a step needs); both count as the engine's work. The two
# programs alternate, REPS times each, and the best time of each is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "error: give the path of an executable llama-diffusion-cli" >&2
    exit 2
fi
CLI=$1
W=${2:-/tmp/unmask-vs-llama}
SHAPES=${3:-llada-1b}
TYPES=${4:-q8_0 q4_0}
CANVASES=${5:-256}
R=${6:-2}
STEPS=3
THREADS=${THREADS:-$(nproc)}
PROMPT="Once upon a time"
U=${UNMASK:-build/unmask} # UNMASK=path: that binary as it is (else build/unmask, rebuilt)
[ -n "${UNMASK:-}" ] || make --no-print-directory -j"$(nproc)" build/unmask >/dev/null

# DIR/bf16 (Hugging Face layout, with a tokenizer) and DIR/TYPE.gguf.
make_model() {
    local shape=$1 dir=$2 type=$3
    mkdir -p "$dir"
    if [ ! -f "$dir/bf16/model.safetensors" ]; then
        echo "making random $shape weights in $dir/bf16" >&2
        "$U" init-random --preset "$shape" --dtype bf16 -o "$dir/bf16" >&2
    fi
    cp models/stories/tokenizer.json models/stories/tokenizer_config.json "$dir/bf16/"
    [ -f "$dir/$type.gguf" ] || "$U" convert "$dir/bf16" -o "$dir/$type.gguf" --type "$type" >&2
}

llama_step_ms() { # model canvas
    "$CLI" -m "$1" -p "$PROMPT" -ub "$2" -b "$2" -c "$2" --diffusion-steps $STEPS --diffusion-block-length "$2" \
        -t "$THREADS" --temp 0 2>&1 | tr '\r' '\n' | sed -n 's/^total time: [0-9.]*ms, time per step: \([0-9.]*\)ms.*/\1/p'
}

unmask_step_ms() { # model canvas
    local p
    p=$("$U" tokenize -m "$1" -p "$PROMPT" --ids 2>/dev/null | tr -cd ',' | wc -c)
    p=$((p + 1))
    local g=$(($2 - p))
    "$U" run -m "$1" -p "$PROMPT" -n $g --steps $STEPS --block-length $g --reference -t "$THREADS" --json 2>/dev/null |
        tr -d '\n' | sed -n 's/.*"ms_per_forward":[[:space:]]*\([0-9.e+-]*\).*/\1/p'
}

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

echo "| shape | weights | threads | canvas | llama.cpp ms/step | unmask ms/step | unmask speedup |"
echo "|---|---|---|---|---|---|---|"
for shape in $SHAPES; do
    for type in $TYPES; do
        make_model "$shape" "$W/$shape" "$type"
        m="$W/$shape/$type.gguf"
        for n in $CANVASES; do
            best_l="" best_u=""
            for _ in $(seq "$R"); do
                l=$(llama_step_ms "$m" "$n")
                u=$(unmask_step_ms "$m" "$n")
                if [ -z "$l" ] || [ -z "$u" ]; then
                    echo "error: no time from a run on $m (canvas $n)" >&2
                    exit 1
                fi
                best_l=$(min "$best_l" "$l")
                best_u=$(min "$best_u" "$u")
            done
            awk -v s="$shape" -v t="$type" -v th="$THREADS" -v n="$n" -v l="$best_l" -v u="$best_u" \
                'BEGIN { printf "| %s | %s | %d | %d | %.0f | %.0f | %.2fx |\n", s, toupper(t), th, n, l, u, l / u }'
        done
    done
done
