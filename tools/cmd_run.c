/* unmask run: generate with the LLaDA reference sampler or the fast decoders. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "run_batch.h"
#include "text.h"
#include "visual.h"

static void run_usage(void) {
    puts("usage: unmask run -m MODEL (-p TEXT | -f FILE | --infill TEMPLATE | --prompt-tokens IDS) [options]\n"
         "       unmask run -m MODEL --batch FILE.jsonl [--parallel N] [options]\n"
         "\n"
         "Generate with a KV cache and parallel decoding (by default Fast-dLLM's dual cache and threshold\n"
         "decoding at 0.9), or with the LLaDA reference sampler (ML-GSAI/LLaDA generate.py: --reference).\n"
         "A block ends when it has no mask.\n"
         "\n"
         "  -m, --model PATH         GGUF file or Hugging Face directory (config.json + safetensors);\n"
         "                           default: $UNMASK_MODEL, else the shipped models/stories\n"
         "  -p, --prompt TEXT        the prompt as text (special tokens such as <|mdm_mask|> may be written in it)\n"
         "  -f, --file FILE          read the prompt from a file\n"
         "      --chat, -cnv         wrap the prompt in the model's chat template as a user turn\n"
         "      --system TEXT        a system message for --chat\n"
         "      --chat-template NAME override the chat format: " UM_CHAT_TEMPLATE_NAMES "\n"
         "      --infill TEMPLATE    fill the blanks of a text: {mask:N} stands for N masks, {mask} for one;\n"
         "                           -n defaults to 0 (nothing appended) and steps to the number of masks\n"
         "      --prompt-tokens IDS  the prompt as comma-separated token ids, e.g. 12,7,99; ids equal to the\n"
         "                           model's mask id are filled in too (infilling)\n"
         "      --visual             watch the canvas unmask step by step (when stdout is a terminal)\n"
         "      --batch FILE.jsonl   one request per line: a JSON object whose keys are this command's long\n"
         "                           flags with '_' for '-' (\"prompt\" text or \"prompt_tokens\" ids, \"gen_length\",\n"
         "                           \"temp\", \"seed\", \"cache\", ...; \"chat\": true, \"system\"); the command line's\n"
         "                           flags are the defaults. Prints one JSON line per request (the fields of\n"
         "                           --json), in input order. Each step runs every live request in one forward\n"
         "                           pass; a request's output is the same as when run alone\n"
         "      --parallel N         --batch: at most N requests live at once (default: all); each live request\n"
         "                           holds its canvas and, with a cache, K/V of every layer and position\n"
         "  -n, --gen-length N       tokens to generate (default 128)\n"
         "      --steps S            forward passes in total, split over the blocks (default: gen length); the\n"
         "                           threshold-type decoders fill each block until done (--max-nfe bounds them)\n"
         "      --block-length B     semi-autoregressive block size (default: the largest divisor of N up to 32,\n"
         "                           at least 8, else N: 32 for 128, 25 for 100, 37 for 37)\n"
         "      --temp T             sampling temperature; 0 = greedy (default 0)\n"
         "      --cfg-scale C        classifier-free guidance scale (default 0: off)\n"
         "      --remasking R        low_confidence (default) or random\n"
         "      --logits-eos-inf     never generate EOS\n"
         "      --confidence-eos-eot-inf  the reference's option: EOT logit -inf in the confidence softmax\n"
         "      --reference          the reference sampler: --cache none --decoder topk (one forward pass over\n"
         "                           the whole canvas per step, the schedule's count committed per step)\n"
         "      --cache MODE         what a step recomputes: none, prefix, dual (default; Fast-dLLM's caches),\n"
         "                           vicinity (the block and --window W positions each side, a full pass\n"
         "                           every --refresh R steps of a block; defaults 16, 0: at its start only)\n"
         "      --prefix-look N      vicinity: N positions before the block instead of --window's\n"
         "      --after-look N       vicinity: N positions after the block instead of --window's\n"
         "      --decoder D          which masks a step commits: topk (the schedule's count), threshold\n"
         "                           (default; --threshold, 0.9), factor (--factor, 1.0), margin, entropy,\n"
         "                           med (--entropy-bound, 0.3 nats), hierarchical (--threshold,\n"
         "                           --low-threshold 0.4), credit (--threshold; --credit-alpha 0.7 logit\n"
         "                           boost, --credit-gamma 0.2 exponent, --credit-decay 0.8 per step), origin\n"
         "                           (Dream's: each mask with probability 1 - t[i+1]/t[i] of the timesteps grid,\n"
         "                           drawn from -s's streams, not torch's)\n"
         "      --schedule S         uniform (default), power (step i of a block commits 2^i tokens), timesteps\n"
         "                           (Dream's: t = linspace(1, --eps, steps + 1), step i of n masks left commits\n"
         "                           int(n (1 - t[i+1]/t[i])), the last all; --eps defaults to 1e-3) or quota\n"
         "                           (Fast-dLLM's Dream threshold decoding, no cache: step i ranks only N/steps\n"
         "                           plus what earlier steps deferred; steps go on past --steps until all is done)\n"
         "      --top-k K            choose and score tokens among the K largest logits only (0: all, the default;\n"
         "                           at most 1024)\n"
         "      --top-p P            ... among the most probable tokens holding mass P only, before --top-k (the\n"
         "                           probabilities of the logits over --temp when > 0, as Dream's; default 1: all)\n"
         "      --min-p P            ... and among tokens at least P times as probable as the most probable one\n"
         "                           (after --top-k, as llama.cpp's min_p; default 0: all)\n"
         "      --alg-temp T         Dream's alg_temp: topk, margin and entropy sample their positions from\n"
         "                           softmax(confidence / T) instead of taking the most confident (0: off)\n"
         "      --eos-rejection      scale EOS confidence by gamma rising from 0.4 to 1 over a block's steps\n"
         "      --eos-gamma G        --eos-rejection starting from gamma G instead of 0.4\n"
         "      --early-stop         stop once EOS is committed with no mask before it (rest filled with EOS)\n"
         "      --max-nfe N          stop after N forward passes, leaving the rest masked\n"
         "      --loop L             steps (default: LLaDA's and Fast-dLLM's loop, --steps over the blocks),\n"
         "                           blocks (block diffusion, block-causal models' only loop: see below) or\n"
         "                           dinfer (inclusionAI/dInfer's BlockRunner: --steps unused; each block runs\n"
         "                           max(min(masks / --expected-tpf, --maximum-unroll), 1) iterations before its\n"
         "                           masks are counted again, so passes that commit nothing count; a cache\n"
         "                           refresh adds a pass at each block's first iteration; decoders threshold,\n"
         "                           credit, hierarchical, never committing the mask id and committing all\n"
         "                           within 1e-5 of the best; a block holding EOS ends the generation, and with\n"
         "                           --early-stop every later position becomes EOS)\n"
         "      --maximum-unroll N   dinfer: iterations before a block's masks are counted again, at most (4)\n"
         "      --expected-tpf N     dinfer: ... and masks / N of them when fewer (8)\n"
         "      --start-block-align  dinfer: the first block starts at floor(prompt / B) * B, over the prompt\n"
         "      --warmup-steps N     dinfer, vicinity: the first N passes run the whole canvas without the cache\n"
         "      --iter-smooth        dinfer: IterSmooth, soft inputs: after each pass every mask it computed gets\n"
         "                           embed(mask) + w softmax(logits) @ W_embed, w = min(--cont-weight-init 0.15 +\n"
         "                           --cont-weight-growth 0.02 * i, --cont-weight 0.3) at pass i; the threshold\n"
         "                           is max(1 - --threshold-decay 0.02 * i, --threshold) (keeps the embedding\n"
         "                           table in f32: n_vocab * d_model floats)\n"
         "      --minimal-topk K     blocks: steps per block at most gen length / K (LLaDA2's; default 1)\n"
         "  -s, --seed N             random seed (default 0)\n"
         "Dream models (logits shifted by one position) default to Dream's diffusion_generate: --cache none, one\n"
         "block, --schedule timesteps, --decoder entropy (its alg=entropy; its maskgit_plus is topk, topk_margin\n"
         "margin, origin origin) and --top-k 50 (the top-k its users get from transformers' generation defaults).\n"
         "With --decoder threshold (alg=confidence_threshold) and no cache, Fast-dLLM's quota schedule; with --cache\n"
         "prefix or dual, Fast-dLLM's block mode (blocks of 32; each block's full pass commits its first position)\n"
         "LLaDA2 models (block-causal attention) run block diffusion as their generate(): whole blocks of the\n"
         "model's length (32) from position 0, --steps per block (default: the block length), each step one\n"
         "forward of the block against the exact K/V of the finished blocks (no --cache), --decoder threshold at\n"
         "0.95: every mask above it when there are at least the step's count of them, else the count best (topk,\n"
         "margin, entropy: the count). The generation ends after a block holding EOS (--early-stop: as soon as an\n"
         "EOS has no mask before it) and is cut after its first EOS.\n"
         "  -t, --threads N          worker threads (default: one per physical core)\n"
         CLI_NO_REPACK_HELP
         "  -c, --ctx-size N         the longest canvas, prompt + -n: a longer one is refused (default 0: the\n"
         "                           model's context)\n"
         "      --json               print one JSON object: tokens (prompt included), generated, nfe, timings\n"
         "                           (step_ms: each step's), and text for text prompts\n"
         "  -q, --quiet              no progress line (shown on a terminal only, never with --json)\n"
         "\n"
         "Ctrl-C stops the generation at its next step and prints what was committed up to the first\n"
         "mask (exit status 130); a second Ctrl-C exits at once.\n"
         "\n"
         "llama-diffusion-cli's names work too: --diffusion-steps, --diffusion-block-length, --n-predict, -c,\n"
         "--diffusion-visual, and --diffusion-algorithm N (0 origin, 1 entropy, 2 margin, 3 random positions,\n"
         "4 confidence: --decoder origin, entropy, margin, topk --remasking random, topk).\n"
         "  -h, --help               this help");
}

static void print_text(const um_generation *g, const char *text) {
    if (text) {
        fputs(text, stdout);
        putchar('\n');
    } else {
        for (int i = g->prompt_len; i < g->n_tokens; i++)
            printf("%s%d", i > g->prompt_len ? " " : "", g->tokens[i]);
        putchar('\n');
    }
    /* what was committed (infilled masks included), not the canvas's length: a stopped run commits fewer */
    int gen = g->n_committed;
    fprintf(stderr, "generated %d tokens in %.3f s: %.1f tokens/s | nfe %d, %.2f ms per forward (canvas %d)\n", gen,
            g->seconds, g->seconds > 0 ? gen / g->seconds : 0.0, g->nfe,
            g->nfe ? 1e3 * g->forward_seconds / g->nfe : 0.0, g->n_tokens);
}

/* What a text prompt needs: where it comes from and how to wrap it. */
typedef struct {
    const char *text, *file, *infill, *system, *template_name;
    bool chat, visual;
    cli_text t;
} run_text;

/* Tokenizes the text prompt (raw, chat or infill) with the model's tokenizer. */
static bool run_text_prompt(run_text *rt, um_model *m, const char *model_path, int32_t **ids, int *n) {
    if (!cli_text_open(&rt->t, "run", model_path, rt->template_name))
        return false;
    um_model_info info;
    um_model_get_info(m, &info);
    if (rt->infill)
        return cli_text_prompt_infill(&rt->t, rt->infill, info.mask_id, ids, n);
    char *file_text = rt->file ? cli_text_read_file("run", rt->file) : NULL;
    const char *text = rt->file ? file_text : rt->text;
    bool ok = text != NULL;
    if (ok && rt->chat) {
        um_chat_message msgs[2];
        int n_msgs = 0;
        if (rt->system)
            msgs[n_msgs++] = (um_chat_message){"system", rt->system};
        msgs[n_msgs++] = (um_chat_message){"user", text};
        ok = cli_text_prompt_chat(&rt->t, msgs, n_msgs, ids, n);
    } else if (ok) {
        ok = cli_text_prompt_raw(&rt->t, text, ids, n);
    }
    free(file_text);
    return ok;
}

static int count_masks(const int32_t *ids, int n, int mask_id) {
    int k = 0;
    for (int i = 0; i < n; i++)
        k += ids[i] == mask_id;
    return k;
}

/* ---- progress and Ctrl-C ---- */

/* A progress line on stderr (a terminal only) after each step, at most ten a second. */
typedef struct {
    int mask_id, masks0;
    double t0, last;
} progress;

static int progress_step(const um_step_info *info, void *user) {
    progress *pr = user;
    double now = um_now();
    if (now - pr->last < 0.1)
        return 0;
    pr->last = now;
    int left = 0;
    for (int i = 0; i < info->canvas_len; i++)
        left += info->canvas[i] == pr->mask_id;
    double rate = (pr->masks0 - left) / (now - pr->t0 > 0 ? now - pr->t0 : 1e-9);
    fprintf(stderr, "\rstep %d | %d masks left | nfe %d | %.1f tokens/s | ETA %.1f s\033[K", info->step + 1, left,
            info->step + 1, rate, rate > 0 ? left / rate : 0.0);
    return 0;
}

/* --json's step_ms: each step's wall time, from the end of the step before. */
typedef struct {
    double last, *ms;
    int n, cap;
} step_times;

static int time_step(const um_step_info *info, void *user) {
    step_times *st = user;
    double now = um_now();
    if (st->n == st->cap) {
        double *ms = realloc(st->ms, (size_t)(st->cap = st->cap ? 2 * st->cap : 256) * sizeof *ms);
        if (!ms)
            return 0; /* the timings stop; the generation goes on */
        st->ms = ms;
    }
    st->ms[st->n++] = 1e3 * (now - st->last);
    st->last = now;
    return 0;
}

/* What an interrupted run prints: the text or ids committed before the first
 * mask (the rest left out), and a line saying so. */
static void print_interrupted(const um_generation *g, run_text *rt, int mask_id) {
    int end = g->prompt_len;
    while (end < g->n_tokens && g->tokens[end] != mask_id)
        end++;
    char *text = rt ? cli_text_answer(&rt->t, g->tokens + g->prompt_len, end - g->prompt_len) : NULL;
    if (text)
        printf("%s\n", text);
    for (int i = g->prompt_len; !rt && i < end; i++)
        printf("%s%d", i > g->prompt_len ? " " : "", g->tokens[i]);
    if (!rt)
        putchar('\n');
    free(text);
    fprintf(stderr, "interrupted after %d forwards: %d tokens committed; shown up to the first mask\n", g->nfe,
            g->n_committed);
}

/* Generates, then prints ids or text (the answer cut at EOS/EOT; for infill
 * the whole filled-in text). */
static int generate_and_print(um_context *ctx, um_generate_params *p, const int32_t *prompt, int n_prompt, run_text *rt,
                              bool json, bool quiet) {
    um_model_info info;
    um_model_get_info(um_context_model(ctx), &info);
    if (p->steps <= 0) /* by default one step per token to fill */
        p->steps = p->gen_length > 0 ? p->gen_length : count_masks(prompt, n_prompt, info.mask_id);
    cli_visual view;
    progress pr = {info.mask_id, count_masks(prompt, n_prompt, info.mask_id) + p->gen_length, um_now(), 0};
    if (rt && rt->visual && cli_visual_begin(&view, &rt->t, info.mask_id)) {
        p->on_step = cli_visual_step;
        p->user_data = &view;
    } else if (!quiet && !json && isatty(STDERR_FILENO)) {
        p->on_step = progress_step;
        p->user_data = &pr;
    }
    step_times times = {um_now(), NULL, 0, 0};
    if (json) {
        p->on_step = time_step;
        p->user_data = &times;
    }
    um_generation g;
    um_error err;
    bool interrupted;
    um_status s = cli_generate(ctx, prompt, n_prompt, p, &g, &interrupted, &err);
    if (p->on_step == cli_visual_step)
        cli_visual_end(&view);
    else if (p->on_step == progress_step)
        fputs("\r\033[K", stderr);
    if (interrupted) {
        print_interrupted(&g, rt, info.mask_id);
        um_generation_free(&g);
        return 130;
    }
    if (s != UM_OK) {
        cli_error("run", "%s", err.msg);
        return s == UM_ERR_ARG ? 2 : 1; /* settings that do not fit together are bad usage */
    }
    char *text = NULL;
    if (rt) {
        text = rt->infill ? cli_text_answer_all(&rt->t, g.tokens, g.n_tokens)
                          : cli_text_answer(&rt->t, g.tokens + g.prompt_len, g.n_tokens - g.prompt_len);
        if (!text) {
            um_generation_free(&g);
            return 1;
        }
    }
    if (json) {
        cJSON *o = cli_generation_json(&g, text);
        cJSON *ms = cJSON_AddArrayToObject(o, "step_ms");
        for (int i = 0; i < times.n; i++)
            cJSON_AddItemToArray(ms, cJSON_CreateNumber(round(times.ms[i] * 1e3) / 1e3));
        cli_print_json(o);
    } else {
        print_text(&g, text);
    }
    free(times.ms);
    free(text);
    um_generation_free(&g);
    return 0;
}

/* run --batch: the prompts come from the file. */
static int run_batch_command(const char *batch, int parallel, int sources, const char *model, int threads,
                             unsigned model_flags, const cli_gen_flags *gf, bool single_flags) {
    if (!batch) {
        cli_error("run", "--parallel applies to --batch");
        return 2;
    }
    if (sources > 0 || single_flags) {
        cli_error("run", "--batch takes its prompts from the file: no -p, -f, --infill, --prompt-tokens, --chat, "
                         "--visual or --json (its output is JSON lines)");
        return 2;
    }
    char default_path[4096];
    model = cli_model_path(model, default_path, sizeof default_path);
    um_model *m = cli_open_model("run", model, threads, model_flags);
    um_context *ctx = m ? cli_open_context("run", m) : NULL;
    int rc = ctx ? run_batch(ctx, batch, gf, parallel, model) : 1;
    um_context_free(ctx);
    um_model_close(m);
    return rc;
}

int cmd_run(int argc, char **argv) {
    cli_args a;
    um_generate_params p = cli_generate_defaults();
    const char *model = NULL, *prompt_text = NULL;
    run_text rt = {0};
    const char *batch = NULL;
    int threads = 0, parallel = 0, ctx_size = 0;
    unsigned model_flags = 0;
    bool json = false, quiet = false;
    cli_gen_flags gf = {.p = &p, .gen_length = -1, .steps = -1, .block = -1};
    cli_init(&a, "run", argc, argv);
    while (cli_next(&a)) {
        if (cli_is(&a, "-h", "--help")) {
            run_usage();
            return 0;
        } else if (cli_is(&a, "-m", "--model")) model = cli_value(&a);
        else if (cli_is(&a, NULL, "--prompt-tokens")) prompt_text = cli_value(&a);
        else if (cli_is(&a, "-p", "--prompt")) rt.text = cli_value(&a);
        else if (cli_is(&a, "-f", "--file")) rt.file = cli_value(&a);
        else if (cli_is(&a, "-cnv", "--chat")) rt.chat = true;
        else if (cli_is(&a, NULL, "--system")) rt.system = cli_value(&a);
        else if (cli_is(&a, NULL, "--chat-template")) rt.template_name = cli_value(&a);
        else if (cli_is(&a, NULL, "--infill")) rt.infill = cli_value(&a);
        else if (cli_is(&a, NULL, "--visual") || cli_is(&a, NULL, "--diffusion-visual")) rt.visual = true;
        else if (cli_is(&a, NULL, "--batch")) batch = cli_value(&a);
        else if (cli_is(&a, NULL, "--parallel")) parallel = cli_int(&a, 1, 1 << 16);
        else if (cli_is(&a, "-t", "--threads")) threads = cli_int(&a, 1, 1024);
        else if (cli_is(&a, NULL, "--no-repack")) model_flags |= CLI_MODEL_NO_REPACK;
        else if (cli_is(&a, "-c", "--ctx-size")) ctx_size = cli_int(&a, 0, 1 << 24);
        else if (cli_is(&a, NULL, "--json")) json = true;
        else if (cli_is(&a, "-q", "--quiet")) quiet = true;
        else if (!cli_generation_flag(&a, &gf))
cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    int sources = (prompt_text != NULL) + (rt.text != NULL) + (rt.file != NULL) + (rt.infill != NULL);
    if (batch || parallel)
        return run_batch_command(batch, parallel, sources, model, threads, model_flags, &gf, json || rt.visual || rt.chat);
    if (sources != 1) {
        cli_error("run", "%s: give one of -p TEXT, -f FILE, --infill TEMPLATE or --prompt-tokens IDS",
                  sources ? "more than one prompt" : "no prompt");
        return 2;
    }
    if (rt.chat && !(rt.text || rt.file)) {
        cli_error("run", "--chat applies to -p or -f prompts");
        return 2;
    }
    cli_generation_finish(&gf, rt.infill ? 0 : 128); /* steps: filled in once the prompt is known */

    int32_t *prompt = NULL;
    int n_prompt = 0;
    if (prompt_text && !cli_parse_tokens("run", prompt_text, &prompt, &n_prompt))
        return 2;
    char default_path[4096];
    model = cli_model_path(model, default_path, sizeof default_path);
    um_model *m = cli_open_model("run", model, threads, model_flags);
    um_context *ctx = m ? cli_open_context("run", m) : NULL;
    int rc = ctx ? 0 : 1;
    if (m)
        cli_generation_for_model(&gf, m);
    bool text_mode = !prompt_text;
    if (rc == 0 && text_mode)
        rc = run_text_prompt(&rt, m, model, &prompt, &n_prompt) ? 0 : 1;
    if (rc == 0 && ctx_size > 0 && (int64_t)n_prompt + p.gen_length > ctx_size) {
        cli_error("run", "the prompt (%d tokens) and -n %d need a canvas of %lld, more than --ctx-size %d", n_prompt,
                  p.gen_length, (long long)n_prompt + p.gen_length, ctx_size);
        rc = 2;
    }
    if (rc == 0)
        rc = generate_and_print(ctx, &p, prompt, n_prompt, text_mode ? &rt : NULL, json, quiet);
    if (rc == 0 && !json && cli_steps_unused(&gf))
        fprintf(stderr, "unmask run: note: this decoder runs each block until it is filled, as Fast-dLLM does: "
                        "--steps only splits into the blocks here (--max-nfe bounds the forward passes)\n");
    if (text_mode)
        cli_text_close(&rt.t);
    free(prompt);
    um_context_free(ctx);
    um_model_close(m);
    return rc;
}
