/* Sessions and the scheduler: many generations stepped together, one
 * forward pass per step for all of them, each giving exactly what it gives
 * alone (the references' outputs, NFE and commits). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_SESSIONS 64

/* Steps the sessions in s (n of them; joining[k]: the scheduler step at which
 * session k is begun) until all have finished; prints the largest batch. */
typedef struct {
    um_session *s[MAX_SESSIONS];
    um_generation out[MAX_SESSIONS];
    um_status status[MAX_SESSIONS];
    int n, max_live;
} batch_run;

static void run_batch(um_context *ctx, const um_model *m, int n, const int32_t *const *prompts, const int *n_prompt,
                      const um_generate_params *p, const int *joining, batch_run *b) {
    um_error err;
    memset(b, 0, sizeof *b);
    b->n = n;
    bool begun[MAX_SESSIONS] = {false}, collected[MAX_SESSIONS] = {false};
    int left = n;
    for (int step = 0; left > 0; step++) {
        um_session *live[MAX_SESSIONS];
        int n_live = 0;
        for (int k = 0; k < n; k++) {
            if (!begun[k] && joining[k] <= step) {
                if (um_session_begin(m, prompts[k], n_prompt[k], &p[k], &b->s[k], &err) != UM_OK)
                    fail_msg("session %d: %s", k, err.msg);
                begun[k] = true;
            }
            if (begun[k] && !collected[k] && !um_session_finished(b->s[k]))
                live[n_live++] = b->s[k];
        }
        if (n_live > b->max_live)
            b->max_live = n_live;
        if (n_live > 0 && um_sessions_step(ctx, live, n_live, &err) != UM_OK)
            fail_msg("step %d: %s", step, err.msg);
        for (int k = 0; k < n; k++)
            if (begun[k] && !collected[k] && um_session_finished(b->s[k])) {
                b->status[k] = um_session_result(b->s[k], &b->out[k], &err);
                collected[k] = true;
                left--;
            }
        assert_true(step < 100000);
    }
}

static void free_batch(batch_run *b) {
    for (int k = 0; k < b->n; k++) {
        um_generation_free(&b->out[k]);
        um_session_free(b->s[k]);
    }
}

static um_context *f32_context(const um_model *m) {
    um_context_params cp = um_context_default_params();
    cp.activations = UM_ACTIVATIONS_F32; /* the references' arithmetic */
    um_context *ctx;
    um_error err;
    if (um_context_create(m, &cp, &ctx, &err) != UM_OK)
        fail_msg("context: %s", err.msg);
    return ctx;
}

/* Every reference case of both LLaDA fixtures (the LLaDA sampler's and
 * Fast-dLLM's: caches none, prefix and dual, top-k and threshold, with and
 * without CFG) as ONE batch of concurrent sessions per model, case k joining
 * at step k: each output, NFE and (where recorded) each step's commits are the
 * reference's. */
static void reference_cases_in_one_batch(void **state) {
    if (!fixtures_found())
        fail_msg("no fixtures");
    const char *models[] = {"tiny-llada", "tiny-llada-gqa"};
    for (int mi = 0; mi < 2; mi++) {
        um_model *m = open_fixture_model(models[mi], "hf-f32-sharded", 2);
        um_context *ctx = f32_context(m);
        cJSON *root = load_reference(models[mi]);
        static reference_case rc[MAX_SESSIONS];
        const int32_t *prompts[MAX_SESSIONS];
        int n_prompt[MAX_SESSIONS], joining[MAX_SESSIONS], n = 0, n_fast = 0;
        um_generate_params p[MAX_SESSIONS];
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
            const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
            bool fast = ref && strncmp(ref, FASTDLLM_REFERENCE, strlen(FASTDLLM_REFERENCE)) == 0;
            if (!ref || (!fast && strncmp(ref, LLADA_REFERENCE, strlen(LLADA_REFERENCE)) != 0))
                continue;
            assert_true(n < MAX_SESSIONS);
            reference_case_prepare(&rc[n], m, c, models[mi], "hf-f32-sharded, one batch");
            prompts[n] = rc[n].prompt;
            n_prompt[n] = rc[n].n_prompt;
            p[n] = rc[n].p;
            joining[n] = n;
            n_fast += fast;
            n++;
        }
        assert_true(n >= 10 && n_fast >= 4);
        batch_run b;
        run_batch(ctx, m, n, prompts, n_prompt, p, joining, &b);
        print_message("    %s: %d cases (%d Fast-dLLM), up to %d sessions in one forward\n", models[mi], n, n_fast,
                      b.max_live);
        assert_true(b.max_live >= n / 2);
        for (int k = 0; k < n; k++) {
            assert_int_equal(b.status[k], UM_OK);
            rc[k].run.gen = &b.out[k];
            if (rc[k].run.json && cJSON_GetObjectItem(rc[k].run.json, "commits_per_step"))
                expect_reference_exact(&rc[k].run, NULL);
            else
                expect_output_nfe(&rc[k].run, NULL);
            reference_case_free(&rc[k]);
        }
        free_batch(&b);
        cJSON_Delete(root);
        um_context_free(ctx);
        um_model_close(m);
    }
}

/* Sampling (temperature, random remasking), every decoder and cache mode,
 * CFG, EOS rules and different lengths and seeds: each session's tokens and
 * NFE in a batch, joining at different steps, equal what it gives alone,
 * in the reduced arithmetic as in f32. */
static void sessions_independent_of_neighbours(void **state) {
    um_model *m = open_fixture_model("tiny-llada-gqa", "hf-bf16", 2);
    enum { N = 12 };
    um_generate_params p[N];
    int32_t prompt[N][16];
    const int32_t *prompts[N];
    int n_prompt[N], joining[N];
    for (int k = 0; k < N; k++) {
        p[k] = um_generate_default_params();
        p[k].gen_length = 16 + 8 * (k % 3);
        p[k].block_length = 8;
        p[k].steps = p[k].gen_length;
        p[k].seed = 1000 + (uint64_t)k;
        p[k].temperature = k % 2 ? 0.7 : 0;
        p[k].remasking = k == 1 || k == 2 || k == 8 ? UM_REMASK_RANDOM : UM_REMASK_LOW_CONFIDENCE;
        p[k].cache = (um_cache_mode)(k % 4);
        p[k].decoder = (um_decoder)(k % 8);
        p[k].cfg_scale = k == 5 || k == 10 ? 1.5 : 0;
        p[k].logits_eos_inf = k == 7;
        p[k].eos_rejection = k == 9;
        p[k].early_stop = k == 11;
        p[k].max_nfe = k == 4 ? 5 : 0;
        n_prompt[k] = 4 + k % 9;
        for (int i = 0; i < n_prompt[k]; i++)
            prompt[k][i] = (int32_t)(3 + 37 * k + 11 * i) % 480;
        prompts[k] = prompt[k];
        joining[k] = (k * 3) % 7;
    }
    for (int reduced = 0; reduced < 2; reduced++) {
        um_context_params cp = um_context_default_params();
        cp.activations = reduced ? UM_ACTIVATIONS_REDUCED : UM_ACTIVATIONS_F32;
        um_context *ctx;
        um_error err;
        assert_int_equal(um_context_create(m, &cp, &ctx, &err), UM_OK);
        batch_run b;
        run_batch(ctx, m, N, prompts, n_prompt, p, joining, &b);
        assert_true(b.max_live >= N / 2);
        for (int k = 0; k < N; k++) {
            um_generation alone;
            if (um_generate(ctx, prompts[k], n_prompt[k], &p[k], &alone, &err) != UM_OK)
                fail_msg("session %d alone: %s", k, err.msg);
            assert_int_equal(b.status[k], UM_OK);
            assert_int_equal(b.out[k].n_tokens, alone.n_tokens);
            if (memcmp(b.out[k].tokens, alone.tokens, (size_t)alone.n_tokens * sizeof *alone.tokens) != 0)
                fail_msg("%s: session %d's tokens depend on its neighbours", reduced ? "reduced" : "f32", k);
            assert_int_equal(b.out[k].nfe, alone.nfe);
            um_generation_free(&alone);
        }
        print_message("    %s: %d sessions, up to %d at once: each as alone\n", reduced ? "reduced" : "f32", N,
                      b.max_live);
        free_batch(&b);
        um_context_free(ctx);
    }
    um_model_close(m);
}

static int stop_at_third_step(const um_step_info *info, void *user) { return info->step == 2; }

/* A session stopped by its callback or cancelled ends with UM_ERR_ABORTED
 * and what it had committed, without disturbing the others; a result asked
 * for early, or a session of another model, is an error. */
static void cancel_and_errors(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 2), *other = open_fixture_model("tiny-llada-gqa",
                                                                                               "hf-bf16", 1);
    um_context *ctx = f32_context(m);
    um_generate_params p = um_generate_default_params(), stopping;
    p.gen_length = p.steps = 16;
    p.block_length = 8;
    stopping = p;
    stopping.on_step = stop_at_third_step;
    int32_t prompt[3] = {5, 6, 7};
    um_session *s[3];
    um_error err;
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s[0], &err), UM_OK);
    assert_int_equal(um_session_begin(m, prompt, 3, &stopping, &s[1], &err), UM_OK);
    assert_int_equal(um_session_begin(m, prompt, 3, &p, &s[2], &err), UM_OK);
    um_generation g;
    assert_int_equal(um_session_result(s[0], &g, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "not finished"));
    for (int i = 0; i < 4; i++)
        assert_int_equal(um_sessions_step(ctx, s, 3, &err), UM_OK);
    um_session_cancel(s[2]);
    assert_true(um_session_finished(s[1]) && um_session_finished(s[2]) && !um_session_finished(s[0]));
    assert_int_equal(um_session_result(s[1], &g, &err), UM_ERR_ABORTED);
    assert_int_equal(g.nfe, 3);
    int committed = 0;
    for (int i = 3; i < g.n_tokens; i++)
        committed += g.tokens[i] != 500;
    assert_int_equal(committed, 3); /* one token a step */
    um_generation_free(&g);
    assert_int_equal(um_session_result(s[2], &g, &err), UM_ERR_ABORTED);
    assert_non_null(strstr(err.msg, "cancelled"));
    um_generation_free(&g);
    while (!um_session_finished(s[0]))
        assert_int_equal(um_sessions_step(ctx, s, 3, &err), UM_OK);
    assert_int_equal(um_session_result(s[0], &g, &err), UM_OK);
    um_generation alone;
    assert_int_equal(um_generate(ctx, prompt, 3, &p, &alone, &err), UM_OK);
    assert_memory_equal(g.tokens, alone.tokens, (size_t)alone.n_tokens * sizeof *alone.tokens);
    um_generation_free(&g);
    um_generation_free(&alone);
    um_session *foreign;
    assert_int_equal(um_session_begin(other, prompt, 3, &p, &foreign, &err), UM_OK);
    assert_int_equal(um_session_step(ctx, foreign, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "another model"));
    um_session_free(foreign);
    for (int i = 0; i < 3; i++)
        um_session_free(s[i]);
    um_context_free(ctx);
    um_model_close(other);
    um_model_close(m);
}

/* A context's parameters: f32 or reduced arithmetic, a kernel path by name;
 * an unknown name or a path this CPU lacks is an error naming it. */
static void context_parameters(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 1);
    um_context_params cp = um_context_default_params();
    um_context *ctx;
    um_error err;
    cp.kernel = "sse9";
    assert_int_equal(um_context_create(m, &cp, &ctx, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "sse9"));
    cp.kernel = "scalar";
    cp.activations = UM_ACTIVATIONS_F32;
    assert_int_equal(um_context_create(m, &cp, &ctx, &err), UM_OK);
    um_context_free(ctx);
    const char *paths[] = {"avx2", "avx512", "neon"};
    for (int i = 0; i < 3; i++) {
        cp.kernel = paths[i];
        um_status s = um_context_create(m, &cp, &ctx, &err);
        if (s == UM_OK)
            um_context_free(ctx);
        else if (s == UM_ERR_UNSUPPORTED && strstr(err.msg, "lacks"))
            skip_note(paths[i], "a context on that kernel path; its refusal was checked instead");
        else
            fail_msg("kernel %s: %s", paths[i], err.msg);
    }
    um_model_close(m);
}

/* One model, several contexts on several threads at once: each thread's
 * generations are the reference's (the model is immutable once loaded; a
 * context is all a thread's mutable state). */
typedef struct {
    const um_model *m;
    reference_case *rc;
    int n;
    um_generation out[MAX_SESSIONS];
    um_status status;
} thread_work;

static void *generate_all(void *arg) {
    thread_work *w = arg;
    um_context *ctx;
    um_error err;
    um_context_params cp = um_context_default_params();
    cp.activations = UM_ACTIVATIONS_F32;
    cp.n_threads = 1;
    w->status = um_context_create(w->m, &cp, &ctx, &err);
    for (int k = 0; w->status == UM_OK && k < w->n; k++) {
        um_generate_params p = w->rc[k].p;
        p.on_step = NULL; /* the commit log is one per case, not per thread */
        w->status = um_generate(ctx, w->rc[k].prompt, w->rc[k].n_prompt, &p, &w->out[k], &err);
    }
    um_context_free(ctx);
    return NULL;
}

static void contexts_share_a_model_across_threads(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-bf16", 1);
    cJSON *root = load_reference("tiny-llada");
    static reference_case rc[MAX_SESSIONS];
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (ref && strncmp(ref, LLADA_REFERENCE, strlen(LLADA_REFERENCE)) == 0 && n < MAX_SESSIONS)
            reference_case_prepare(&rc[n++], m, c, "tiny-llada", "hf-bf16, 3 threads");
    }
    enum { THREADS = 3 };
    static thread_work w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (thread_work){m, rc, n, {{0}}, UM_OK};
        assert_int_equal(pthread_create(&t[i], NULL, generate_all, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(w[i].status, UM_OK);
        for (int k = 0; k < n; k++) {
            assert_int_equal(w[i].out[k].n_tokens, rc[k].run.n_want);
            if (memcmp(w[i].out[k].tokens, rc[k].want, (size_t)rc[k].run.n_want * sizeof *rc[k].want) != 0)
                fail_msg("thread %d: %s differs from the reference", i, rc[k].what);
            assert_int_equal(w[i].out[k].nfe, rc[k].run.want_nfe);
            um_generation_free(&w[i].out[k]);
        }
    }
    print_message("    %d threads x %d reference cases on one model: each as the reference\n", THREADS, n);
    for (int k = 0; k < n; k++)
        reference_case_free(&rc[k]);
    cJSON_Delete(root);
    um_model_close(m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(reference_cases_in_one_batch),
    cmocka_unit_test(sessions_independent_of_neighbours),
    cmocka_unit_test(cancel_and_errors),
    cmocka_unit_test(context_parameters),
    cmocka_unit_test(contexts_share_a_model_across_threads),
};

const test_group batch_group = {"batch", tests, sizeof tests / sizeof *tests};
