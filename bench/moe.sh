#!/usr/bin/env bash
# The mixture-of-experts forward against a dense model of the same active
# size and against llama.cpp, in one run: random llada-moe-7b-a1b weights
# (7.4B parameters, 8 of 64 experts a token: 1.7B active with the embedding
# and head), a dense LLaDA of the same active shape (16 layers, d_model 2048,
# 16 heads, SwiGLU of 8192 = 8 experts x 1024, the same vocabulary), and
# llama.cpp's llama-diffusion-cli on the very same MoE GGUF file.
#
#   bench/moe.sh LLAMA_DIFFUSION_CLI [WORK_DIR] [TYPES] [CANVAS] [REPS]
#       (defaults /tmp/unmask-moe, "q4_k_m q8_0 bf16", 256, 2; THREADS=N, default nproc)
#
# One step is one forward pass over the whole canvas and the choice of what
# to commit, as in bench/vs_llama_cpp.sh (whose helpers this script shares
# in spirit: `unmask run --reference` ms_per_forward over 3 steps, llama.cpp's
# "time per step"). Memory is the peak resident set of the unmask run
# (GNU time's %M). Needs about 40 GB of disk for the three types.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "error: give the path of an executable llama-diffusion-cli" >&2
    exit 2
fi
CLI=$1
W=${2:-/tmp/unmask-moe}
TYPES=${3:-q4_k_m q8_0 bf16}
N=${4:-256}
R=${5:-2}
STEPS=3
THREADS=${THREADS:-$(nproc)}
PROMPT="Once upon a time"
U=build/unmask
make --no-print-directory -j"$(nproc)" build/unmask >/dev/null

# DIR/bf16 (Hugging Face layout, with the stories tokenizer so that
# llama.cpp can load it) and DIR/TYPE.gguf.
make_model() { # dir type init-random-args...
    local dir=$1 type=$2
    shift 2
    mkdir -p "$dir"
    if [ ! -f "$dir/bf16/model.safetensors" ]; then
        echo "making random weights in $dir/bf16" >&2
        "$U" init-random "$@" --dtype bf16 -o "$dir/bf16" >&2
    fi
    cp models/stories/tokenizer.json models/stories/tokenizer_config.json "$dir/bf16/"
    [ -f "$dir/$type.gguf" ] || "$U" convert "$dir/bf16" -o "$dir/$type.gguf" --type "$type" >&2
}

llama_step_ms() { # model (nothing printed when llama.cpp fails: the caller says so)
    { "$CLI" -m "$1" -p "$PROMPT" -ub "$N" -b "$N" -c "$N" --diffusion-steps $STEPS --diffusion-block-length "$N" \
        -t "$THREADS" --temp 0 2>&1 || true; } |
        tr '\r' '\n' | sed -n 's/^total time: [0-9.]*ms, time per step: \([0-9.]*\)ms.*/\1/p'
}

# "ms_per_forward peak_rss_kib" of a 3-step run over a canvas of N.
unmask_step() { # model
    local p g out
    p=$("$U" tokenize -m "$1" -p "$PROMPT" --ids 2>/dev/null | tr -cd ',' | wc -c)
    g=$((N - p - 1))
    out=$(/usr/bin/time -f 'peak_rss %M' "$U" run -m "$1" -p "$PROMPT" -n $g --steps $STEPS --block-length $g \
        --reference -t "$THREADS" --json 2>&1 | tr -d '\n')
    echo "$(echo "$out" | sed -n 's/.*"ms_per_forward":[[:space:]]*\([0-9.e+-]*\).*/\1/p')" \
        "$(echo "$out" | sed -n 's/.*peak_rss \([0-9]*\).*/\1/p')"
}

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

MOE="--preset llada-moe-7b-a1b"
DENSE="--preset llada-1b --layers 16 --d-model 2048 --heads 16 --ff 8192 --vocab 157184 --mask-id 156895 --eos-id 156892"
echo "| weights | threads | canvas | MoE ms/step | MoE peak RSS | dense ms/step | MoE / dense | llama.cpp MoE ms/step | unmask speedup |"
echo "|---|---|---|---|---|---|---|---|---|"
for type in $TYPES; do
    # shellcheck disable=SC2086
    make_model "$W/moe" "$type" $MOE
    # shellcheck disable=SC2086
    make_model "$W/dense" "$type" $DENSE
    best_m="" best_d="" best_l="" rss=""
    cat "$W/moe/$type.gguf" "$W/dense/$type.gguf" >/dev/null # both from the page cache, not the disk
    for _ in $(seq "$R"); do
        read -r m rss < <(unmask_step "$W/moe/$type.gguf")
        read -r d _ < <(unmask_step "$W/dense/$type.gguf")
        l=$(llama_step_ms "$W/moe/$type.gguf")
        if [ -z "$m" ] || [ -z "$d" ] || [ -z "$l" ]; then
            echo "error: no time from a run on $type (moe '$m', dense '$d', llama.cpp '$l')" >&2
            exit 1
        fi
        best_m=$(min "$best_m" "$m")
        best_d=$(min "$best_d" "$d")
        best_l=$(min "$best_l" "$l")
    done
    awk -v t="$type" -v th="$THREADS" -v n="$N" -v m="$best_m" -v d="$best_d" -v l="$best_l" -v rss="$rss" \
        'BEGIN { printf "| %s | %d | %d | %.0f | %.1f GiB | %.0f | %.2fx | %.0f | %.2fx |\n",
                 toupper(t), th, n, m, rss / 1048576, d, m / d, l, l / m }'
done
