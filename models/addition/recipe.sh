#!/bin/sh
# Rebuilds models/addition: 4-digit addition ("0042+1234=" -> "01276") learned
# by SFT from random weights. make_data.py writes 200,000 training problems
# and the 1,000 held-out test problems committed beside this script (same
# seed, same file); the tokenizer is bytes only (no merges), so every digit
# is a token. Deterministic like models/stories/recipe.sh.
#
#   sh models/addition/recipe.sh [OUT_DIR]     (from the repository root, after make)
#
# About ten minutes on two cores.
set -eu
UNMASK=${UNMASK:-build/unmask}
OUT=${1:-models/addition}
WORK=${WORK:-build/recipe-addition}
STEPS=${STEPS:-3000}

mkdir -p "$WORK/tok" "$OUT"
python3 models/addition/make_data.py "$WORK"
# 256 byte tokens, 256 <|endoftext|>, 257 <|mdm_mask|>
"$UNMASK" train-tokenizer -q -o "$WORK/tok/tokenizer.json" --vocab-size 258 "$WORK/train.jsonl"
"$UNMASK" init-random --layers 4 --d-model 128 --heads 4 --ff 384 --vocab 258 --eos-id 256 --mask-id 257 \
    --max-seq 64 --dtype f32 --std 0.02 --seed 1 -o "$WORK/init"
"$UNMASK" train -m "$WORK/init" --tokenizer "$WORK/tok/tokenizer.json" --sft "$WORK/train.jsonl" \
    --seq-len 16 --batch 64 --steps "$STEPS" --lr 1e-3 --warmup 100 --weight-decay 0.1 --clip 1 --seed 1 \
    --save-every 500 -o "$WORK/checkpoint"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    cp "$WORK/checkpoint/$f" "$OUT/$f"
done
cp "$WORK/test.jsonl" "$OUT/test.jsonl"
"$UNMASK" eval -m "$OUT" --tasks "$OUT/test.jsonl" -n 6 --block-length 6
echo "recipe: wrote $OUT"
