/* Learning a byte-level BPE tokenizer from text (`unmask train-tokenizer`).
 *
 * The result is the merges Hugging Face's `tokenizers` BpeTrainer learns with
 * a ByteLevel pre-tokenizer (GPT-2 split regex, no prefix space), the 256
 * byte characters as its initial alphabet and the same min_frequency, merge
 * for merge:
 *
 *   1. the text is cut at the separator and at every special token (they
 *      never take part in merges, as the encoder matches them first), each
 *      piece between them is split with the GPT-2 regex, and the words
 *      (byte strings) are counted;
 *   2. each word starts as its bytes, numbered as GPT-2 numbers them (ids
 *      0..255 in the order of the characters bytes_to_unicode maps them to);
 *   3. repeatedly, the adjacent pair with the highest count is merged into a
 *      new token; ties go to the smallest (left id, right id), the order of
 *      Hugging Face's trainer. A merge whose result already is a token
 *      reuses its id. Pair counts are updated incrementally: only the words
 *      holding the merged pair are visited, and a max-heap with lazy
 *      re-insertion finds the next best pair.
 *
 * The vocabulary is bytes (0..255), then merged tokens in the order they were
 * made, then the special tokens; learning stops when it holds vocab_size
 * tokens or no pair occurs min_frequency times.
 */
#ifndef UM_TOKENIZER_BPE_TRAIN_H
#define UM_TOKENIZER_BPE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

typedef struct {
    int32_t vocab_size;           /* bytes + merged tokens + specials; at least 256 + n_specials */
    const char *const *specials;  /* added tokens at the end of the vocabulary, in this order */
    int n_specials;
    const char *separator;        /* document separator: the text is cut at it and it is dropped
                                     (NULL or "": none) */
    int64_t min_frequency;        /* a pair seen fewer times is never merged (0 or 1: any) */
    FILE *progress;               /* progress lines go here; NULL: quiet */
} um_bpe_train_opts;

typedef struct um_bpe_trainer um_bpe_trainer;

/* Checks the options (vocab_size too small, empty or repeated specials are
 * UM_ERR_ARG) and copies what it needs from them. */
um_status um_bpe_trainer_new(const um_bpe_train_opts *opts, um_bpe_trainer **out, um_error *err);
void um_bpe_trainer_free(um_bpe_trainer *t);

/* Counts the words of len bytes of text (any bytes: invalid UTF-8 becomes
 * words of its own, as the encoder treats it). May be called once per file. */
um_status um_bpe_trainer_feed(um_bpe_trainer *t, const char *text, size_t len, um_error *err);

/* Learns the merges from everything fed. A corpus without a single word is
 * UM_ERR_ARG. Call once. */
um_status um_bpe_trainer_learn(um_bpe_trainer *t, um_error *err);

/* What was learned: words counted (all and distinct), merges and vocabulary size. */
typedef struct {
    size_t n_words, n_distinct_words, n_merges;
    int32_t n_vocab;
    int64_t last_count; /* the count of the last merged pair */
} um_bpe_train_stats;
void um_bpe_trainer_stats(const um_bpe_trainer *t, um_bpe_train_stats *s);

/* Writes the Hugging Face tokenizer.json (model BPE with vocab and merges,
 * ByteLevel pre-tokenizer, post-processor and decoder, the specials as special
 * added tokens). */
um_status um_bpe_trainer_write_json(const um_bpe_trainer *t, const char *path, um_error *err);

/* Writes a tokenizer_config.json naming eos_token (the first special that is
 * not a mask token), pad_token (the same) and mask_token (<|mdm_mask|> or
 * <|mask|>, when among the specials), so that the loader finds them. */
um_status um_bpe_trainer_write_config(const um_bpe_trainer *t, const char *path, um_error *err);

#endif
