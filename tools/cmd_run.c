/* unmask run: generate with the LLaDA reference sampler or the fast decoders. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void run_usage(void) {
    puts("usage: unmask run -m MODEL --prompt-tokens IDS [options]\n"
         "\n"
         "Generate with the LLaDA reference sampler (ML-GSAI/LLaDA generate.py), or faster with a KV cache\n"
         "and parallel decoders (Fast-dLLM, dInfer). A block ends when it has no mask.\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face directory (config.json + safetensors)\n"
         "      --prompt-tokens IDS  comma-separated prompt token ids, e.g. 12,7,99; ids equal to the\n"
         "                           model's mask id are filled in too (infilling)\n"
         "  -n, --gen-length N       tokens to generate (default 128)\n"
         "      --steps S            forward passes in total (default: gen length)\n"
         "      --block-length B     semi-autoregressive block size (default 32 when it divides N, else N)\n"
         "      --temp T             sampling temperature; 0 = greedy (default 0)\n"
         "      --cfg-scale C        classifier-free guidance scale (default 0: off)\n"
         "      --remasking R        low_confidence (default) or random\n"
         "      --logits-eos-inf     never generate EOS\n"
         "      --confidence-eos-eot-inf  the reference's option: EOT logit -inf in the confidence softmax\n"
         "      --cache MODE         what a step recomputes: none (default), prefix, dual (Fast-dLLM's caches),\n"
         "                           vicinity (the block and --window W positions each side, a full pass\n"
         "                           every --refresh R steps of a block; defaults 16, 0: at its start only)\n"
         "      --decoder D          which masks a step commits: topk (default: the schedule's count),\n"
         "                           threshold (--threshold, 0.9), factor (--factor, 1.0), margin, entropy,\n"
         "                           med (--entropy-bound, 0.3 nats), hierarchical (--threshold,\n"
         "                           --low-threshold 0.4), credit (--threshold)\n"
         "      --schedule S         uniform (default) or power: step i of a block commits 2^i tokens\n"
         "      --eos-rejection      scale EOS confidence by gamma rising from 0.4 to 1 over a block's steps\n"
         "      --early-stop         stop once EOS is committed with no mask before it (rest filled with EOS)\n"
         "      --max-nfe N          stop after N forward passes, leaving the rest masked\n"
         "  -s, --seed N             random seed (default 0)\n"
         "  -t, --threads N          worker threads (default: all cores)\n"
         "      --json               print one JSON object: tokens (prompt included), generated, nfe, timings\n"
         "  -h, --help               this help");
}

static void print_json(const um_generation *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *gen = cJSON_AddArrayToObject(o, "generated");
    for (int i = 0; i < g->n_tokens; i++) {
        cJSON_AddItemToArray(tokens, cJSON_CreateNumber(g->tokens[i]));
        if (i >= g->prompt_len)
            cJSON_AddItemToArray(gen, cJSON_CreateNumber(g->tokens[i]));
    }
    cJSON_AddNumberToObject(o, "prompt_length", g->prompt_len);
    cJSON_AddNumberToObject(o, "nfe", g->nfe);
    cJSON_AddNumberToObject(o, "seconds", g->seconds);
    cJSON_AddNumberToObject(o, "ms_per_forward", g->nfe ? 1e3 * g->forward_seconds / g->nfe : 0);
    cJSON_AddNumberToObject(o, "tokens_per_second", g->seconds > 0 ? (g->n_tokens - g->prompt_len) / g->seconds : 0);
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        puts(s);
    free(s);
    cJSON_Delete(o);
}

static void print_text(const um_generation *g) {
    for (int i = g->prompt_len; i < g->n_tokens; i++)
        printf("%s%d", i > g->prompt_len ? " " : "", g->tokens[i]);
    putchar('\n');
    int gen = g->n_tokens - g->prompt_len;
    fprintf(stderr, "generated %d tokens in %.3f s: %.1f tokens/s | nfe %d, %.2f ms per forward (canvas %d)\n", gen,
            g->seconds, g->seconds > 0 ? gen / g->seconds : 0.0, g->nfe,
            g->nfe ? 1e3 * g->forward_seconds / g->nfe : 0.0, g->n_tokens);
}

/* The value of a flag that names one of n choices; its index, or -1 after an error. */
static int cli_choice(cli_args *a, const char *const *names, int n) {
    const char *flag = a->argv[a->i], *v = cli_value(a);
    for (int i = 0; a->ok && i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    if (a->ok) {
        char list[256] = "";
        for (int i = 0; i < n; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? (i + 1 < n ? ", " : " or ") : "",
                     names[i]);
        cli_error(a->cmd, "%s: expected %s, got '%s'", flag, list, v);
        a->ok = false;
    }
    return -1;
}

int cmd_run(int argc, char **argv) {
    cli_args a;
    um_generate_params p = um_generate_default_params();
    const char *model = NULL, *prompt_text = NULL;
    int threads = 0, steps = -1, block = -1;
    bool json = false;
    p.gen_length = 128;
    cli_init(&a, "run", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            run_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, NULL, "--prompt-tokens")) prompt_text = cli_value(&a);
        else if (cli_is(&a, "-n", "--gen-length")) p.gen_length = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--steps")) steps = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--block-length")) block = cli_int(&a, 1, 1 << 20);
        else if (cli_is(&a, NULL, "--temp")) p.temperature = cli_double(&a, 0, 1e6);
        else if (cli_is(&a, NULL, "--cfg-scale")) p.cfg_scale = cli_double(&a, 0, 1e6);
        else if (cli_is(&a, NULL, "--logits-eos-inf")) p.logits_eos_inf = true;
        else if (cli_is(&a, NULL, "--confidence-eos-eot-inf")) p.confidence_eos_eot_inf = true;
        else if (cli_is(&a, "-s", "--seed")) p.seed = cli_u64(&a);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--json")) json = true;
        else if (cli_is(&a, NULL, "--remasking")) {
            static const char *const names[] = {"low_confidence", "random"};
            p.remasking = (um_remasking)cli_choice(&a, names, 2);
        } else if (cli_is(&a, NULL, "--cache")) {
            static const char *const names[] = {"none", "prefix", "dual", "vicinity"};
            p.cache = (um_cache_mode)cli_choice(&a, names, 4);
        } else if (cli_is(&a, NULL, "--decoder")) {
            static const char *const names[] = {"topk",    "threshold", "factor",       "margin",
                                                "entropy", "med",       "hierarchical", "credit"};
            p.decoder = (um_decoder)cli_choice(&a, names, 8);
        } else if (cli_is(&a, NULL, "--schedule")) {
            static const char *const names[] = {"uniform", "power"};
            p.schedule = (um_schedule)cli_choice(&a, names, 2);
        }
        else if (cli_is(&a, NULL, "--window")) p.cache_window = cli_int(&a, 0, 1 << 20);
        else if (cli_is(&a, NULL, "--refresh")) p.cache_refresh = cli_int(&a, 0, 1 << 20);
        else if (cli_is(&a, NULL, "--threshold")) p.threshold = cli_double(&a, 0, 1);
        else if (cli_is(&a, NULL, "--low-threshold")) p.low_threshold = cli_double(&a, 0, 1);
        else if (cli_is(&a, NULL, "--factor")) p.factor = cli_double(&a, 1e-9, 1e6);
        else if (cli_is(&a, NULL, "--entropy-bound")) p.entropy_bound = cli_double(&a, 1e-9, 1e6);
        else if (cli_is(&a, NULL, "--eos-rejection")) p.eos_rejection = true;
        else if (cli_is(&a, NULL, "--early-stop")) p.early_stop = true;
        else if (cli_is(&a, NULL, "--max-nfe")) p.max_nfe = cli_int(&a, 0, 1 << 30);
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (!prompt_text) {
        cli_error("run", "no prompt: use --prompt-tokens IDS (see unmask run --help)");
        return 2;
    }
    p.steps = steps > 0 ? steps : p.gen_length;
    p.block_length = block > 0 ? block : (p.gen_length % 32 == 0 ? 32 : p.gen_length);

    int32_t *prompt;
    int n_prompt;
    if (!cli_parse_tokens("run", prompt_text, &prompt, &n_prompt))
        return 2;
    um_model *m = cli_open_model("run", model, threads, false);
    if (!m) {
        free(prompt);
        return 1;
    }
    um_generation g;
    um_error err;
    int rc = 0;
    if (um_generate(m, prompt, n_prompt, &p, &g, &err) != UM_OK) {
        cli_error("run", "%s", err.msg);
        rc = 1;
    } else {
        if (json)
            print_json(&g);
        else
            print_text(&g);
        um_generation_free(&g);
    }
    free(prompt);
    um_model_close(m);
    return rc;
}
