/* Fast decoding: every NVlabs/Fast-dLLM case of the fixtures (threshold
 * decoding, prefix and dual cache, with and without threshold) reproduced
 * exactly, through the API and through `unmask run --json`; the cached
 * forward against the full one; the rules without an upstream fixture on
 * hand-made tables (threshold, factor, margin, entropy, med, hierarchical
 * spans, credit accumulation, power schedule, EOS rejection and early stop);
 * and invariants of every cache x decoder combination on the tiny models
 * (LLaDA, its GQA variant and LLaDA-MoE). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/diffusion.h"
#include "model/model.h"
#include "testutil.h"

static const int32_t PROMPT[] = {37, 37, 126, 38, 454, 179, 88, 187, 363, 230, 53, 474};
#define N_PROMPT ((int)(sizeof PROMPT / sizeof *PROMPT))
#define MASK 500
#define EOS 501

/* ---- Fast-dLLM's cases ---------------------------------------------------- */

static void fastdllm_cases(const char *model, const char *layout, int threads) {
    um_model *m = open_fixture_model(model, layout, threads);
    int n = run_reference_cases_from(m, model, layout, FASTDLLM_REFERENCE, expect_output_nfe, NULL);
    assert_true(n >= 6); /* generate, prefix and dual cache, each with and without threshold */
    um_model_close(m);
}

static void fastdllm_mha_bf16(void **state) { fastdllm_cases("tiny-llada", "hf-bf16", 2); }
static void fastdllm_mha_f32_sharded(void **state) { fastdllm_cases("tiny-llada", "hf-f32-sharded", 1); }
static void fastdllm_gqa_bf16(void **state) { fastdllm_cases("tiny-llada-gqa", "hf-bf16", 2); }
static void fastdllm_gqa_f32_sharded(void **state) { fastdllm_cases("tiny-llada-gqa", "hf-f32-sharded", 3); }

/* The same cases through the command, with the flags a user would pass. */
static void fastdllm_cases_cli(void **state) {
    f32_activations_for_commands(true); /* the reference's arithmetic */
    const char *models[] = {"tiny-llada", "tiny-llada-gqa"};
    int checked = 0, credit_checked = 0, defaults_checked = 0;
    for (int mi = 0; mi < 2; mi++) {
        cJSON *root = load_reference(models[mi]);
        char dir[256];
        snprintf(dir, sizeof dir, "llada/%s/hf-bf16", models[mi]);
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
            const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
            if (!ref || strncmp(ref, FASTDLLM_REFERENCE, strlen(FASTDLLM_REFERENCE)) != 0)
                continue;
            char flags[512], other[600];
            reference_case_flags(c, flags, sizeof flags);
            char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
            expect_run_matches(models[mi], dir, prompt, flags, c);
            checked++;
            /* the command decodes with Fast-dLLM's dual cache and threshold
             * decoding unless told otherwise: only the threshold is given here */
            if (strstr(flags, "--cache dual") && strstr(flags, "--decoder threshold")) {
                um_generate_params p = reference_case_params(c);
                snprintf(other, sizeof other, "-n %d --steps %d --block-length %d --threshold %.15g", p.gen_length,
                         p.steps, p.block_length, p.threshold);
                expect_run_matches(models[mi], dir, prompt, other, c);
                defaults_checked++;
            }
            /* credit decoding without its logit boost is threshold decoding:
             * the same upstream output through --decoder credit --credit-alpha 0 */
            const char *thr = strstr(flags, "--decoder threshold");
            if (thr) {
                snprintf(other, sizeof other, "%.*s--decoder credit --credit-alpha 0%s", (int)(thr - flags), flags,
                         thr + strlen("--decoder threshold"));
                expect_run_matches(models[mi], dir, prompt, other, c);
                credit_checked++;
            }
            free(prompt);
        }
        cJSON_Delete(root);
    }
    assert_true(checked >= 12);
    assert_true(credit_checked >= 4);
    assert_int_equal(defaults_checked, 2);
    f32_activations_for_commands(false);
}

/* ---- the cached forward --------------------------------------------------- */

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        ref = fmax(ref, fabs((double)b[i]));
    }
    return d / ref;
}

/* The logits of every output of the context's last forward, [n_out][V]. */
static void all_outputs(um_context *ctx, float *out, int V) {
    um_error err;
    assert_int_equal(um_context_logits(ctx, out, &err), UM_OK);
}

static void expect_close(const float *got, const float *want, int V, double bound, const char *what, int pos) {
    double d = max_rel_diff(got, want, (size_t)V);
    if (d > bound)
        fail_msg("%s: position %d differs by %g", what, pos, d);
}

/* A full pass that fills a sequence's cache gives the plain forward's
 * logits; a pass over any range against that cache (tokens unchanged) gives
 * the full pass's logits at its positions; each sequence keeps its own
 * cache. */
static void cached_forward_matches_full(void **state) {
    const char *models[] = {"tiny-llada", "tiny-llada-gqa"};
    for (int mi = 0; mi < 2; mi++) {
        um_model *m = open_fixture_model(models[mi], "hf-bf16", 2);
        um_context *ctx;
        um_error err;
        assert_int_equal(um_context_create(m, NULL, &ctx, &err), UM_OK);
        um_model_info info;
        um_model_get_info(m, &info);
        const int len = 28, V = info.n_vocab, rows = 2;
        int32_t tokens[2 * 28];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < len; i++)
                tokens[r * len + i] = i < N_PROMPT ? (r ? MASK : PROMPT[i]) : (i % 5 == 0 ? 108 + r : MASK);
        float *full = malloc((size_t)rows * len * V * sizeof *full), *got = malloc((size_t)rows * len * V * sizeof *got);
        assert_int_equal(um_model_forward(ctx, tokens, rows, len, NULL, 0, full, &err), UM_OK);
        um_kv_cache kv[2];
        um_batch_entry e[2];
        for (int r = 0; r < rows; r++) {
            assert_int_equal(um_kv_cache_init(&kv[r], ctx->be, m, len, &err), UM_OK);
            e[r] = (um_batch_entry){tokens + r * len, len, 0, len, len, &kv[r], NULL, 0, NULL, 0};
        }
        assert_int_equal(um_forward_batch(ctx, e, rows, &err), UM_OK);
        all_outputs(ctx, got, V);
        assert_true(max_rel_diff(got, full, (size_t)rows * len * V) == 0.0);
        int ranges[][2] = {{12, 20}, {12, 28}, {4, 24}, {27, 28}, {0, 5}};
        for (size_t t = 0; t < sizeof ranges / sizeof *ranges; t++) {
            int q0 = ranges[t][0], q1 = ranges[t][1], n_sel = 0;
            int32_t sel[28];
            for (int i = q0; i < q1; i += 2)
                sel[n_sel++] = i;
            for (int r = 0; r < rows; r++)
                e[r] = (um_batch_entry){tokens + r * len, len, q0, q1, len, &kv[r], sel, n_sel, NULL, 0};
            assert_int_equal(um_forward_batch(ctx, e, rows, &err), UM_OK);
            all_outputs(ctx, got, V);
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < n_sel; i++) {
                    char what[96];
                    snprintf(what, sizeof what, "%s rows [%d, %d) row %d", models[mi], q0, q1, r);
                    expect_close(got + ((size_t)r * n_sel + i) * V, full + ((size_t)r * len + sel[i]) * V, V, 1e-5,
                                 what, sel[i]);
                }
        }
        /* a range needs a cache; positions outside the range are refused */
        e[0] = (um_batch_entry){tokens, len, 4, 8, len, NULL, NULL, 0, NULL, 0};
        assert_int_equal(um_forward_batch(ctx, e, 1, &err), UM_ERR_ARG);
        int32_t outside = 3;
        e[0] = (um_batch_entry){tokens, len, 4, 8, len, &kv[0], &outside, 1, NULL, 0};
        assert_int_equal(um_forward_batch(ctx, e, 1, &err), UM_ERR_ARG);
        assert_non_null(strstr(err.msg, "outside"));
        for (int r = 0; r < rows; r++)
            um_kv_cache_free(&kv[r]);
        free(full);
        free(got);
        um_context_free(ctx);
        um_model_close(m);
    }
}

/* One batch of unlike entries (different lengths, ranges, caches and
 * selected positions) gives, position by position, the logits each entry
 * gets in a forward of its own, in f32 and in the reduced arithmetic. */
static void batched_forward_matches_single(void **state) {
    um_model *m = open_fixture_model("tiny-llada-gqa", "hf-bf16", 2);
    um_model_info info;
    um_model_get_info(m, &info);
    const int V = info.n_vocab, lens[4] = {28, 17, 40, 9};
    int32_t tok[4][40];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < lens[k]; i++)
            tok[k][i] = i < N_PROMPT ? PROMPT[(i + k) % N_PROMPT] : (i % (3 + k) == 0 ? 100 + 7 * k : MASK);
    for (int reduced = 0; reduced < 2; reduced++) {
        um_context_params cp = um_context_default_params();
        cp.activations = reduced ? UM_ACTIVATIONS_REDUCED : UM_ACTIVATIONS_F32;
        um_context *ctx;
        um_error err;
        assert_int_equal(um_context_create(m, &cp, &ctx, &err), UM_OK);
        /* each entry's expected logits: its own full pass (filling its cache), then its own step */
        um_kv_cache kv[4];
        int q0[4] = {12, 0, 20, 0}, q1[4] = {20, 17, 40, 9};
        bool cached[4] = {true, false, true, false};
        int32_t sel[4][40];
        int n_sel[4];
        float *want[4], *got = malloc((size_t)4 * 40 * V * sizeof *got);
        for (int k = 0; k < 4; k++) {
            n_sel[k] = 0;
            for (int i = q0[k]; i < q1[k]; i += 1 + k % 2)
                sel[k][n_sel[k]++] = i;
            want[k] = malloc((size_t)n_sel[k] * V * sizeof *want[k]);
            um_batch_entry e = {tok[k], lens[k], 0, lens[k], lens[k], NULL, sel[k], n_sel[k], NULL, 0};
            if (cached[k]) {
                assert_int_equal(um_kv_cache_init(&kv[k], ctx->be, m, lens[k], &err), UM_OK);
                e.cache = &kv[k];
                assert_int_equal(um_forward_batch(ctx, &e, 1, &err), UM_OK); /* fills the cache */
                e.q0 = q0[k];
                e.q1 = q1[k];
            }
            assert_int_equal(um_forward_batch(ctx, &e, 1, &err), UM_OK);
            all_outputs(ctx, want[k], V);
        }
        um_batch_entry batch[4];
        for (int k = 0; k < 4; k++)
            batch[k] = (um_batch_entry){tok[k], lens[k], q0[k], q1[k], lens[k], cached[k] ? &kv[k] : NULL, sel[k],
                                        n_sel[k], NULL, 0};
        assert_int_equal(um_forward_batch(ctx, batch, 4, &err), UM_OK);
        all_outputs(ctx, got, V);
        size_t out = 0;
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < n_sel[k]; i++, out++) {
                char what[64];
                snprintf(what, sizeof what, "%s entry %d", reduced ? "reduced" : "f32", k);
                /* the same arithmetic on the same rows; int8/bf16 rounding is per token, so equal too */
                expect_close(got + out * V, want[k] + (size_t)i * V, V, 1e-6, what, sel[k][i]);
            }
        for (int k = 0; k < 4; k++) {
            if (cached[k])
                um_kv_cache_free(&kv[k]);
            free(want[k]);
        }
        free(got);
        um_context_free(ctx);
    }
    um_model_close(m);
}

/* With a window covering the canvas (or a full refresh every step), the
 * vicinity cache recomputes everything: it is the reference sampler. */
static void vicinity_covering_all_is_reference(void **state) {
    um_model *m = open_fixture_model("tiny-llada-gqa", "hf-bf16", 2);
    cJSON *root = load_reference("tiny-llada-gqa");
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || strcmp(ref, LLADA_REFERENCE) != 0)
            continue;
        int n_prompt, n_want;
        int32_t *prompt = json_int_array(cJSON_GetObjectItem(c, "prompt"), &n_prompt);
        int32_t *want = json_int_array(cJSON_GetObjectItem(c, "output"), &n_want);
        for (int variant = 0; variant < 2; variant++) {
            um_generate_params p = reference_case_params(c);
            p.cache = UM_CACHE_VICINITY;
            p.cache_window = variant == 0 ? 1000 : 0;
            p.cache_refresh = variant == 0 ? 0 : 1;
            um_generation g;
            um_error err;
            assert_int_equal(t_generate(m, prompt, n_prompt, &p, &g, &err), UM_OK);
            assert_int_equal(g.n_tokens, n_want);
            assert_memory_equal(g.tokens, want, (size_t)n_want * sizeof *want);
            assert_int_equal(g.nfe, cJSON_GetObjectItem(c, "nfe")->valueint);
            um_generation_free(&g);
            checked++;
        }
        free(prompt);
        free(want);
    }
    assert_true(checked >= 12);
    cJSON_Delete(root);
    um_model_close(m);
}

/* ---- decoders on hand-made tables ---------------------------------------- */

static um_pick pick_conf(int32_t tok, double conf) { return (um_pick){tok, conf, conf, 0, 0, 0}; }

static void expect_positions(const int32_t *got, int n_got, const int32_t *want, int n_want) {
    if (n_got != n_want)
        fail_msg("committed %d positions, expected %d", n_got, n_want);
    for (int i = 0; i < n_want; i++)
        if (got[i] != want[i])
            fail_msg("commit %d is position %d, expected %d", i, got[i], want[i]);
}

static void threshold_rule(void **state) {
    um_generate_params p = um_generate_default_params();
    p.decoder = UM_DECODER_THRESHOLD;
    p.threshold = 0.9;
    int32_t pos[] = {3, 4, 5, 6, 7};
    um_pick pk[] = {pick_conf(1, 0.3), pick_conf(1, 0.95), pick_conf(1, 0.5), pick_conf(1, 0.9), pick_conf(1, 0.1)};
    int32_t out[5];
    expect_positions(out, um_decode_select(&p, pos, pk, 5, 0, -1, 1.0, out), (int32_t[]){4, 6}, 2);
    p.threshold = 0.99; /* nobody is sure enough: the best alone */
    expect_positions(out, um_decode_select(&p, pos, pk, 5, 0, -1, 1.0, out), (int32_t[]){4}, 1);
    p.threshold = 0.0; /* everyone */
    expect_positions(out, um_decode_select(&p, pos, pk, 5, 0, -1, 1.0, out), (int32_t[]){4, 6, 5, 3, 7}, 5);
    assert_int_equal(um_decode_select(&p, pos, pk, 0, 0, -1, 1.0, out), 0);
}

/* Factor: rank n (1-based) is accepted while conf >= 1 - f/(n+1); the ranks
 * form a prefix and the best is always taken. */
static void factor_rule(void **state) {
    um_generate_params p = um_generate_default_params();
    p.decoder = UM_DECODER_FACTOR;
    p.factor = 1.0; /* thresholds: rank 2 0.667, rank 3 0.75, rank 4 0.8, rank 5 0.833 */
    int32_t pos[] = {0, 1, 2, 3, 4};
    um_pick a[] = {pick_conf(1, 0.70), pick_conf(1, 0.95), pick_conf(1, 0.80), pick_conf(1, 0.99), pick_conf(1, 0.2)};
    int32_t out[5];
    /* sorted 0.99 0.95 0.80 0.70 0.20: ranks 2 and 3 pass (0.95, 0.80), rank 4 fails (0.70 < 0.8) */
    expect_positions(out, um_decode_select(&p, pos, a, 5, 0, -1, 1.0, out), (int32_t[]){3, 1, 2}, 3);
    /* a failure ends the prefix even if a later rank would pass its own bound */
    um_pick b[] = {pick_conf(1, 0.99), pick_conf(1, 0.60)};
    expect_positions(out, um_decode_select(&p, pos, b, 2, 0, -1, 1.0, out), (int32_t[]){0}, 1);
    p.factor = 1.9; /* rank 2 needs 0.367 */
    expect_positions(out, um_decode_select(&p, pos, b, 2, 0, -1, 1.0, out), (int32_t[]){0, 1}, 2);
    p.factor = 0.05; /* rank 2 needs 0.983: only the best */
    expect_positions(out, um_decode_select(&p, pos, a, 5, 0, -1, 1.0, out), (int32_t[]){3}, 1);
}

static void margin_and_entropy_rules(void **state) {
    um_generate_params p = um_generate_default_params();
    int32_t pos[] = {10, 11, 12, 13};
    um_pick pk[4] = {{1, 0.60, 0.60, 0.39, 0.9, 0}, {1, 0.50, 0.50, 0.10, 0.2, 0}, {1, 0.90, 0.90, 0.05, 1.5, 0},
                     {1, 0.45, 0.45, 0.44, 0.1, 0}};
    int32_t out[4];
    p.decoder = UM_DECODER_MARGIN; /* margins 0.21 0.40 0.85 0.01 */
    expect_positions(out, um_decode_select(&p, pos, pk, 4, 2, -1, 1.0, out), (int32_t[]){12, 11}, 2);
    p.decoder = UM_DECODER_TOPK; /* confidence alone prefers 10 over 11 */
    expect_positions(out, um_decode_select(&p, pos, pk, 4, 2, -1, 1.0, out), (int32_t[]){12, 10}, 2);
    p.decoder = UM_DECODER_ENTROPY; /* entropies 0.9 0.2 1.5 0.1 */
    expect_positions(out, um_decode_select(&p, pos, pk, 4, 3, -1, 1.0, out), (int32_t[]){13, 11, 10}, 3);
    p.decoder = UM_DECODER_MED;
    p.entropy_bound = 0.3; /* every entropy below 0.3 */
    expect_positions(out, um_decode_select(&p, pos, pk, 4, 0, -1, 1.0, out), (int32_t[]){13, 11}, 2);
    p.entropy_bound = 0.05; /* none below: the lowest alone */
    expect_positions(out, um_decode_select(&p, pos, pk, 4, 0, -1, 1.0, out), (int32_t[]){13}, 1);
    p.entropy_bound = 10;
    expect_positions(out, um_decode_select(&p, pos, pk, 4, 0, -1, 1.0, out), (int32_t[]){13, 11, 10, 12}, 4);
}

/* The sampler's statistics for those rules, on logits whose softmax is known. */
static void pick_statistics(void **state) {
    um_pick_request s = {.uncond_row = -1, .eos_inf = -1, .eot_inf = -1, .stats = true};
    float logits[4] = {0.0f, (float)log(2.0), (float)log(5.0), (float)log(2.0)}; /* p = 0.1 0.2 0.5 0.2 */
    um_pick pk;
    um_pick_row(&s, logits, NULL, 4, &pk);
    assert_int_equal(pk.token, 2);
    assert_true(fabs(pk.conf - 0.5) < 1e-6 && fabs(pk.p1 - 0.5) < 1e-6 && fabs(pk.p2 - 0.2) < 1e-6);
    double h = -(0.1 * log(0.1) + 0.2 * log(0.2) * 2 + 0.5 * log(0.5));
    assert_true(fabs(pk.entropy - h) < 1e-6);
    float tie[3] = {1.0f, 1.0f, -INFINITY}; /* two equal tops: margin 0, entropy log 2 */
    um_pick_row(&s, tie, NULL, 3, &pk);
    assert_true(fabs(pk.p1 - pk.p2) < 1e-12 && fabs(pk.entropy - log(2.0)) < 1e-9);
}

/* A reproducible uniform in [0, 1) for the tests below (an LCG's top bits). */
static double lcg_uniform(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*state >> 11) / 9007199254740992.0;
}

/* The nucleus the plain way, as transformers' TopPLogitsWarper and Dream's
 * top_p_logits state it: sort every token by logit, softmax of logits / T,
 * keep a token while the mass sorted before it is at most top_p (the first
 * always). */
static void plain_nucleus(const float *logits, int n, double top_p, double temp, bool *keep) {
    int *order = malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort, largest first */
        for (int j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double scale = temp > 0 ? 1.0 / temp : 1.0, z = 0, before = 0;
    for (int i = 0; i < n; i++)
        z += exp((logits[i] - logits[order[0]]) * scale);
    for (int r = 0; r < n; r++) {
        keep[order[r]] = r == 0 || before / z <= top_p;
        before += exp((logits[order[r]] - logits[order[0]]) * scale);
    }
    free(order);
}

/* min_p against the rule computed plainly: softmax of logits / T (T = 1 at
 * temperature 0), keep p_i >= min_p * max p; the pick's entropy and scores
 * are then those of the kept tokens' softmax of the logits. */
static void min_p_filter(void **state) {
    static const double min_ps[] = {0.01, 0.1, 0.5, 0.9, 1.0};
    static const double temps[] = {0, 0.7, 1.5};
    uint64_t rng = 23;
    enum { N = 600 };
    static float logits[N], work[N];
    for (int i = 0; i < N; i++)
        logits[i] = (float)(12.0 * lcg_uniform(&rng));
    for (size_t pi = 0; pi < sizeof min_ps / sizeof *min_ps; pi++)
        for (size_t ti = 0; ti < sizeof temps / sizeof *temps; ti++) {
            double t = temps[ti] > 0 ? temps[ti] : 1.0, mx = -INFINITY, z = 0, zt = 0;
            for (int i = 0; i < N; i++)
                mx = fmax(mx, logits[i]);
            for (int i = 0; i < N; i++)
                zt += exp((logits[i] - mx) / t);
            bool keep[N];
            int kept = 0;
            for (int i = 0; i < N; i++) { /* p_i / p_max, each from the tempered softmax */
                double p = exp((logits[i] - mx) / t) / zt, pmax = 1.0 / zt;
                keep[i] = p >= min_ps[pi] * pmax * (1 - 1e-12);
                kept += keep[i];
                if (keep[i])
                    z += exp(logits[i] - mx);
            }
            double h = 0;
            for (int i = 0; i < N; i++)
                if (keep[i]) {
                    double q = exp(logits[i] - mx) / z;
                    h -= q * log(q);
                }
            um_pick_request r = {.uncond_row = -1, .eos_inf = -1, .eot_inf = -1, .stats = true,
                                 .min_p = min_ps[pi], .temperature = temps[ti], .seed = 5, .pos = 3};
            memcpy(work, logits, sizeof work);
            um_pick pk;
            um_pick_row(&r, work, NULL, N, &pk);
            int left = 0;
            for (int i = 0; i < N; i++)
                left += work[i] != -INFINITY;
            assert_int_equal(left, kept);
            assert_true(keep[pk.token]);
            if (fabs(pk.entropy - h) > 1e-9)
                fail_msg("min_p %g temp %g: entropy %.12g, plain rule (%d tokens) %.12g", min_ps[pi], temps[ti],
                         pk.entropy, kept, h);
        }
}

/* top_p against plain_nucleus on random rows: peaked and flat, small and
 * large vocabularies (a nucleus past the 1024 largest logits too), at
 * temperature 0 (the token, its probability, the top two and the entropy of
 * the kept tokens' softmax) and above (the entropy, and the sampled token
 * inside the nucleus). */
static void top_p_nucleus(void **state) {
    static const struct {
        int n;
        double spread; /* logits uniform in [0, spread) */
    } rows[] = {{40, 8.0}, {512, 20.0}, {3000, 0.5}, {3000, 6.0}};
    static const double top_ps[] = {0.05, 0.3, 0.7, 0.9, 0.99};
    static const double temps[] = {0, 0.5, 2.0};
    uint64_t rng = 17;
    int checked = 0;
    for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++) {
        int n = rows[ri].n;
        float *logits = malloc((size_t)n * sizeof *logits), *work = malloc((size_t)n * sizeof *work);
        bool *keep = malloc((size_t)n * sizeof *keep);
        for (int i = 0; i < n; i++)
            logits[i] = (float)(rows[ri].spread * lcg_uniform(&rng));
        for (size_t pi = 0; pi < sizeof top_ps / sizeof *top_ps; pi++)
            for (size_t ti = 0; ti < sizeof temps / sizeof *temps; ti++) {
                plain_nucleus(logits, n, top_ps[pi], temps[ti], keep);
                /* the kept tokens' softmax of the logits themselves: what the pick scores by */
                double z = 0, mx = -INFINITY, h = 0, p1 = 0, p2 = 0;
                int kept = 0, best = -1;
                for (int i = 0; i < n; i++)
                    if (keep[i] && logits[i] > mx) {
                        mx = logits[i];
                        best = i;
                    }
                for (int i = 0; i < n; i++)
                    if (keep[i]) {
                        z += exp(logits[i] - mx);
                        kept++;
                    }
                for (int i = 0; i < n; i++)
                    if (keep[i]) {
                        double q = exp(logits[i] - mx) / z;
                        h -= q * log(q);
                        if (q > p1) {
                            p2 = p1;
                            p1 = q;
                        } else if (q > p2) {
                            p2 = q;
                        }
                    }
                um_pick_request r = {.uncond_row = -1, .eos_inf = -1, .eot_inf = -1, .stats = true,
                                     .top_p = top_ps[pi], .temperature = temps[ti], .seed = 5, .pos = 3};
                memcpy(work, logits, (size_t)n * sizeof *work);
                um_pick pk;
                um_pick_row(&r, work, NULL, n, &pk);
                if (fabs(pk.entropy - h) > 1e-9)
                    fail_msg("vocab %d top_p %g temp %g: entropy %.12g, plain nucleus (%d tokens) %.12g", n,
                             top_ps[pi], temps[ti], pk.entropy, kept, h);
                assert_true(keep[pk.token]);
                if (temps[ti] == 0) {
                    assert_int_equal(pk.token, best);
                    assert_true(fabs(pk.conf - p1) < 1e-12 && fabs(pk.p1 - p1) < 1e-12 && fabs(pk.p2 - p2) < 1e-12);
                }
                checked += kept > 1024; /* the bisection's side */
            }
        free(logits);
        free(work);
        free(keep);
    }
    assert_true(checked > 0);
}

/* alg_temp: a count-based decoder samples its positions from
 * softmax(score / alg_temp) without replacement. One position out of three:
 * how often each is chosen over many draws, against that softmax; two out of
 * three: distinct positions; alg_temp near 0: the most confident. */
static void alg_temp_sampling(void **state) {
    um_generate_params p = um_generate_default_params();
    p.decoder = UM_DECODER_TOPK;
    p.alg_temp = 0.5;
    int32_t pos[] = {4, 5, 6}, out[3];
    um_pick pk[] = {pick_conf(1, 0.2), pick_conf(1, 0.5), pick_conf(1, 0.9)};
    double z = 0, want[3];
    for (int i = 0; i < 3; i++)
        z += want[i] = exp(pk[i].conf / p.alg_temp);
    int hits[3] = {0}, trials = 40000;
    uint64_t rng = 3;
    for (int t = 0; t < trials; t++) {
        for (int i = 0; i < 3; i++)
            pk[i].draw = lcg_uniform(&rng);
        assert_int_equal(um_decode_select(&p, pos, pk, 3, 1, -1, 1.0, out), 1);
        hits[out[0] - 4]++;
        assert_int_equal(um_decode_select(&p, pos, pk, 3, 2, -1, 1.0, out), 2);
        assert_true(out[0] != out[1]);
    }
    for (int i = 0; i < 3; i++)
        if (fabs((double)hits[i] / trials - want[i] / z) > 0.01)
            fail_msg("position %d chosen %.4f of the time, softmax %.4f", pos[i], (double)hits[i] / trials,
                     want[i] / z);
    p.alg_temp = 1e-9;
    for (int i = 0; i < 3; i++)
        pk[i].draw = 0.01 + 0.49 * i;
    expect_positions(out, um_decode_select(&p, pos, pk, 3, 2, -1, 1.0, out), (int32_t[]){6, 5}, 2);
}

/* Hierarchical: the best of each run of adjacent candidates when above the
 * low threshold, every candidate above the high one, and the best overall. */
static void hierarchical_spans(void **state) {
    um_generate_params p = um_generate_default_params();
    p.decoder = UM_DECODER_HIERARCHICAL;
    p.low_threshold = 0.4;
    p.threshold = 0.9;
    /* runs: [10 11 12] best 0.7 at 11; [14 15] best 0.35 (too low); [20] 0.95 */
    int32_t pos[] = {10, 11, 12, 14, 15, 20};
    um_pick pk[] = {pick_conf(1, 0.5), pick_conf(1, 0.7),  pick_conf(1, 0.3),
                    pick_conf(1, 0.35), pick_conf(1, 0.2), pick_conf(1, 0.95)};
    int32_t out[6];
    expect_positions(out, um_decode_select(&p, pos, pk, 6, 0, -1, 1.0, out), (int32_t[]){20, 11}, 2);
    p.low_threshold = 0.3; /* now the second run's best counts too */
    expect_positions(out, um_decode_select(&p, pos, pk, 6, 0, -1, 1.0, out), (int32_t[]){20, 11, 14}, 3);
    p.threshold = 0.45; /* 0.5 at 10 is not its run's best but above the high threshold */
    expect_positions(out, um_decode_select(&p, pos, pk, 6, 0, -1, 1.0, out), (int32_t[]){20, 11, 10, 14}, 4);
    /* one run, everything below the low threshold: the best alone */
    int32_t run[] = {3, 4, 5};
    um_pick low[] = {pick_conf(1, 0.1), pick_conf(1, 0.2), pick_conf(1, 0.15)};
    p.low_threshold = 0.4;
    p.threshold = 0.9;
    expect_positions(out, um_decode_select(&p, run, low, 3, 0, -1, 1.0, out), (int32_t[]){4}, 1);
}

/* The credit pick (kernels/pick.c) of one position: its boost lands in l. */
static void apply_credit(um_credit *c, int pos, float *l, int n, double alpha, double gamma) {
    um_pick_request r = {.uncond_row = -1, .eos_inf = -1, .eot_inf = -1, .credit_alpha = alpha, .credit_gamma = gamma};
    um_error err;
    assert_int_equal(um_credit_reserve(c, &err), UM_OK);
    um_credit_point(c, pos, &r);
    um_pick pk;
    um_pick_row(&r, l, NULL, n, &pk);
}

/* Credit: each step decays the block's credit, adds p_top1^gamma to every
 * position's top-1 token and boosts logits by alpha * log(1 + credit). */
static void credit_accumulation(void **state) {
    const double alpha = 0.7, gamma = 0.2, decay = 0.8;
    um_credit c = {0};
    um_error err;
    assert_int_equal(um_credit_begin_block(&c, 10, 4, &err), UM_OK);
    float l1[3] = {2.0f, 1.0f, 0.0f};
    double p1 = exp(2.0) / (exp(2.0) + exp(1.0) + 1.0), c0 = pow(p1, gamma);
    um_credit_step(&c, decay);
    apply_credit(&c, 11, l1, 3, alpha, gamma);
    assert_true(fabs(l1[0] - (2.0 + alpha * log(1 + c0))) < 1e-5);
    assert_true(l1[1] == 1.0f && l1[2] == 0.0f);
    /* outside the block: untouched */
    float out[3] = {2.0f, 1.0f, 0.0f};
    apply_credit(&c, 14, out, 3, alpha, gamma);
    assert_true(out[0] == 2.0f);

    /* second step: the old credit decays and the same top-1 adds again */
    float l2[3] = {2.0f, 1.0f, 0.0f};
    um_credit_step(&c, decay);
    apply_credit(&c, 11, l2, 3, alpha, gamma);
    double c1 = decay * c0 + pow(p1, gamma);
    assert_true(fabs(l2[0] - (2.0 + alpha * log(1 + c1))) < 1e-5);

    /* third step: another token is on top; both keep their credit */
    float l3[3] = {0.0f, 3.0f, 0.0f};
    double q1 = exp(3.0) / (exp(3.0) + 2.0);
    um_credit_step(&c, decay);
    apply_credit(&c, 11, l3, 3, alpha, gamma);
    double c2 = decay * c1;
    assert_true(fabs(l3[0] - alpha * log(1 + c2)) < 1e-5);
    assert_true(fabs(l3[1] - (3.0 + alpha * log(1 + pow(q1, gamma)))) < 1e-5);

    /* a position collecting more tokens than the initial capacity */
    for (int t = 0; t < 20; t++) {
        float l[24] = {0};
        l[t] = 5.0f;
        um_credit_step(&c, decay);
        apply_credit(&c, 12, l, 24, alpha, gamma);
        assert_true(l[t] > 5.0f);
    }
    assert_int_equal(c.n[2], 20);
    /* a new block starts from nothing */
    assert_int_equal(um_credit_begin_block(&c, 14, 4, &err), UM_OK);
    float l4[3] = {2.0f, 1.0f, 0.0f};
    um_credit_step(&c, decay);
    apply_credit(&c, 14, l4, 3, alpha, gamma);
    assert_true(fabs(l4[0] - (2.0 + alpha * log(1 + c0))) < 1e-5);
    um_credit_free(&c);
}

static void power_schedule_counts(void **state) {
    int c[64];
    assert_int_equal(um_schedule_power_counts(32, c, 64), 6);
    int want32[] = {1, 2, 4, 8, 16, 1};
    assert_memory_equal(c, want32, sizeof want32);
    assert_int_equal(um_schedule_power_counts(31, c, 64), 5);
    assert_int_equal(c[4], 16);
    assert_int_equal(um_schedule_power_counts(10, c, 64), 4);
    int want10[] = {1, 2, 4, 3};
    assert_memory_equal(c, want10, sizeof want10);
    assert_int_equal(um_schedule_power_counts(1, c, 64), 1);
    assert_int_equal(um_schedule_power_counts(0, c, 64), 0);
    for (int n = 1; n <= 4096; n++) { /* O(log n) steps that cover every mask */
        int k = um_schedule_power_counts(n, c, 64), sum = 0;
        for (int i = 0; i < k; i++)
            sum += c[i];
        assert_int_equal(sum, n);
        assert_true(k == (int)ceil(log2(n + 1.0)));
    }
    um_generate_params p = um_generate_default_params();
    p.schedule = UM_SCHEDULE_POWER;
    assert_int_equal(um_schedule_block_counts(&p, 8, 8, c), 4); /* 1 2 4 1 */
    p.schedule = UM_SCHEDULE_UNIFORM;
    assert_int_equal(um_schedule_block_counts(&p, 8, 4, c), 4); /* 2 2 2 2 */
    assert_int_equal(c[3], 2);
}

/* EOS early rejection: gamma rises linearly from 0.4 to 1 over a block's
 * steps and scales an EOS candidate's confidence. */
static void eos_rejection(void **state) {
    assert_true(fabs(um_schedule_eos_gamma(0.4, 0, 4) - 0.4) < 1e-12);
    assert_true(fabs(um_schedule_eos_gamma(0.4, 1, 4) - 0.6) < 1e-12);
    assert_true(fabs(um_schedule_eos_gamma(0.4, 2, 4) - 0.8) < 1e-12);
    assert_true(um_schedule_eos_gamma(0.4, 3, 4) == 1.0 && um_schedule_eos_gamma(0.4, 9, 4) == 1.0);
    assert_true(um_schedule_eos_gamma(0.4, 0, 1) == 1.0);
    um_generate_params p = um_generate_default_params();
    int32_t pos[] = {5, 6}, out[2];
    um_pick pk[] = {pick_conf(EOS, 0.95), pick_conf(7, 0.5)};
    expect_positions(out, um_decode_select(&p, pos, pk, 2, 1, EOS, 1.0, out), (int32_t[]){5}, 1);
    expect_positions(out, um_decode_select(&p, pos, pk, 2, 1, EOS, 0.4, out), (int32_t[]){6}, 1); /* 0.38 < 0.5 */
    p.decoder = UM_DECODER_THRESHOLD;
    p.threshold = 0.9;
    expect_positions(out, um_decode_select(&p, pos, pk, 2, 0, EOS, 0.4, out), (int32_t[]){6}, 1);
    expect_positions(out, um_decode_select(&p, pos, pk, 2, 0, EOS, 1.0, out), (int32_t[]){5}, 1);
}

/* Early stop: the first generated EOS with no mask before it ends the
 * generation; the masks after it become EOS, committed tokens stay. */
static void early_stop_canvas(void **state) {
    int32_t prompt[] = {7, EOS, 9};
    um_canvas c;
    um_error err;
    assert_int_equal(um_canvas_init(&c, prompt, 3, 6, 1, MASK, &err), UM_OK);
    assert_false(um_canvas_eos_done(&c, EOS)); /* an EOS in the prompt does not count */
    c.rows[3] = 11;
    c.rows[5] = EOS; /* a mask at 4 before it */
    assert_false(um_canvas_eos_done(&c, EOS));
    c.rows[4] = 12;
    c.rows[7] = 13;
    assert_true(um_canvas_eos_done(&c, EOS));
    int32_t want[] = {7, EOS, 9, 11, 12, EOS, EOS, 13, EOS};
    assert_memory_equal(c.rows, want, sizeof want);
    assert_false(um_canvas_eos_done(&c, -1));
    um_canvas_free(&c);
}

/* ---- invariants on the tiny models ---------------------------------------- */

typedef struct {
    int32_t canvas[256];
    int len, prompt_len, block_length, n_steps, last_block;
    bool ok;
    char why[256];
} tracker;

/* Every step: only masks up to the current block's end are committed, never a
 * committed position again, blocks in order; the callback's canvas agrees. */
static int track_step(const um_step_info *info, void *user) {
    tracker *t = user;
    int block_end = t->prompt_len + (info->block + 1) * t->block_length;
    if (info->step != t->n_steps++ || info->block < t->last_block) {
        t->ok = false;
        snprintf(t->why, sizeof t->why, "step %d block %d out of order", info->step, info->block);
    }
    t->last_block = info->block;
    for (int i = 0; i < info->n_committed; i++) {
        int p = info->committed_pos[i];
        if (p >= block_end || t->canvas[p] != MASK) {
            t->ok = false;
            snprintf(t->why, sizeof t->why, "step %d committed position %d (block end %d, held %d)", info->step, p,
                     block_end, t->canvas[p]);
        }
        t->canvas[p] = info->committed_tok[i];
    }
    for (int i = 0; i < t->len; i++)
        if (t->canvas[i] != info->canvas[i] && !(t->canvas[i] == MASK && info->canvas[i] == EOS)) {
            t->ok = false;
            snprintf(t->why, sizeof t->why, "step %d: canvas position %d is %d, commits say %d", info->step, i,
                     info->canvas[i], t->canvas[i]);
        }
    return 0;
}

static um_generation generate_tracked(um_model *m, um_generate_params p, tracker *t) {
    memset(t, 0, sizeof *t);
    t->ok = true;
    t->prompt_len = N_PROMPT;
    t->block_length = p.block_length;
    t->len = N_PROMPT + p.gen_length;
    for (int i = 0; i < t->len; i++)
        t->canvas[i] = i < N_PROMPT ? PROMPT[i] : MASK;
    p.on_step = track_step;
    p.user_data = t;
    um_generation g;
    um_error err;
    if (t_generate(m, PROMPT, N_PROMPT, &p, &g, &err) != UM_OK)
        fail_msg("%s", err.msg);
    if (!t->ok)
        fail_msg("%s", t->why);
    return g;
}

static const char *const CACHES[] = {"none", "prefix", "dual", "vicinity"};
static const char *const DECODERS[] = {"topk", "threshold", "factor", "margin", "entropy", "med", "hierarchical",
                                       "credit"};

/* Every cache x decoder (and the power schedule, EOS rejection, guidance,
 * temperature): every block finishes, NFE <= gen_length, the same seed gives
 * the same output. */
static void every_combination_invariants(void **state) {
    /* the mixture of experts too: its mask and EOS ids are the dense models' */
    const char *models[] = {"tiny-llada", "tiny-llada-gqa", "llada-moe/tiny-llada-moe"};
    int runs = 0;
    for (int mi = 0; mi < 3; mi++) {
        um_model *m = open_fixture_model(models[mi], "hf-bf16", 2);
        for (int cache = 0; cache < 4; cache++)
            for (int dec = 0; dec < 8; dec++)
                for (int variant = 0; variant < (mi < 2 ? 3 : 1); variant++) { /* LLaDA-MoE: the plain one */
                    um_generate_params p = um_generate_default_params();
                    p.gen_length = 32;
                    p.block_length = 8;
                    p.steps = 32;
                    p.cache = (um_cache_mode)cache;
                    p.decoder = (um_decoder)dec;
                    p.threshold = 0.3; /* the tiny models are rarely sure: make parallel commits happen */
                    p.factor = 2.0;
                    p.entropy_bound = 3.0;
                    p.cache_window = 3;
                    p.cache_refresh = variant == 2 ? 3 : 0;
                    if (variant == 1) {
                        p.temperature = 0.7;
                        p.seed = 11;
                        p.eos_rejection = true;
                        if (um_decoder_counts(p.decoder))
                            p.schedule = UM_SCHEDULE_POWER;
                    }
                    if (variant == 2)
                        p.cfg_scale = 1.0;
                    tracker t;
                    um_generation a = generate_tracked(m, p, &t);
                    for (int i = N_PROMPT; i < a.n_tokens; i++)
                        if (a.tokens[i] == MASK)
                            fail_msg("%s cache %s decoder %s variant %d: position %d still masked", models[mi],
                                     CACHES[cache], DECODERS[dec], variant, i);
                    if (a.nfe > p.gen_length || a.nfe != t.n_steps)
                        fail_msg("%s cache %s decoder %s variant %d: nfe %d (%d steps)", models[mi], CACHES[cache],
                                 DECODERS[dec], variant, a.nfe, t.n_steps);
                    if (p.schedule == UM_SCHEDULE_POWER)
                        assert_int_equal(a.nfe, 4 * 4); /* 1 2 4 1 per block of 8 */
                    um_generation b = generate_tracked(m, p, &t);
                    assert_memory_equal(a.tokens, b.tokens, (size_t)a.n_tokens * sizeof *a.tokens);
                    assert_int_equal(a.nfe, b.nfe);
                    um_generation_free(&a);
                    um_generation_free(&b);
                    runs++;
                }
        um_model_close(m);
    }
    print_message("    %d combinations: blocks finish, nfe <= gen_length, reproducible\n", runs);
}

/* The parallel decoders need fewer forward passes than the reference when the
 * model is sure enough; the dual cache gives the same NFE as no cache for the
 * count-based decoders. */
static void parallel_decoding_saves_steps(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 2);
    um_generate_params p = um_generate_default_params();
    p.gen_length = 32;
    p.block_length = 8;
    p.steps = 32;
    tracker t;
    um_generation ref = generate_tracked(m, p, &t);
    assert_int_equal(ref.nfe, 32);
    p.decoder = UM_DECODER_THRESHOLD;
    p.threshold = 0.2;
    um_generation thr = generate_tracked(m, p, &t);
    assert_true(thr.nfe < ref.nfe);
    p.decoder = UM_DECODER_TOPK;
    p.schedule = UM_SCHEDULE_POWER;
    um_generation pw = generate_tracked(m, p, &t);
    assert_int_equal(pw.nfe, 16);
    um_generation_free(&ref);
    um_generation_free(&thr);
    um_generation_free(&pw);
    um_model_close(m);
}

/* Masks inside the prompt (infilling) are decoded with the first block: the
 * cached steps recompute them too, so every cache and decoder fills them,
 * also with gen_length 0 (only the prompt's masks). */
static void infilling_with_caches(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 2);
    int32_t prompt[N_PROMPT];
    memcpy(prompt, PROMPT, sizeof prompt);
    prompt[3] = prompt[4] = prompt[9] = MASK;
    for (int gen = 0; gen <= 16; gen += 16)
        for (int cache = 0; cache < 4; cache++)
            for (int dec = 0; dec < 8; dec++) {
                um_generate_params p = um_generate_default_params();
                p.gen_length = gen;
                p.block_length = 8;
                p.steps = gen ? 16 : 4;
                p.cache = (um_cache_mode)cache;
                p.decoder = (um_decoder)dec;
                p.cache_window = 2;
                p.max_nfe = 100; /* a guard: the loop must end long before */
                um_generation g;
                um_error err;
                if (t_generate(m, prompt, N_PROMPT, &p, &g, &err) != UM_OK)
                    fail_msg("gen %d cache %s decoder %s: %s", gen, CACHES[cache], DECODERS[dec], err.msg);
                for (int i = 0; i < g.n_tokens; i++)
                    if (g.tokens[i] == MASK)
                        fail_msg("gen %d cache %s decoder %s: position %d still masked (nfe %d)", gen,
                                 CACHES[cache], DECODERS[dec], i, g.nfe);
                assert_true(g.nfe <= gen + 3 + 2);
                um_generation_free(&g);
            }
    um_model_close(m);
}

/* max_nfe ends the generation after that many forward passes. */
static void max_nfe_budget(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 2);
    um_generate_params p = um_generate_default_params();
    p.gen_length = 32;
    p.block_length = 8;
    p.steps = 32;
    p.cache = UM_CACHE_DUAL;
    p.max_nfe = 5;
    tracker t;
    um_generation g = generate_tracked(m, p, &t);
    assert_int_equal(g.nfe, 5);
    int masks = 0;
    for (int i = N_PROMPT; i < g.n_tokens; i++)
        masks += g.tokens[i] == MASK;
    assert_int_equal(masks, 32 - 5);
    um_generation_free(&g);
    um_model_close(m);
}

static void bad_parameters(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 1);
    um_error err;
    um_generation g;
    um_generate_params p = um_generate_default_params();
    p.gen_length = p.steps = 8;
    p.block_length = 8;
    p.decoder = UM_DECODER_THRESHOLD;
    p.schedule = UM_SCHEDULE_POWER;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "power schedule"));
    p.schedule = UM_SCHEDULE_UNIFORM;
    p.threshold = 1.5;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "threshold"));
    p.threshold = 0.9;
    p.decoder = UM_DECODER_MARGIN;
    p.remasking = UM_REMASK_RANDOM;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "random remasking"));
    p.remasking = UM_REMASK_LOW_CONFIDENCE;
    p.decoder = (um_decoder)42;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.decoder = UM_DECODER_TOPK;
    p.cache = (um_cache_mode)9;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.cache = UM_CACHE_VICINITY;
    p.cache_window = -1;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.cache = UM_CACHE_NONE;
    p.decoder = UM_DECODER_FACTOR;
    p.factor = 0;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.decoder = UM_DECODER_TOPK;
    p.max_nfe = -1;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.max_nfe = 0;
    /* dInfer's loop: its decoders only, a sane unroll, warmup with the vicinity cache, IterSmooth in it */
    p.loop = UM_LOOP_DINFER;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "threshold, credit or hierarchical"));
    p.decoder = UM_DECODER_THRESHOLD;
    p.expected_tpf = 0;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.expected_tpf = 8;
    p.warmup_steps = 2;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "warmup_steps"));
    p.warmup_steps = 0;
    p.cfg_scale = 1;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    p.cfg_scale = 0;
    p.loop = UM_LOOP_STEPS;
    p.iter_smooth = true;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "IterSmooth"));
    p.iter_smooth = false;
    p.cache = UM_CACHE_VICINITY;
    p.after_look = -2;
    assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_ERR_ARG);
    um_model_close(m);
}

/* The command: help lists the flags, unknown names are usage errors, and
 * the fast flags compose with guidance and temperature. */
static void cli_flags(void **state) {
    cmd_result r = run_unmask("run --help");
    assert_int_equal(r.status, 0);
    const char *flags[] = {"--cache",     "--decoder",       "--threshold",    "--factor",     "--entropy-bound",
                           "--window",    "--refresh",       "--low-threshold", "--schedule",  "--eos-rejection",
                           "--early-stop", "--max-nfe",      "vicinity",       "hierarchical", "credit",
                           "--credit-alpha", "--credit-gamma", "--credit-decay", "--eos-gamma", "--loop",
                           "--maximum-unroll", "--expected-tpf", "--start-block-align", "--warmup-steps",
                           "--prefix-look", "--after-look", "--iter-smooth", "--cont-weight", "--cont-weight-init",
                           "--cont-weight-growth", "--threshold-decay"};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        if (!strstr(r.out, flags[i]))
            fail_msg("run --help does not mention %s", flags[i]);
    cmd_result_free(&r);
    const char *model = fixture("llada/tiny-llada/hf-bf16");
    r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 8 --cache bogus", model);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--cache: expected none, prefix, dual or vicinity, got 'bogus'"));
    cmd_result_free(&r);
    r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 8 --decoder nope", model);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--decoder: expected"));
    cmd_result_free(&r);
    r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 8 --decoder threshold --schedule power", model);
    assert_int_equal(r.status, 2); /* settings that do not go together: bad usage */
    assert_non_null(strstr(r.err, "power schedule"));
    cmd_result_free(&r);
    r = run_unmask("run -m %s --prompt-tokens 1,2,3 -n 16 --block-length 8 --cache dual --decoder credit "
                   "--threshold 0.3 --temp 0.5 -s 3 --cfg-scale 1 --eos-rejection --early-stop --json",
                   model);
    assert_int_equal(r.status, 0);
    cJSON *out = cJSON_Parse(r.out);
    assert_non_null(out);
    int nfe = cJSON_GetObjectItem(out, "nfe")->valueint;
    assert_true(nfe >= 2 && nfe <= 16);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "generated")), 16);
    cJSON_Delete(out);
    cmd_result_free(&r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(fastdllm_mha_bf16),
    cmocka_unit_test(fastdllm_mha_f32_sharded),
    cmocka_unit_test(fastdllm_gqa_bf16),
    cmocka_unit_test(fastdllm_gqa_f32_sharded),
    cmocka_unit_test(fastdllm_cases_cli),
    cmocka_unit_test(cached_forward_matches_full),
    cmocka_unit_test(batched_forward_matches_single),
    cmocka_unit_test(vicinity_covering_all_is_reference),
    cmocka_unit_test(threshold_rule),
    cmocka_unit_test(factor_rule),
    cmocka_unit_test(margin_and_entropy_rules),
    cmocka_unit_test(pick_statistics),
    cmocka_unit_test(top_p_nucleus),
    cmocka_unit_test(min_p_filter),
    cmocka_unit_test(alg_temp_sampling),
    cmocka_unit_test(hierarchical_spans),
    cmocka_unit_test(credit_accumulation),
    cmocka_unit_test(power_schedule_counts),
    cmocka_unit_test(eos_rejection),
    cmocka_unit_test(early_stop_canvas),
    cmocka_unit_test(every_combination_invariants),
    cmocka_unit_test(parallel_decoding_saves_steps),
    cmocka_unit_test(infilling_with_caches),
    cmocka_unit_test(max_nfe_budget),
    cmocka_unit_test(bad_parameters),
    cmocka_unit_test(cli_flags),
};
const test_group decode_group = {"decode", tests, sizeof tests / sizeof *tests};
