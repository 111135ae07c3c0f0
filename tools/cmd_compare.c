/* unmask compare: the logits of two models on the same canvas, compared as
 * llama.cpp's perplexity --kl-divergence does: mean and max KL divergence,
 * top-1 agreement, RMS logit error. The tool for judging a quantization. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/rng.h"
#include "cli.h"
#include "kernels/stats.h"

static void compare_usage(void) {
    puts("usage: unmask compare -m REF_MODEL -m TEST_MODEL [--prompt-len P] [--gen-len G] [-s SEED] [--json]\n"
         "\n"
         "Run both models over the same canvas (P random prompt tokens, then G masks) and compare\n"
         "the logits of every position: mean and max KL(ref || test), top-1 agreement and RMS error.\n"
         "\n"
         "  -m, --model PATH    reference model, then the model under test (directory or GGUF)\n"
         "  --prompt-len P      random prompt tokens (default 96)\n"
         "  --gen-len G         masked positions (default 32)\n"
         "  -s, --seed N        seed for the random prompt (default 0)\n"
         "  -t, --threads N     worker threads (default: one per physical core)\n"
         "  --json              one JSON object on stdout\n"
         "  -h, --help          this help");
}

/* One forward over canvas[seq]; logits for every position, NULL on failure. */
static float *forward_all(um_model *m, const char *path, const int32_t *canvas, int seq) {
    um_model_info info;
    um_model_get_info(m, &info);
    um_context *ctx = cli_open_context("compare", m);
    float *logits = ctx ? malloc((size_t)seq * (size_t)info.n_vocab * sizeof *logits) : NULL;
    um_error err;
    if (ctx && !logits) {
        cli_error("compare", "out of memory for %d x %d logits", seq, info.n_vocab);
    } else if (logits && um_forward(ctx, canvas, 1, seq, logits, &err) != UM_OK) {
        cli_error("compare", "%s: %s", path, err.msg);
        free(logits);
        logits = NULL;
    }
    um_context_free(ctx);
    return logits;
}

/* The canvas: random prompt tokens below the mask id (LLaDA vocabularies keep
 * their special tokens at the top), then masks. */
static int32_t *make_canvas(const um_model_info *info, int prompt_len, int gen_len, uint64_t seed) {
    int32_t *canvas = malloc((size_t)(prompt_len + gen_len) * sizeof *canvas);
    um_rng rng;
    um_rng_seed(&rng, seed);
    uint64_t range = (uint64_t)(info->mask_id > 0 ? info->mask_id : info->n_vocab);
    for (int i = 0; canvas && i < prompt_len + gen_len; i++)
        canvas[i] = i < prompt_len ? (int32_t)(um_rng_next(&rng) % range) : info->mask_id;
    return canvas;
}

static void print_stats(const um_logit_stats *st, bool json) {
    if (!json) {
        printf("positions %lld | mean KL %.6f | max KL %.6f | top-1 agreement %.2f%% | RMS logit error %.5f\n",
               (long long)st->rows, st->mean_kl, st->max_kl, 100.0 * st->top1, st->rms_error);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "positions", (double)st->rows);
    cJSON_AddNumberToObject(o, "mean_kl", st->mean_kl);
    cJSON_AddNumberToObject(o, "max_kl", st->max_kl);
    cJSON_AddNumberToObject(o, "top1_agreement", st->top1);
    cJSON_AddNumberToObject(o, "rms_logit_error", st->rms_error);
    cli_print_json(o);
}

int cmd_compare(int argc, char **argv) {
    cli_args a;
    const char *models[2] = {NULL, NULL};
    int n_models = 0, prompt_len = 96, gen_len = 32, threads = 0;
    uint64_t seed = 0;
    bool json = false;
    cli_init(&a, "compare", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            compare_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) {
            const char *v = cli_value(&a);
            if (a.ok && n_models == 2) {
                cli_error("compare", "give exactly two models");
                a.ok = false;
            } else if (a.ok) models[n_models++] = v;
        } else if (cli_is(&a, NULL, "--prompt-len")) prompt_len = cli_int(&a, 0, 1 << 16);
        else if (cli_is(&a, NULL, "--gen-len")) gen_len = cli_int(&a, 0, 1 << 16);
        else if (cli_is(&a, "-s", "--seed")) seed = cli_u64(&a);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--json")) json = true;
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (n_models != 2 || prompt_len + gen_len < 1) {
        cli_error("compare", "need -m REF -m TEST and a non-empty canvas (see unmask compare --help)");
        return 2;
    }
    int seq = prompt_len + gen_len, rc = 1;
    int32_t *canvas = NULL;
    float *ref = NULL, *test = NULL;
    um_model_info ref_info, test_info;
    um_model *m = cli_open_model("compare", models[0], threads, CLI_MODEL_NO_REPACK);
    if (m) {
        um_model_get_info(m, &ref_info);
        canvas = make_canvas(&ref_info, prompt_len, gen_len, seed);
        ref = canvas ? forward_all(m, models[0], canvas, seq) : NULL;
        um_model_close(m);
    }
    m = ref ? cli_open_model("compare", models[1], threads, CLI_MODEL_NO_REPACK) : NULL;
    if (m) {
        um_model_get_info(m, &test_info);
        if (test_info.n_vocab != ref_info.n_vocab || test_info.mask_id != ref_info.mask_id)
            cli_error("compare", "the models differ in vocabulary (%d vs %d) or mask id (%d vs %d)",
                      ref_info.n_vocab, test_info.n_vocab, ref_info.mask_id, test_info.mask_id);
        else
            test = forward_all(m, models[1], canvas, seq);
        um_model_close(m);
    }
    if (ref && test) {
        um_logit_stats st;
        um_compare_logits(ref, test, seq, ref_info.n_vocab, &st);
        print_stats(&st, json);
        rc = 0;
    }
    free(canvas);
    free(ref);
    free(test);
    return rc;
}
