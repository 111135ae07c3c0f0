/* What can be proven about the sampler beyond the fixtures: the schedule's
 * counts (LLaDA's get_num_transfer_tokens), the top-k rule, the confidence
 * options on hand-made logits, determinism of random remasking and
 * temperature sampling, and a chi-square test that temperature sampling draws
 * from softmax(logits / T). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/diffusion.h"
#include "testutil.h"

static const int32_t PROMPT[] = {37, 37, 126, 38, 454, 179, 88, 187, 363, 230, 53, 474};
#define N_PROMPT ((int)(sizeof PROMPT / sizeof *PROMPT))

/* get_num_transfer_tokens: base = n // steps, the first n % steps steps get one more. */
static void schedule_counts(void **state) {
    int c[32];
    um_schedule_transfer_counts(10, 4, c);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], 3);
    assert_int_equal(c[2], 2);
    assert_int_equal(c[3], 2);
    um_schedule_transfer_counts(7, 3, c);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], 2);
    assert_int_equal(c[2], 2);
    um_schedule_transfer_counts(8, 32, c);
    for (int i = 0; i < 32; i++)
        assert_int_equal(c[i], i < 8 ? 1 : 0);
    um_schedule_transfer_counts(32, 32, c);
    for (int i = 0; i < 32; i++)
        assert_int_equal(c[i], 1);
}

/* The reference sampler's rule on bare confidences (the topk decoder):
 * positions with the k highest confidences, ties to the lower position,
 * written to out in that order; returns how many. */
static int select_topk(const int32_t *pos, const double *conf, int n, int k, int32_t *out) {
    um_generate_params p = um_generate_default_params();
    um_pick picks[16] = {{0}};
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        picks[i].conf = conf[i];
    return um_decode_select(&p, pos, picks, n, k, -1, 1.0, out);
}

/* The token and confidence a pick (kernels/pick.c) gives one position. */
static double sample_position(const um_pick_request *s, float *logits, int n_vocab, int step, int pos,
                              int32_t *token) {
    um_pick_request r = *s;
    r.step = step;
    r.pos = pos;
    um_pick pk;
    um_pick_row(&r, logits, NULL, n_vocab, &pk);
    *token = pk.token;
    return pk.conf;
}

static void topk_order_and_ties(void **state) {
    int32_t pos[] = {9, 4, 7, 2, 5};
    double conf[] = {0.5, 0.9, 0.5, 0.1, 0.9};
    int32_t out[5];
    assert_int_equal(select_topk(pos, conf, 5, 3, out), 3);
    assert_int_equal(out[0], 4); /* 0.9 at 4 and 5: lower position first */
    assert_int_equal(out[1], 5);
    assert_int_equal(out[2], 7); /* 0.5 at 7 and 9 */
    assert_int_equal(select_topk(pos, conf, 5, 9, out), 5);
    assert_int_equal(out[4], 2);
    assert_int_equal(select_topk(pos, conf, 5, 0, out), 0);
}

/* Low-confidence remasking: confidence = softmax(logits)[argmax]; with the
 * reference's confidence_eos_eot_inf, EOT's logit is -inf in that softmax. */
static void confidence_rules(void **state) {
    um_pick_request s = {.uncond_row = -1, .eos_inf = -1, .eot_inf = -1};
    float logits[3] = {1.0f, 3.0f, 2.0f};
    int32_t tok;
    double e1 = exp(1.0), e2 = exp(2.0), e3 = exp(3.0);
    double conf = sample_position(&s, logits, 3, 0, 0, &tok);
    assert_int_equal(tok, 1);
    assert_true(fabs(conf - e3 / (e1 + e2 + e3)) < 1e-7);

    s.eot_inf = 1; /* EOT is the argmax: chosen, but its confidence is 0 */
    float l2[3] = {1.0f, 3.0f, 2.0f};
    conf = sample_position(&s, l2, 3, 0, 0, &tok);
    assert_int_equal(tok, 1);
    assert_true(conf == 0.0);

    s.eot_inf = 0; /* EOT elsewhere: the softmax loses its mass */
    float l3[3] = {1.0f, 3.0f, 2.0f};
    conf = sample_position(&s, l3, 3, 0, 0, &tok);
    assert_int_equal(tok, 1);
    assert_true(fabs(conf - e3 / (e2 + e3)) < 1e-7);

    s.eot_inf = -1; /* random remasking: confidence is a uniform draw */
    s.random_remasking = true;
    float l4[3] = {1.0f, 3.0f, 2.0f};
    double r1 = sample_position(&s, l4, 3, 5, 7, &tok);
    double r2 = sample_position(&s, l4, 3, 5, 7, &tok);
    double r3 = sample_position(&s, l4, 3, 5, 8, &tok);
    assert_true(r1 >= 0 && r1 < 1 && r1 == r2 && r1 != r3);
}

typedef struct {
    int32_t canvas[256];
    int len, prompt_len, n_steps, block_length, steps_per_block;
    int counts[256];
    bool ok;
    char why[256];
} invariants;

/* Checks on every step: only masked positions inside the current block or
 * earlier are committed, never a committed one again. */
static int check_step(const um_step_info *info, void *user) {
    invariants *v = user;
    v->counts[v->n_steps++] = info->n_committed;
    int block_end = v->prompt_len + (info->block + 1) * v->block_length;
    for (int i = 0; i < info->n_committed; i++) {
        int p = info->committed_pos[i];
        if (p >= block_end || v->canvas[p] != 500) {
            v->ok = false;
            snprintf(v->why, sizeof v->why, "step %d committed position %d (block end %d, was %d)", info->step, p,
                     block_end, v->canvas[p]);
        }
        v->canvas[p] = info->committed_tok[i];
    }
    return 0;
}

static um_generation generate_checked(um_model *m, um_generate_params p, invariants *v) {
    memset(v, 0, sizeof *v);
    v->ok = true;
    v->prompt_len = N_PROMPT;
    v->block_length = p.block_length;
    v->len = N_PROMPT + p.gen_length;
    for (int i = 0; i < v->len; i++)
        v->canvas[i] = i < N_PROMPT ? PROMPT[i] : 500;
    p.on_step = check_step;
    p.user_data = v;
    um_generation g;
    um_error err;
    if (t_generate(m, PROMPT, N_PROMPT, &p, &g, &err) != UM_OK)
        fail_msg("%s", err.msg);
    if (!v->ok)
        fail_msg("%s", v->why);
    return g;
}

static void random_remasking(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 2);
    um_generate_params p = um_generate_default_params();
    p.gen_length = 30;
    p.block_length = 10;
    p.steps = 12; /* 4 steps per block: 10 masks as 3, 3, 2, 2 */
    p.remasking = UM_REMASK_RANDOM;
    p.seed = 7;
    invariants v;
    um_generation a = generate_checked(m, p, &v);
    assert_int_equal(a.nfe, 12);
    int want[4] = {3, 3, 2, 2};
    for (int s = 0; s < 12; s++)
        assert_int_equal(v.counts[s], want[s % 4]);
    for (int i = N_PROMPT; i < a.n_tokens; i++)
        assert_int_not_equal(a.tokens[i], 500);
    assert_memory_equal(v.canvas, a.tokens, (size_t)a.n_tokens * sizeof(int32_t));

    um_generation b = generate_checked(m, p, &v);
    assert_memory_equal(a.tokens, b.tokens, (size_t)a.n_tokens * sizeof(int32_t));

    /* other seeds commit in other orders: some of 8 seeds must change the output */
    int differ = 0;
    for (uint64_t seed = 100; seed < 108; seed++) {
        p.seed = seed;
        um_generation c = generate_checked(m, p, &v);
        differ += memcmp(a.tokens, c.tokens, (size_t)a.n_tokens * sizeof(int32_t)) != 0;
        um_generation_free(&c);
    }
    assert_true(differ > 0);
    um_generation_free(&a);
    um_generation_free(&b);
    um_model_close(m);
}

static void temperature_is_seeded(void **state) {
    um_model *m = open_fixture_model("tiny-llada-gqa", "hf-bf16", 2);
    um_generate_params p = um_generate_default_params();
    p.gen_length = 16;
    p.block_length = 8;
    p.steps = 8;
    p.temperature = 1.0;
    p.seed = 1;
    invariants v;
    um_generation a = generate_checked(m, p, &v), b = generate_checked(m, p, &v);
    assert_memory_equal(a.tokens, b.tokens, (size_t)a.n_tokens * sizeof(int32_t));
    p.seed = 2;
    um_generation c = generate_checked(m, p, &v);
    assert_true(memcmp(a.tokens, c.tokens, (size_t)a.n_tokens * sizeof(int32_t)) != 0);
    for (int s = 0; s < 8; s++)
        assert_int_equal(v.counts[s], 2);
    um_generation_free(&a);
    um_generation_free(&b);
    um_generation_free(&c);
    um_model_close(m);
}

/* Upper 0.1% point of chi-square with df degrees of freedom (Wilson-Hilferty). */
static double chi2_critical(int df) {
    const double z = 3.090232; /* standard normal 0.999 quantile */
    double h = 2.0 / (9.0 * df);
    return df * pow(1 - h + z * sqrt(h), 3);
}

/* Pearson's statistic of counts against probabilities, merging categories
 * whose expected count is below 5 into one bin. */
static double chi2_stat(const int *counts, const double *prob, int n_cat, int n, int *df) {
    double stat = 0, rest_e = 0;
    int rest_o = 0, bins = 0;
    for (int i = 0; i < n_cat; i++) {
        double e = prob[i] * n;
        if (e < 5) {
            rest_e += e;
            rest_o += counts[i];
            continue;
        }
        stat += (counts[i] - e) * (counts[i] - e) / e;
        bins++;
    }
    if (rest_e > 0) {
        stat += (rest_o - rest_e) * (rest_o - rest_e) / rest_e;
        bins++;
    }
    *df = bins - 1;
    return stat;
}

/* A one-position canvas sampled with many seeds: the tokens must follow
 * softmax(logits / T), where logits come from a plain forward pass. */
static void temperature_follows_softmax(void **state) {
    const double T = 0.8;
    const int N = 8000;
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 1);
    um_model_info info;
    um_model_get_info(m, &info);
    int V = info.n_vocab, len = N_PROMPT + 1;
    int32_t canvas[N_PROMPT + 1];
    memcpy(canvas, PROMPT, sizeof PROMPT);
    canvas[N_PROMPT] = info.mask_id;
    float *logits = malloc((size_t)len * V * sizeof *logits);
    um_error err;
    assert_int_equal(t_forward(m, canvas, 1, len, logits, &err), UM_OK);
    const float *last = logits + (size_t)N_PROMPT * V;
    double *prob = malloc((size_t)V * sizeof *prob), *prob_t1 = malloc((size_t)V * sizeof *prob_t1);
    double z = 0, z1 = 0, mx = -INFINITY;
    for (int i = 0; i < V; i++)
        mx = fmax(mx, last[i]);
    for (int i = 0; i < V; i++) {
        z += prob[i] = exp((last[i] - mx) / T);
        z1 += prob_t1[i] = exp(last[i] - mx);
    }
    for (int i = 0; i < V; i++) {
        prob[i] /= z;
        prob_t1[i] /= z1;
    }

    int *counts = calloc((size_t)V, sizeof *counts);
    um_generate_params p = um_generate_default_params();
    p.gen_length = p.steps = p.block_length = 1;
    p.temperature = T;
    for (int s = 0; s < N; s++) {
        um_generation g;
        p.seed = (uint64_t)s;
        assert_int_equal(t_generate(m, PROMPT, N_PROMPT, &p, &g, &err), UM_OK);
        counts[g.tokens[N_PROMPT]]++;
        um_generation_free(&g);
    }
    int df;
    double stat = chi2_stat(counts, prob, V, N, &df), crit = chi2_critical(df);
    print_message("    T=%.1f, %d draws: chi-square %.1f on %d df (0.1%% critical value %.1f)\n", T, N, stat, df,
                  crit);
    assert_true(df >= 10);
    assert_true(stat < crit);
    /* the test has teeth: the same draws reject softmax(logits) at T = 1 */
    int df1;
    double stat1 = chi2_stat(counts, prob_t1, V, N, &df1);
    print_message("    against T=1.0: chi-square %.1f on %d df (critical %.1f)\n", stat1, df1, chi2_critical(df1));
    assert_true(stat1 > chi2_critical(df1));
    free(counts);
    free(prob);
    free(prob_t1);
    free(logits);
    um_model_close(m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(schedule_counts),      cmocka_unit_test(topk_order_and_ties),
    cmocka_unit_test(confidence_rules),     cmocka_unit_test(random_remasking),
    cmocka_unit_test(temperature_is_seeded), cmocka_unit_test(temperature_follows_softmax),
};
const test_group sampling_group = {"sampling", tests, sizeof tests / sizeof *tests};
