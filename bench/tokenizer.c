/* Tokenizer encoding speed: encodes a text file (repeated to at least
 * --min-mb MB) with a model's tokenizer and prints MB/s, tokens/s and the
 * tokens per byte; then decodes the ids back and checks the round trip.
 *
 *   bench/tokenizer.sh [TOKENIZER] [TEXT]    (builds and runs this)
 *
 * TOKENIZER is anything um_tokenizer_load accepts (a tokenizer.json, a
 * model directory, a GGUF file). The first pass starts with an empty merge
 * cache ("cold"), the later ones reuse it ("warm"); both are reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/sys.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char **argv) {
    const char *tok_path = argc > 1 ? argv[1] : "../shared/fixtures/tokenizers/gpt2-hf/tokenizer.json";
    const char *text_path = argc > 2 ? argv[2] : "../shared/data/tinystories/hf_train_head_2MiB.txt";
    double min_mb = argc > 3 ? atof(argv[3]) : 8.0;
    um_error err;
    um_tokenizer *t;
    double t0 = um_now();
    if (um_tokenizer_load(tok_path, &t, &err) != UM_OK) {
        fprintf(stderr, "bench-tokenizer: %s\n", err.msg);
        return 1;
    }
    double load_s = um_now() - t0;
    char *file;
    size_t n;
    if (um_read_file(text_path, (size_t)1 << 30, &file, &n, &err) != UM_OK || n == 0) {
        fprintf(stderr, "bench-tokenizer: %s\n", n == 0 ? "empty text" : err.msg);
        return 1;
    }
    size_t reps = 1;
    while ((double)(n * reps) < min_mb * 1e6)
        reps++;
    char *text = malloc(n * reps);
    for (size_t i = 0; i < reps; i++)
        memcpy(text + i * n, file, n);
    size_t total = n * reps;
    printf("tokenizer %s (%s, pre %s, %d tokens), loaded in %.2f s\n", tok_path, um_tokenizer_source(t),
           um_tokenizer_pre_name(t), um_tokenizer_n_vocab(t), load_s);
    printf("text %s: %.2f MB (%zu x %.2f MB)\n", text_path, total / 1e6, reps, n / 1e6);
    for (int pass = 0; pass < 3; pass++) {
        int32_t *ids;
        size_t n_ids;
        double a = um_now();
        if (um_tokenizer_encode(t, text, total, false, &ids, &n_ids, &err) != UM_OK) {
            fprintf(stderr, "bench-tokenizer: %s\n", err.msg);
            return 1;
        }
        double s = um_now() - a;
        printf("encode (%s cache): %.3f s, %.2f MB/s, %.0f tokens/s, %.3f tokens/byte\n", pass ? "warm" : "cold", s,
               total / 1e6 / s, n_ids / s, (double)n_ids / total);
        if (pass == 2) {
            char *back;
            size_t bn;
            a = um_now();
            if (um_tokenizer_decode(t, ids, n_ids, false, &back, &bn, &err) != UM_OK) {
                fprintf(stderr, "bench-tokenizer: %s\n", err.msg);
                return 1;
            }
            s = um_now() - a;
            printf("decode: %.3f s, %.2f MB/s, round trip %s\n", s, bn / 1e6 / s,
                   bn == total && memcmp(back, text, total) == 0 ? "exact" : "DIFFERS");
            free(back);
        }
        free(ids);
    }
    free(text);
    free(file);
    um_tokenizer_free(t);
    return 0;
}
