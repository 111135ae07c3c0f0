/* unmask bench: time the forward pass the sampler runs (canvas of prompt +
 * generated positions, logits for the generated ones) and report ms per
 * forward, canvas tokens per second, achieved GFLOP/s and peak memory. */
#include <stdio.h>
#include <stdlib.h>

#include "base/rng.h"
#include "base/sys.h"
#include "cli.h"
#include "model/model.h"

static void bench_usage(void) {
    puts("usage: unmask bench -m MODEL [--prompt-len P] [--gen-len G] [-r REPS] [-t N]\n"
         "\n"
         "Time forward passes over a canvas of P random prompt tokens and G masks, with logits\n"
         "for the G masked positions (what each sampling step computes).\n"
         "\n"
         "  -m, --model PATH    GGUF file or model directory (e.g. from unmask init-random)\n"
         "  --prompt-len P      prompt tokens (default 32)\n"
         "  --gen-len G         masked positions (default 224: a 256-token canvas)\n"
         "  -r, --reps N        timed forward passes after one warm-up (default 3)\n"
         "  -t, --threads N     worker threads (default: all cores)\n"
         "  -h, --help          this help");
}

int cmd_bench(int argc, char **argv) {
    cli_args a;
    const char *model = NULL;
    int prompt_len = 32, gen_len = 224, reps = 3, threads = 0;
    cli_init(&a, "bench", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            bench_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, NULL, "--prompt-len")) prompt_len = cli_int(&a, 0, 1 << 20);
        else if (cli_is(&a, NULL, "--gen-len")) gen_len = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, "-r", "--reps")) reps = cli_int(&a, 1, 1000);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    um_model *m = cli_open_model("bench", model, threads, false);
    if (!m)
        return 1;
    const um_hparams *hp = &m->hp;
    int seq = prompt_len + gen_len;
    int32_t *tokens = malloc((size_t)seq * sizeof *tokens), *sel = malloc((size_t)gen_len * sizeof *sel);
    float *logits = malloc((size_t)gen_len * (size_t)hp->n_vocab * sizeof *logits);
    um_rng rng;
    um_rng_seed(&rng, 1);
    int rc = 0;
    if (!tokens || !sel || !logits) {
        cli_error("bench", "out of memory");
        rc = 1;
        goto done;
    }
    int max_tok = hp->mask_id > 0 ? hp->mask_id : hp->n_vocab;
    for (int i = 0; i < seq; i++)
        tokens[i] = i < prompt_len ? (int32_t)(um_rng_next(&rng) % (uint64_t)max_tok) : hp->mask_id;
    for (int i = 0; i < gen_len; i++)
        sel[i] = prompt_len + i;

    double best = 1e30, sum = 0;
    um_error err;
    for (int r = 0; r <= reps && rc == 0; r++) {
        double t0 = um_now();
        if (um_model_forward(m, tokens, 1, seq, sel, gen_len, logits, &err) != UM_OK) {
            cli_error("bench", "%s", err.msg);
            rc = 1;
            break;
        }
        double dt = um_now() - t0;
        fprintf(stderr, "%s %d: %.1f ms\n", r == 0 ? "warm-up" : "rep", r, dt * 1e3);
        if (r > 0) {
            sum += dt;
            if (dt < best)
                best = dt;
        }
    }
    if (rc == 0) {
        double flops = um_model_forward_flops(m, 1, seq, gen_len);
        size_t peak;
        um_memory_usage(NULL, &peak);
        printf("| model | weights | threads | canvas | ms/forward (best) | ms/forward (mean) | canvas tokens/s | "
               "GFLOP/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
        printf("| %s | %s | %d | %d | %.1f | %.1f | %.0f | %.1f | %.0f |\n", model, m->weight_type,
               um_pool_threads(m->pool), seq, best * 1e3, sum / reps * 1e3, seq / best, flops / best / 1e9,
               (double)peak / 1048576.0);
    }
done:
    free(tokens);
    free(sel);
    free(logits);
    um_model_close(m);
    return rc;
}
