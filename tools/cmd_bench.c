/* unmask bench: time the forward pass the sampler runs (canvas of prompt +
 * generated positions, logits for the generated ones) and report ms per
 * forward, canvas tokens per second, achieved GFLOP/s and peak memory,
 * next to this machine's arithmetic limits measured in the same run.
 * --kernels times the matmuls alone on a model's shapes with random
 * weights of each type, without a model file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/rng.h"
#include "base/sys.h"
#include "cli.h"
#include "kernels/cpu.h"
#include "kernels/kernels.h"
#include "kernels/matmul_impl.h"
#include "kernels/peak.h"
#include "kernels/quant.h"
#include "model/model.h"

#define MAX_CANVAS 16

static void bench_usage(void) {
    puts("usage: unmask bench -m MODEL [--canvas N,N,...] [--prompt-len P] [--gen-len G] [-r REPS] [-t N]\n"
         "       unmask bench --limits [-t N]\n"
         "       unmask bench --kernels [--shape llada-1b|llada-8b] [--types bf16,q8_0,...] [--canvas N,...]\n"
         "\n"
         "Time forward passes over a canvas of P random prompt tokens and G masks, with logits\n"
         "for the G masked positions (what each sampling step computes), and this machine's\n"
         "arithmetic limits (register-only FMA, bf16 and int8 dot-product loops on all threads;\n"
         "on AVX2 without AVX-VNNI the int8 one is the vpmaddubsw+vpmaddwd chain the kernels\n"
         "run, counted as vpdpbusd's 8 OP per lane). Each row's % of limit is to the limit of\n"
         "the instruction its kernel runs ('-': none, as on the scalar path).\n"
         "\n"
         "  -m, --model PATH    GGUF file or model directory (e.g. from unmask init-random)\n"
         "  --canvas LIST       canvas sizes, each run as P = N/8 prompt tokens and N - P masks\n"
         "  --prompt-len P      prompt tokens (default 32)\n"
         "  --gen-len G         masked positions (default 224: a 256-token canvas)\n"
         "  -r, --reps N        timed forward passes after one warm-up (default 3)\n"
         "  -t, --threads N     worker threads (default: the physical cores)\n"
         "  --no-repack         pack the weights into the kernels' layout on every product, not once at\n"
         "                      load (as run --no-repack; --kernels: not once before the timings)\n"
         "  --f32               f32 activations for every weight type (as UNMASK_ACTIVATIONS=f32); by\n"
         "                      default BF16 and F16 weights meet bf16 and quantized ones int8 activations\n"
         "                      (a quantized file's F16 matrices are quantized to Q8_0 for that)\n"
         "  --limits            only measure the limits\n"
         "  --no-limits         skip the limits line (each row still measures its own limit)\n"
         "  --kernels           time the matmuls of one layer (and the output head) of --shape\n"
         "                      with random weights of each of --types, instead of a model\n"
         "  -h, --help          this help\n"
         "\n"
         "UNMASK_KERNEL=scalar|avx2|avx512|neon|onednn forces the kernel path; UNMASK_CPU=CLASS\n"
         "(avx2, avx2-vnni, avx512-novnni, avx512-vnni, avx512, neon, neon-dot, neon-i8mm,\n"
         "neon-bf16, scalar) measures as a smaller CPU of that class would dispatch.");
}

typedef struct {
    double fma, bf16, i8;
} limits;

static limits measure_limits(um_pool *pool) {
    limits l;
    l.fma = um_peak_gflops(pool, UM_PEAK_FMA_F32, 0.3);
    l.bf16 = um_peak_gflops(pool, UM_PEAK_DOT_BF16, 0.3);
    l.i8 = um_peak_gflops(pool, UM_PEAK_DOT_I8, 0.3);
    printf("limits, %d threads, %s path: %s %.0f GFLOP/s", um_pool_threads(pool),
           um_kernel_path_name(um_kernel_path_get()), um_peak_name(UM_PEAK_FMA_F32), l.fma);
    if (l.bf16 > 0)
        printf(", %s %.0f GFLOP/s", um_peak_name(UM_PEAK_DOT_BF16), l.bf16);
    if (l.i8 > 0)
        printf(", %s %.0f GOP/s", um_peak_name(UM_PEAK_DOT_I8), l.i8);
    printf("%s\n", l.bf16 > 0 && l.i8 > 0 ? "" : l.bf16 > 0 ? " (no int8 dot on this path)"
                                           : l.i8 > 0      ? " (no bf16 dot on this path)"
                                                           : " (no bf16 or int8 dot on this path)");
    return l;
}

/* The instruction whose limit a kernel is measured against: its own. The
 * scalar path's bf16 and int8 kernels run no such instruction (COUNT). */
static um_peak_kind kernel_peak(const char *kernel) {
    bool scalar = strncmp(kernel, "scalar", 6) == 0;
    if (strstr(kernel, "bf16"))
        return scalar ? UM_PEAK_COUNT : UM_PEAK_DOT_BF16;
    if (strstr(kernel, "vnni") || strstr(kernel, "i8"))
        return scalar ? UM_PEAK_COUNT : UM_PEAK_DOT_I8;
    return UM_PEAK_FMA_F32;
}

static double limit_for(const limits *l, const char *kernel) {
    um_peak_kind k = kernel_peak(kernel);
    return k == UM_PEAK_FMA_F32 ? l->fma : k == UM_PEAK_DOT_BF16 ? l->bf16 : k == UM_PEAK_DOT_I8 ? l->i8 : 0;
}

/* The limit of a kernel's instruction measured now, next to its timing: on
 * a shared machine the cores' availability drifts, and a ratio of two
 * measurements taken together stays meaningful when each alone does not. */
static double limit_now(um_pool *pool, const char *kernel) {
    um_peak_kind k = kernel_peak(kernel);
    return k == UM_PEAK_COUNT ? 0 : um_peak_gflops(pool, k, 0.2);
}

/* "57%", or "-" where there is no limit to compare with. */
static const char *percent(char buf[16], double rate, double limit) {
    if (limit > 0)
        snprintf(buf, 16, "%.0f%%", 100 * rate / limit);
    else
        snprintf(buf, 16, "-");
    return buf;
}

static int parse_canvas(const char *s, int *out) {
    int n = 0;
    while (*s && n < MAX_CANVAS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 2 || v > 1 << 20)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

/* ---- whole forward passes ------------------------------------------------------ */

static int bench_model(um_context *ctx, const char *model, const int *prompt, const int *gen, int n_canvas, int reps,
                       const limits *lim) {
    const um_model *m = ctx->m;
    const um_hparams *hp = &m->hp;
    const char *kernel = um_matmul_kernel_name(um_cpu_backend_exec(ctx->be), m->layers[0].w_gate.type);
    int rc = 0;
    printf("| model | weights | threads | canvas | ms/forward (best) | ms/forward (mean) | canvas tokens/s | "
           "GFLOP/s | peak RSS MiB | kernel | %% of limit | limit now | %% of limit now |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    for (int c = 0; c < n_canvas && rc == 0; c++) {
        int seq = prompt[c] + gen[c], gen_len = gen[c];
        int32_t *tokens = malloc((size_t)seq * sizeof *tokens), *sel = malloc((size_t)gen_len * sizeof *sel);
        float *logits = malloc((size_t)gen_len * (size_t)hp->n_vocab * sizeof *logits);
        um_rng rng;
        um_rng_seed(&rng, 1);
        if (!tokens || !sel || !logits) {
            cli_error("bench", "out of memory");
            rc = 1;
        }
        int max_tok = hp->mask_id > 0 ? hp->mask_id : hp->n_vocab;
        for (int i = 0; rc == 0 && i < seq; i++)
            tokens[i] = i < prompt[c] ? (int32_t)(um_rng_next(&rng) % (uint64_t)max_tok) : hp->mask_id;
        for (int i = 0; rc == 0 && i < gen_len; i++)
            sel[i] = prompt[c] + i;
        double best = 1e30, sum = 0, now_lim = limit_now(um_cpu_backend_exec(ctx->be)->pool, kernel);
        um_error err;
        for (int r = 0; r <= reps && rc == 0; r++) {
            double t0 = um_now();
            if (um_model_forward(ctx, tokens, 1, seq, sel, gen_len, logits, &err) != UM_OK) {
                cli_error("bench", "%s", err.msg);
                rc = 1;
                break;
            }
            double dt = um_now() - t0;
            fprintf(stderr, "canvas %d, %s %d: %.1f ms\n", seq, r == 0 ? "warm-up" : "rep", r, dt * 1e3);
            if (r > 0) {
                sum += dt;
                if (dt < best)
                    best = dt;
            }
        }
        if (rc == 0) {
            double flops = um_model_forward_flops(m, 1, seq, gen_len), gflops = flops / best / 1e9;
            size_t peak;
            um_memory_usage(NULL, &peak);
            char p0[16], p1[16];
            printf("| %s | %s | %d | %d | %.1f | %.1f | %.0f | %.1f | %.0f | %s | %s | %.0f | %s |\n", model,
                   m->weight_type, um_pool_threads(um_cpu_backend_exec(ctx->be)->pool), seq, best * 1e3, sum / reps * 1e3, seq / best, gflops,
                   (double)peak / 1048576.0, kernel, percent(p0, gflops, lim ? limit_for(lim, kernel) : 0), now_lim,
                   percent(p1, gflops, now_lim));
            fflush(stdout);
        }
        free(tokens);
        free(sel);
        free(logits);
    }
    return rc;
}

/* ---- the matmuls alone ------------------------------------------------------------ */

typedef struct {
    const char *name;
    int64_t d, kv, ff, vocab;
} shape;

static const shape shapes[] = {{"llada-1b", 2048, 2048, 5634, 126464}, {"llada-8b", 4096, 4096, 12288, 126464}};

/* Values each row of a random matrix is drawn from: a window at a random
 * offset into a pool of normals (the head's 259 million values drawn one by
 * one took most of a --kernels run; the timings do not depend on them). */
#define POOL_VALUES (1 << 20)

/* A random [rows][cols] matrix of type t (std 0.02, as init-random), or,
 * when cols does not split into t's blocks, of the type a conversion would
 * fall back to (Q8_0, else F16; see model/recipe.c). */
static um_weight random_weight(um_dtype t, int64_t rows, int64_t cols, const float *pool, um_rng *rng) {
    bool fallback = cols % um_dtype_block_elems(t) != 0; /* as llama-quantize and unmask convert fall back */
    if (fallback)
        t = cols % 32 == 0 ? UM_Q8_0 : UM_F16;
    size_t rb = um_row_bytes(t, cols);
    uint8_t *data = um_aligned_alloc(rb * (size_t)rows);
    if (!data)
        return (um_weight){t, 0, 0, NULL, false, NULL};
    for (int64_t r = 0; r < rows; r++)
        um_quantize_row(t, pool + um_rng_next(rng) % (uint64_t)(POOL_VALUES - cols), data + (size_t)r * rb, cols);
    return (um_weight){t, rows, cols, data, fallback && t == UM_F16, NULL};
}

static int bench_kernels(um_pool *pool, const char *shape_name, const char *types, const int *canvas, int n_canvas,
                         int reps, bool repack, const limits *lim) {
    const shape *s = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (strcmp(shape_name, shapes[i].name) == 0)
            s = &shapes[i];
    if (!s) {
        cli_error("bench", "--shape must be llada-1b or llada-8b");
        return 2;
    }
    int max_n = 0;
    for (int c = 0; c < n_canvas; c++)
        max_n = canvas[c] > max_n ? canvas[c] : max_n;
    int64_t max_cols = s->ff > s->d ? s->ff : s->d, max_rows = s->vocab;
    float *x = um_aligned_alloc((size_t)max_n * (size_t)max_cols * sizeof(float));
    float *y = um_aligned_alloc((size_t)max_n * (size_t)max_rows * sizeof(float));
    float *scratch = malloc(um_matmul_scratch_floats(um_pool_threads(pool), max_cols) * sizeof(float));
    float *values = malloc(POOL_VALUES * sizeof(float));
    um_rng rng;
    um_rng_seed(&rng, 5);
    if (!x || !y || !scratch || !values) {
        cli_error("bench", "out of memory");
        free(x);
        free(y);
        free(scratch);
        free(values);
        return 1;
    }
    for (int64_t i = 0; i < (int64_t)max_n * max_cols; i++)
        x[i] = (float)um_rng_normal(&rng);
    for (int i = 0; i < POOL_VALUES; i++)
        values[i] = (float)(0.02 * um_rng_normal(&rng));
    printf("| shape | weights | matrices | threads | canvas | ms/layer | layer GFLOP/s | kernel | %% of limit | "
           "limit now | %% of limit now | ms/head | head GFLOP/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    char list[256];
    snprintf(list, sizeof list, "%s", types);
    int rc = 0;
    for (char *save = NULL, *tn = strtok_r(list, ",", &save); tn && rc == 0; tn = strtok_r(NULL, ",", &save)) {
        um_dtype t = UM_DTYPE_COUNT;
        for (int i = 0; i < UM_DTYPE_COUNT; i++)
            if (strcasecmp(tn, um_dtype_name((um_dtype)i)) == 0 && (i == UM_F32 || i == UM_F16 || i == UM_BF16 ||
                                                                   um_dtype_block_elems((um_dtype)i) > 1))
                t = (um_dtype)i;
        if (t == UM_DTYPE_COUNT) {
            cli_error("bench", "unknown weight type '%s' (f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k)", tn);
            rc = 2;
            break;
        }
        /* one layer: q, k, v, o, gate, up, down; then the head */
        int64_t dims[8][2] = {{s->d, s->d},  {s->kv, s->d}, {s->kv, s->d}, {s->d, s->d},
                              {s->ff, s->d}, {s->ff, s->d}, {s->d, s->ff}, {s->vocab, s->d}};
        um_weight w[8];
        char mats[128] = "";
        for (int i = 0; i < 8; i++) {
            w[i] = random_weight(t, dims[i][0], dims[i][1], values, &rng);
            if (!w[i].data)
                rc = 1;
            if (w[i].type != t && !strstr(mats, um_dtype_name(w[i].type)))
                snprintf(mats + strlen(mats), sizeof mats - strlen(mats), "%s%s %s%s", *mats ? ", " : "",
                         i == 6 ? "down" : "head", um_dtype_name(w[i].type),
                         w[i].q8_0_when_reduced && um_matmul_reduced() ? " as Q8_0" : "");
        }
        /* packed once, as a model's matrices are at load (unless --no-repack) */
        um_exec ex_now = um_exec_defaults(pool);
        for (int i = 0; i < 8 && repack && rc == 0; i++)
            if (!um_weight_pack(&w[i], &ex_now, NULL))
                rc = 1;
        /* a second row per canvas with the other backend where oneDNN takes this type and mode
           (and no instruction-set path was forced) */
        um_kernel_lib lib_now = um_kernel_lib_get();
        bool onednn_now = strncmp(um_matmul_kernel_name(&ex_now, t), "onednn", 6) == 0;
        bool both = lib_now != UM_LIB_NONE && mm_onednn_handles(t, um_matmul_reduced());
        for (int c = 0; c < n_canvas && rc == 0; c++)
            for (int alt = 0; alt < (both ? 2 : 1); alt++) {
                int n = canvas[c];
                if (alt)
                    um_kernel_lib_set(onednn_now ? UM_LIB_NONE : UM_LIB_ONEDNN);
                um_exec ex = um_exec_defaults(pool);
                const char *kernel = um_matmul_kernel_name(&ex, t);
                double best[2] = {1e30, 1e30}, flops[2] = {0, 0}, now_lim = limit_now(pool, kernel);
                for (int i = 0; i < 8; i++)
                    flops[i == 7] += 2.0 * n * (double)w[i].rows * (double)w[i].cols;
                for (int r = 0; r <= reps; r++) {
                    for (int part = 0; part < 2; part++) {
                        double t0 = um_now();
                        for (int i = part ? 7 : 0; i < (part ? 8 : 7); i++)
                            if (!um_matmul(&ex, x, n, &w[i], NULL, y, scratch))
                                rc = 1;
                        double dt = um_now() - t0;
                        if (r > 0 && dt < best[part])
                            best[part] = dt;
                    }
                }
                um_kernel_lib_set(lib_now);
                double g = flops[0] / best[0] / 1e9;
                char p0[16], p1[16];
                printf("| %s | %s | %s | %d | %d | %.1f | %.1f | %s | %s | %.0f | %s | %.1f | %.1f |\n", s->name,
                       um_dtype_name(t), *mats ? mats : "all", um_pool_threads(pool), n, best[0] * 1e3, g, kernel,
                       percent(p0, g, lim ? limit_for(lim, kernel) : 0), now_lim, percent(p1, g, now_lim),
                       best[1] * 1e3, flops[1] / best[1] / 1e9);
                fflush(stdout);
            }
        for (int i = 0; i < 8; i++) {
            um_weight_unpack(&w[i]);
            free((void *)w[i].data);
        }
    }
    free(x);
    free(y);
    free(scratch);
    free(values);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    cli_args a;
    const char *model = NULL, *shape_name = "llada-1b", *types = "bf16,q8_0,q4_0,q4_k";
    int prompt_len = -1, gen_len = -1, reps = 3, threads = 0, canvas[MAX_CANVAS], n_canvas = 0;
    bool only_limits = false, no_limits = false, kernels = false, f32 = false, no_repack = false;
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
        else if (cli_is(&a, NULL, "--no-repack")) no_repack = true;
        else if (cli_is(&a, NULL, "--canvas")) {
            const char *v = cli_value(&a);
            if (v && (n_canvas = parse_canvas(v, canvas)) <= 0) {
                cli_error("bench", "--canvas: expected sizes like 32,256,1024 (each 2 or more), got '%s'", v);
                a.ok = false;
            }
        } else if (cli_is(&a, NULL, "--limits")) only_limits = true;
        else if (cli_is(&a, NULL, "--no-limits")) no_limits = true;
        else if (cli_is(&a, NULL, "--kernels")) kernels = true;
        else if (cli_is(&a, NULL, "--f32")) f32 = true;
        else if (cli_is(&a, NULL, "--shape")) shape_name = cli_value(&a);
        else if (cli_is(&a, NULL, "--types")) types = cli_value(&a);
        else cli_unknown(&a);
    }
    if (!a.ok)
        return 2;
    if (f32)
        um_matmul_set_reduced(false);
    int prompt[MAX_CANVAS], gen[MAX_CANVAS];
    if (n_canvas > 0 && (prompt_len >= 0 || gen_len >= 0)) {
        cli_error("bench", "give either --canvas or --prompt-len/--gen-len");
        return 2;
    }
    if (n_canvas == 0) {
        prompt[0] = prompt_len >= 0 ? prompt_len : 32;
        gen[0] = gen_len >= 0 ? gen_len : 224;
        canvas[0] = prompt[0] + gen[0];
        n_canvas = 1;
    } else {
        for (int c = 0; c < n_canvas; c++) {
            prompt[c] = canvas[c] / 8;
            gen[c] = canvas[c] - prompt[c];
        }
    }
    if (!only_limits && !kernels && !model) {
        cli_error("bench", "no model given: use -m MODEL, --kernels or --limits");
        return 2;
    }
    if (threads <= 0)
        threads = um_physical_core_count();

    um_model *m = NULL;
    um_context *ctx = NULL;
    um_pool *pool = NULL;
    if (model && !only_limits && !kernels) {
        m = cli_open_model("bench", model, threads, no_repack ? CLI_MODEL_NO_REPACK : 0);
        ctx = m ? cli_open_context("bench", m) : NULL;
        if (!ctx) {
            um_model_close(m);
            return 1;
        }
        pool = um_cpu_backend_exec(ctx->be)->pool;
    } else {
        pool = um_pool_create(threads);
        if (!pool) {
            cli_error("bench", "cannot start %d threads", threads);
            return 1;
        }
    }
    limits lim;
    bool have_limits = !no_limits || only_limits;
    if (have_limits)
        lim = measure_limits(pool);
    int rc = 0;
    if (kernels)
        rc = bench_kernels(pool, shape_name, types, canvas, n_canvas, reps, !no_repack, have_limits ? &lim : NULL);
    else if (ctx)
        rc = bench_model(ctx, model, prompt, gen, n_canvas, reps, have_limits ? &lim : NULL);
    if (ctx) {
        um_context_free(ctx);
        um_model_close(m);
    } else {
        um_pool_destroy(pool);
    }
    return rc;
}
