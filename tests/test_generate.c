/* Every generation case of fixtures/llada/MODEL/reference.json produced by
 * the LLaDA reference sampler (ML-GSAI/LLaDA generate.py: generate) must be
 * reproduced exactly: the output, the NFE, and the (position, token) pairs
 * committed after every forward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define LLADA_REFERENCE "ML-GSAI/LLaDA generate.py: generate"

typedef struct {
    int n_steps, cap;
    int *n_commits;     /* per step */
    int32_t (*pairs)[2]; /* all steps' pairs, concatenated */
    int n_pairs, cap_pairs;
} commit_log;

static int record_step(const um_step_info *info, void *user) {
    commit_log *log = user;
    if (log->n_steps == log->cap) {
        log->cap = log->cap ? 2 * log->cap : 64;
        log->n_commits = realloc(log->n_commits, (size_t)log->cap * sizeof *log->n_commits);
    }
    log->n_commits[log->n_steps++] = info->n_committed;
    for (int i = 0; i < info->n_committed; i++) {
        if (log->n_pairs == log->cap_pairs) {
            log->cap_pairs = log->cap_pairs ? 2 * log->cap_pairs : 256;
            log->pairs = realloc(log->pairs, (size_t)log->cap_pairs * sizeof *log->pairs);
        }
        log->pairs[log->n_pairs][0] = info->committed_pos[i];
        log->pairs[log->n_pairs][1] = info->committed_tok[i];
        log->n_pairs++;
    }
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The reference lists each step's commits in no particular order: compare sets. */
static void check_commits(const cJSON *want, const commit_log *log, const char *what) {
    assert_int_equal(cJSON_GetArraySize(want), log->n_steps);
    int offset = 0;
    for (int s = 0; s < log->n_steps; s++) {
        const cJSON *step = cJSON_GetArrayItem(want, s);
        int n = cJSON_GetArraySize(step);
        if (n != log->n_commits[s])
            fail_msg("%s: step %d commits %d tokens, reference %d", what, s, log->n_commits[s], n);
        int32_t(*ref)[2] = malloc((size_t)(n ? n : 1) * sizeof *ref);
        int32_t(*got)[2] = malloc((size_t)(n ? n : 1) * sizeof *got);
        for (int i = 0; i < n; i++) {
            const cJSON *pair = cJSON_GetArrayItem(step, i);
            ref[i][0] = (int32_t)cJSON_GetArrayItem(pair, 0)->valuedouble;
            ref[i][1] = (int32_t)cJSON_GetArrayItem(pair, 1)->valuedouble;
            got[i][0] = log->pairs[offset + i][0];
            got[i][1] = log->pairs[offset + i][1];
        }
        qsort(ref, (size_t)n, sizeof *ref, cmp_pair);
        qsort(got, (size_t)n, sizeof *got, cmp_pair);
        if (n && memcmp(ref, got, (size_t)n * sizeof *ref) != 0)
            fail_msg("%s: step %d commits differ from the reference", what, s);
        free(ref);
        free(got);
        offset += n;
    }
}

static bool json_flag(const cJSON *params, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, key));
}

static double json_number(const cJSON *params, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Runs every reference-sampler case of one model loaded from one layout. */
static void check_cases(const char *model, const char *layout) {
    cJSON *root = load_reference(model);
    um_model *m = open_fixture_model(model, layout, 2);
    um_model_info info;
    um_model_get_info(m, &info);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || strcmp(ref, LLADA_REFERENCE) != 0)
            continue;
        const cJSON *params = cJSON_GetObjectItem(c, "params");
        assert_int_equal((int)json_number(c, "mask_id", -1), info.mask_id);
        assert_int_equal((int)json_number(c, "eos_id", -1), info.eos_id);
        assert_int_equal((int)json_number(c, "eot_id", -1), info.eot_id);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "remasking")), "low_confidence");
        assert_true(json_number(c, "temperature", -1) == 0.0);

        um_generate_params p = um_generate_default_params();
        p.steps = (int)json_number(params, "steps", 0);
        p.gen_length = (int)json_number(params, "gen_length", 0);
        p.block_length = (int)json_number(params, "block_length", 0);
        p.cfg_scale = json_number(params, "cfg_scale", 0);
        p.logits_eos_inf = json_flag(params, "logits_eos_inf");
        p.confidence_eos_eot_inf = json_flag(params, "confidence_eos_eot_inf");
        commit_log log = {0};
        p.on_step = record_step;
        p.user_data = &log;

        int n_prompt, n_out;
        int32_t *prompt = json_int_array(cJSON_GetObjectItem(c, "prompt"), &n_prompt);
        int32_t *want = json_int_array(cJSON_GetObjectItem(c, "output"), &n_out);
        char what[256];
        snprintf(what, sizeof what, "%s/%s steps %d gen %d block %d cfg %g eos_inf %d", model, layout, p.steps,
                 p.gen_length, p.block_length, p.cfg_scale, p.logits_eos_inf);
        um_generation g;
        um_error err;
        if (um_generate(m, prompt, n_prompt, &p, &g, &err) != UM_OK)
            fail_msg("%s: %s", what, err.msg);
        assert_int_equal(g.n_tokens, n_out);
        if (memcmp(g.tokens, want, (size_t)n_out * sizeof *want) != 0)
            fail_msg("%s: output differs from the reference", what);
        assert_int_equal(g.nfe, (int)json_number(c, "nfe", -1));
        check_commits(cJSON_GetObjectItem(c, "commits_per_step"), &log, what);
        print_message("    %s: output, nfe %d and commits match\n", what, g.nfe);
        um_generation_free(&g);
        free(prompt);
        free(want);
        free(log.n_commits);
        free(log.pairs);
        checked++;
    }
    assert_true(checked >= 6); /* the fixtures hold six reference-sampler cases per model */
    um_model_close(m);
    cJSON_Delete(root);
}

static void mha_bf16(void **state) { check_cases("tiny-llada", "hf-bf16"); }
static void mha_f32_sharded(void **state) { check_cases("tiny-llada", "hf-f32-sharded"); }
static void gqa_bf16(void **state) { check_cases("tiny-llada-gqa", "hf-bf16"); }
static void gqa_f32_sharded(void **state) { check_cases("tiny-llada-gqa", "hf-f32-sharded"); }

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(mha_bf16),
    cmocka_unit_test(mha_f32_sharded),
    cmocka_unit_test(gqa_bf16),
    cmocka_unit_test(gqa_f32_sharded),
};
const test_group generate_group = {"generate", tests, sizeof tests / sizeof *tests};
