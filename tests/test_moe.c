/* LLaDA-MoE (fixtures/llada-moe): the mixture-of-experts row of the
 * architecture table. Its forward against the upstream model's logits from
 * Hugging Face and llama.cpp's GGUF files, the routing against upstream's
 * choice of experts, results independent of the thread count, and the
 * reference sampler's cases exact. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "format/safetensors.h"
#include "kernels/moe.h"
#include "model/convert.h"
#include "testutil.h"

#define MOE "llada-moe/tiny-llada-moe"

/* rel: under llada-moe/ in the fixtures, or an absolute path. */
static um_model *open_moe(const char *rel, int threads) {
    char path[512];
    snprintf(path, sizeof path, "llada-moe/%s", rel);
    um_model *m = NULL;
    um_model_params mp = {threads, false};
    um_error err;
    if (um_model_open(rel[0] == '/' ? rel : fixture(path), &mp, &m, &err) != UM_OK)
        fail_msg("opening %s: %s", path, err.msg);
    return m;
}

/* Our logits of forward.safetensors' inputs (f32 arithmetic), malloc'd. */
static float *forward_logits(const char *rel, int threads, const um_st_file *ref, size_t *n) {
    const um_st_tensor *ids = st_tensor(ref, "input_ids", UM_I32), *logits = st_tensor(ref, "logits", UM_F32);
    int rows = (int)ids->shape[0], seq = (int)ids->shape[1];
    *n = (size_t)rows * seq * (size_t)logits->shape[2];
    um_model *m = open_moe(rel, threads);
    float *ours = malloc(*n * sizeof *ours);
    um_error err;
    if (t_forward(m, (const int32_t *)ids->data, rows, seq, ours, &err) != UM_OK)
        fail_msg("%s: %s", rel, err.msg);
    um_model_close(m);
    return ours;
}

static double forward_error(const char *rel) {
    um_st_file ref;
    um_error err;
    if (um_st_open(fixture(MOE "/forward.safetensors"), &ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    size_t n;
    float *ours = forward_logits(rel, 2, &ref, &n);
    double e = max_rel_error(ours, (const float *)st_tensor(&ref, "logits", UM_F32)->data, n);
    print_message("    %s: max relative error %.2e\n", rel, e);
    free(ours);
    um_st_close(&ref);
    return e;
}

static void forward_matches_upstream(void **state) {
    assert_true(forward_error("tiny-llada-moe/hf-bf16") <= 1e-4);
    assert_true(forward_error("tiny-llada-moe/hf-f32-sharded") <= 1e-4);
    assert_true(forward_error("gguf/tiny-llada-moe-f32.gguf") <= 1e-4);
    assert_true(forward_error("gguf/tiny-llada-moe-f16.gguf") <= 1e-4); /* bf16-representable weights fit f16 */
    /* Q8_0: a rounded router logit can flip a token's expert; llama.cpp's own
       forward of this file is 2.0 off on logits up to 23 (8.7e-2) */
    assert_true(forward_error("gguf/tiny-llada-moe-q8_0.gguf") <= 1e-1);
}

/* The routing rule on upstream's own router logits picks upstream's
 * experts, highest score first, with its (softmax, not renormalized) weights. */
static void routing_matches_upstream(void **state) {
    um_st_file ref;
    um_error err;
    if (um_st_open(fixture(MOE "/forward.safetensors"), &ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    const um_st_tensor *logits = st_tensor(&ref, "router_logits", UM_F32),
                       *ids = st_tensor(&ref, "router_topk_ids", UM_I32),
                       *weights = st_tensor(&ref, "router_topk_weights", UM_F32);
    int n_expert = (int)logits->shape[3], k = (int)ids->shape[3];
    int n = (int)(logits->shape[0] * logits->shape[1] * logits->shape[2]);
    assert_int_equal(n_expert, 8);
    assert_int_equal(k, 2);
    int32_t *got_ids = malloc((size_t)n * k * sizeof *got_ids);
    float *got_w = malloc((size_t)n * k * sizeof *got_w);
    um_moe_router softmax = {UM_GATING_SOFTMAX, 0, 0, false, 1.0f};
    um_moe_route((const float *)logits->data, n, n_expert, k, &softmax, NULL, got_ids, got_w);
    const int32_t *want_ids = (const int32_t *)ids->data;
    const float *want_w = (const float *)weights->data;
    for (int i = 0; i < n * k; i++) {
        if (got_ids[i] != want_ids[i])
            fail_msg("token %d slot %d: expert %d, upstream %d", i / k, i % k, got_ids[i], want_ids[i]);
        assert_true(fabsf(got_w[i] - want_w[i]) <= 1e-6f);
    }
    print_message("    %d tokens x %d layers routed as upstream\n", (int)(logits->shape[1] * logits->shape[2]),
                  (int)logits->shape[0]);
    free(got_ids);
    free(got_w);
    um_st_close(&ref);
}

/* Grouping tokens by expert is deterministic: the same bits on 1, 2 and 3 threads. */
static void independent_of_threads(void **state) {
    um_st_file ref;
    um_error err;
    if (um_st_open(fixture(MOE "/forward.safetensors"), &ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    size_t n;
    float *one = forward_logits("gguf/tiny-llada-moe-q8_0.gguf", 1, &ref, &n);
    for (int t = 2; t <= 3; t++) {
        float *more = forward_logits("gguf/tiny-llada-moe-q8_0.gguf", t, &ref, &n);
        assert_memory_equal(one, more, n * sizeof *one);
        free(more);
    }
    free(one);
    um_st_close(&ref);
}

/* The fixture README's shape and ids, the same from config.json (which has
 * no mask id: the tokenizer's <|mask|>) and from llama.cpp's GGUF metadata. */
static void hyper_parameters(void **state) {
    const char *files[] = {"tiny-llada-moe/hf-bf16", "tiny-llada-moe/hf-f32-sharded", "gguf/tiny-llada-moe-f32.gguf",
                           "gguf/tiny-llada-moe-q8_0.gguf"};
    for (int i = 0; i < 4; i++) {
        um_model *m = open_moe(files[i], 1);
        um_model_info in;
        um_model_get_info(m, &in);
        assert_string_equal(in.architecture, "llada-moe");
        assert_int_equal(in.n_layers, 3);
        assert_int_equal(in.d_model, 64);
        assert_int_equal(in.n_heads, 4);
        assert_int_equal(in.n_kv_heads, 4);
        assert_int_equal(in.n_vocab, 512);
        assert_int_equal(in.n_expert, 8);
        assert_int_equal(in.n_expert_used, 2);
        assert_int_equal(in.d_ff_expert, 48);
        assert_int_equal(in.mask_id, 500);
        assert_int_equal(in.eos_id, 501);
        assert_int_equal(in.eot_id, 502); /* <|role_end|> */
        assert_int_equal(in.logit_shift, 0);
        um_model_close(m);
        
    }
}

/* ML-GSAI/LLaDA's generate on the MoE model: every case exact (output,
 * NFE, each step's commits) in f32, from Hugging Face and GGUF files. */
static void reference_sampler_cases(void **state) {
    const char *layouts[] = {"hf-bf16", "hf-f32-sharded", "../gguf/tiny-llada-moe-f32.gguf"};
    for (int i = 0; i < 3; i++) {
        um_model *m = open_fixture_model(MOE, layouts[i], 2);
        assert_int_equal(run_reference_cases(m, MOE, layouts[i], expect_reference_exact, NULL), 7);
        um_model_close(m);
    }
}

/* inclusionAI/dInfer's pipeline on the MoE model (generate_uniform.py's
 * classes, parallel_strategy.py's decoders, its prefix, dual and vicinity
 * caches, the aligned first block, the EOS early stop): every case exact in
 * f32 (output, NFE, the span each forward computed, each forward's commits)
 * from Hugging Face and GGUF files, then through `unmask run`'s flags. */
static void dinfer_cases(void **state) {
    const char *layouts[] = {"hf-bf16", "hf-f32-sharded", "../gguf/tiny-llada-moe-f32.gguf"};
    for (int i = 0; i < 3; i++) {
        um_model *m = open_fixture_model(MOE, layouts[i], 2);
        assert_int_equal(run_reference_cases_from(m, MOE, layouts[i], DINFER_REFERENCE, expect_dinfer_exact, NULL),
                         12);
        um_model_close(m);
    }
    f32_activations_for_commands(true);
    cJSON *root = load_reference(MOE);
    const cJSON *c;
    int n = 0;
    char *dir = make_temp_dir(), batch_path[512];
    snprintf(batch_path, sizeof batch_path, "%s/dinfer.jsonl", dir);
    FILE *batch = fopen(batch_path, "w");
    assert_non_null(batch);
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || strncmp(ref, DINFER_REFERENCE, strlen(DINFER_REFERENCE)) != 0)
            continue;
        char flags[768];
        reference_case_flags(c, flags, sizeof flags);
        char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
        expect_run_matches(MOE, MOE "/hf-bf16", prompt, flags, c);
        /* the same flags as --batch keys ("-n 32 --cache dual --early-stop" -> gen_length 32, cache "dual",
           early_stop true), every case one line of one batch */
        cJSON *line = cJSON_CreateObject();
        cJSON_AddItemToObject(line, "prompt_tokens", cJSON_Duplicate(cJSON_GetObjectItem(c, "prompt"), 1));
        char *words[64];
        int n_words = 0;
        for (char *w = strtok(flags, " "); w && n_words < 64; w = strtok(NULL, " "))
            words[n_words++] = w;
        for (int i = 0; i < n_words; i++) {
            char key[64];
            snprintf(key, sizeof key, "%s", strcmp(words[i], "-n") == 0 ? "gen_length" : words[i] + 2);
            for (char *k = key; *k; k++)
                *k = *k == '-' ? '_' : *k;
            char *v = i + 1 < n_words && words[i + 1][0] != '-' ? words[++i] : NULL;
            if (!v)
                cJSON_AddTrueToObject(line, key);
            else if (strspn(v, "0123456789.") == strlen(v))
                cJSON_AddNumberToObject(line, key, strtod(v, NULL));
            else
                cJSON_AddStringToObject(line, key, v);
        }
        char *text = cJSON_PrintUnformatted(line);
        fprintf(batch, "%s\n", text);
        free(text);
        cJSON_Delete(line);
        free(prompt);
        n++;
    }
    assert_int_equal(n, 12);
    fclose(batch);
    cmd_result r = run_unmask("run -m %s --batch %s --parallel 5 -t 2", fixture(MOE "/hf-bf16"), batch_path);
    if (r.status != 0)
        fail_msg("run --batch: exit %d: %s", r.status, r.err);
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || strncmp(ref, DINFER_REFERENCE, strlen(DINFER_REFERENCE)) != 0)
            continue;
        char *at = r.out;
        for (int skip = 0; skip < k && at; skip++)
            at = strchr(at, '\n') ? strchr(at, '\n') + 1 : NULL;
        assert_non_null(at);
        cJSON *out = cJSON_Parse(at); /* cJSON stops at the line's end */
        assert_non_null(out);
        const cJSON *want = cJSON_GetObjectItem(c, "output"), *got = cJSON_GetObjectItem(out, "tokens");
        assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
        for (int t = 0; t < cJSON_GetArraySize(want); t++)
            if (cJSON_GetArrayItem(got, t)->valueint != cJSON_GetArrayItem(want, t)->valueint)
                fail_msg("run --batch line %d: token %d differs", k + 1, t);
        assert_int_equal(cJSON_GetObjectItem(out, "nfe")->valueint, cJSON_GetObjectItem(c, "nfe")->valueint);
        cJSON_Delete(out);
        k++;
    }
    print_message("    run --batch --parallel 5: the %d cases' outputs and nfe match\n", k);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
    cJSON_Delete(root);
    f32_activations_for_commands(false);
}

/* convert stacks each layer's experts as llama.cpp's converter does (3-D
 * tensors down, gate, up at the place of the last expert), router F32: the
 * fixtures' files key for key and byte for byte, gguf-py's naming of the
 * model from its folder aside. */
static void convert_matches_llama_cpp(void **state) {
    const char *types[] = {"f32", "f16", "q8_0"};
    char *dir = make_temp_dir();
    for (int t = 0; t < 3; t++) {
        char out[512], ref[128];
        snprintf(out, sizeof out, "%s/%s.gguf", dir, types[t]);
        snprintf(ref, sizeof ref, "llada-moe/gguf/tiny-llada-moe-%s.gguf", types[t]);
        um_convert_params p = {um_recipe_find(types[t]), NULL, 2, NULL, NULL};
        um_error err;
        if (um_convert_hf_to_gguf(fixture(MOE "/hf-f32-sharded"), out, &p, &err) != UM_OK)
            fail_msg("convert %s: %s", types[t], err.msg);
        expect_same_gguf(out, fixture(ref));
    }
    remove_tree(dir);
    free(dir);
}

/* quantize re-quantizes the stacks of experts row by row; the result loads
 * and stays close to the f32 forward. */
static void quantize_experts(void **state) {
    char *dir = make_temp_dir(), out[512];
    snprintf(out, sizeof out, "%s/q4_k_m.gguf", dir);
    um_convert_params p = {um_recipe_find("q4_k_m"), NULL, 2, NULL, NULL};
    um_error err;
    if (um_quantize_gguf(fixture("llada-moe/gguf/tiny-llada-moe-f32.gguf"), out, &p, &err) != UM_OK)
        fail_msg("quantize: %s", err.msg);
    um_gguf_file f;
    assert_int_equal(um_gguf_open(out, &f, &err), UM_OK);
    const um_gguf_tensor *exps = um_gguf_find_tensor(&f, "blk.0.ffn_gate_exps.weight");
    const um_gguf_tensor *router = um_gguf_find_tensor(&f, "blk.0.ffn_gate_inp.weight");
    assert_true(exps && exps->n_dims == 3 && exps->ne[2] == 8 && exps->type == UM_Q8_0); /* 64 values a row: no K-quant */
    assert_true(router && router->type == UM_F32);
    um_gguf_close(&f);
    assert_true(forward_error(out) <= 1e-1); /* as Q8_0 above: it is Q8_0 at this width */
    remove_tree(dir);
    free(dir);
}

/* The same generate.py cases through `unmask run`, with the flags
 * docs/upstream.md gives for each upstream parameter: output and NFE. */
static void reference_sampler_cases_cli(void **state) {
    f32_activations_for_commands(true); /* the reference's arithmetic */
    cJSON *root = load_reference(MOE);
    int checked = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
        if (!ref || strcmp(ref, LLADA_REFERENCE) != 0)
            continue;
        char flags[512];
        reference_case_flags(c, flags, sizeof flags);
        char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
        expect_run_matches(MOE, MOE "/hf-bf16", prompt, flags, c);
        free(prompt);
        checked++;
    }
    f32_activations_for_commands(false);
    print_message("    %d cases through unmask run: output and nfe match\n", checked);
    assert_int_equal(checked, 7);
    cJSON_Delete(root);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(forward_matches_upstream), cmocka_unit_test(routing_matches_upstream),
    cmocka_unit_test(independent_of_threads),   cmocka_unit_test(hyper_parameters),
    cmocka_unit_test(reference_sampler_cases), cmocka_unit_test(reference_sampler_cases_cli),
    cmocka_unit_test(convert_matches_llama_cpp),
    cmocka_unit_test(quantize_experts),
    cmocka_unit_test(dinfer_cases),
};

const test_group moe_group = {"moe", tests, sizeof tests / sizeof *tests};
