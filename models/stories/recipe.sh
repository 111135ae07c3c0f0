#!/bin/sh
# Rebuilds models/stories, the default model of `unmask run`, from the
# TinyStories text in ../shared/data (see prepare_data.py): a byte-level BPE
# of 2048 tokens, then a 2.6M-parameter LLaDA trained from random weights with
# the masked-diffusion objective. Deterministic: the same commands give the
# same bytes on any machine with the same kernel path (UNMASK_KERNEL).
#
#   sh models/stories/recipe.sh [OUT_DIR]     (from the repository root, after make)
#
# The run takes about two hours and ten minutes on two cores. Work files and the checkpoint
# with optimizer state (for --resume) stay in $WORK.
set -eu
UNMASK=${UNMASK:-build/unmask}
DATA=${DATA:-../shared/data/tinystories}
OUT=${1:-models/stories}
WORK=${WORK:-build/recipe-stories}
STEPS1=${STEPS1:-1500}
STEPS2=${STEPS2:-7000}
STEPS3=${STEPS3:-600}

mkdir -p "$WORK/tok" "$OUT"
python3 models/stories/prepare_data.py "$DATA" "$WORK"
"$UNMASK" train-tokenizer -q -o "$WORK/tok/tokenizer.json" --vocab-size 2048 "$WORK/train.txt"
# ids: 0..255 bytes, 256..2045 merges, 2046 <|endoftext|>, 2047 <|mdm_mask|>
"$UNMASK" init-random --layers 4 --d-model 192 --heads 4 --ff 512 --vocab 2048 --eos-id 2046 --mask-id 2047 \
    --max-seq 1024 --dtype f32 --std 0.02 --seed 1 -o "$WORK/init"
# Three phases. Rows of 64 tokens first: attention starts out uniform, and over
# 64 positions a neighbour's share of it is four times that over 256, so the
# model leaves the unigram plateau (5.97 nats) sooner. Then rows of 256 from
# those weights (fresh optimizer state, a short warm-up), so that it writes
# and reads stories at the canvas lengths `unmask run` uses.
"$UNMASK" train -m "$WORK/init" --tokenizer "$WORK/tok/tokenizer.json" --data "$WORK/train.txt" \
    --val "$WORK/val.txt" --seq-len 64 --batch 64 --steps "$STEPS1" --lr 3e-3 --warmup 100 \
    --weight-decay 0.1 --clip 1 --seed 1 --eval-every 250 --save-every 250 -o "$WORK/phase1"
"$UNMASK" train -m "$WORK/phase1" --tokenizer "$WORK/tok/tokenizer.json" --data "$WORK/train.txt" \
    --val "$WORK/val.txt" --seq-len 256 --batch 16 --steps "$STEPS2" --lr 1e-3 --warmup 50 \
    --weight-decay 0.1 --clip 1 --seed 2 --eval-every 500 --save-every 500 -o "$WORK/phase2"
# Rows of 64 again, a quarter of the micro-batches cut to random lengths
# (LLaDA's guidelines cut 1%). After phase 2 alone, greedy decoding after a
# short prompt ("Tom and his dog", -n 64: a canvas of 68) wrote runs of full
# stops: the model had only seen canvases of 256 and its predictions next to
# a committed token had gone vague. This phase costs 0.02 nats of ELBO.
"$UNMASK" train -m "$WORK/phase2" --tokenizer "$WORK/tok/tokenizer.json" --data "$WORK/train.txt" \
    --val "$WORK/val.txt" --seq-len 64 --batch 64 --random-length 0.25 --steps "$STEPS3" --lr 5e-4 --warmup 30 \
    --weight-decay 0.1 --clip 1 --seed 3 --eval-every 300 -o "$WORK/checkpoint"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do
    cp "$WORK/checkpoint/$f" "$OUT/$f"
done
cp "$WORK/val.txt" "$OUT/val.txt"
"$UNMASK" eval -m "$OUT" --text "$OUT/val.txt" --samples 8
echo "recipe: wrote $OUT"
