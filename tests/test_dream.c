/* Dream (fixtures/dream): the second row of the architecture table. Its
 * forward pass against the upstream model's raw logits, from Hugging Face
 * and llama.cpp's GGUF files; its hyper-parameters; every generation case of
 * reference.json (Dream's diffusion_generate, origin given its positions,
 * Fast-dLLM's threshold decoding and block mode with prefix and dual cache)
 * through the API, `unmask run` and `run --batch`; and what is not there
 * refused by name. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/diffusion.h"
#include "format/safetensors.h"
#include "model/convert.h"
#include "testutil.h"

static um_model *open_dream(const char *rel) {
    char path[256];
    snprintf(path, sizeof path, "dream/%s", rel);
    um_model *m = NULL;
    um_model_params mp = {2, false};
    um_error err;
    if (um_model_open(rel[0] == '/' ? rel : fixture(path), &mp, &m, &err) != UM_OK)
        fail_msg("opening %s: %s", path, err.msg);
    return m;
}

/* The raw logits of forward.safetensors' inputs (no shift: the model's own
 * rows), in f32 arithmetic, within bound of the largest reference logit. */
static double forward_error(const char *rel) {
    um_st_file ref;
    um_error err;
    if (um_st_open(fixture("dream/tiny-dream/forward.safetensors"), &ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    const um_st_tensor *ids = um_st_find(&ref, "input_ids"), *logits = um_st_find(&ref, "logits");
    assert_true(ids && logits && ids->dtype == UM_I32 && logits->dtype == UM_F32);
    int rows = (int)ids->shape[0], seq = (int)ids->shape[1], vocab = (int)logits->shape[2];
    um_model *m = open_dream(rel);
    size_t n = (size_t)rows * seq * vocab;
    float *ours = malloc(n * sizeof *ours);
    if (t_forward(m, (const int32_t *)ids->data, rows, seq, ours, &err) != UM_OK)
        fail_msg("%s: %s", rel, err.msg);
    double e = max_rel_error(ours, (const float *)logits->data, n);
    print_message("    %s: max relative error %.2e\n", rel, e);
    free(ours);
    um_model_close(m);
    um_st_close(&ref);
    return e;
}

static void forward_matches_upstream(void **state) {
    assert_true(forward_error("tiny-dream/hf-bf16") <= 1e-4);
    assert_true(forward_error("tiny-dream/hf-f32-sharded") <= 1e-4);
    assert_true(forward_error("gguf/tiny-dream-f32.gguf") <= 1e-4);
    assert_true(forward_error("gguf/tiny-dream-f16.gguf") <= 1e-4); /* the bf16-representable weights fit f16 */
    /* Q8_0: the weights rounded to 8 bits a block (llama.cpp's forward is about 2e-2 off on LLaDA's) */
    assert_true(forward_error("gguf/tiny-dream-q8_0.gguf") <= 3e-2);
}

/* The fixture README's shape, ids and options, the same from config.json
 * and from llama.cpp's GGUF metadata. */
static void hyper_parameters(void **state) {
    const char *files[] = {"tiny-dream/hf-bf16", "tiny-dream/hf-f32-sharded", "gguf/tiny-dream-f32.gguf"};
    for (int i = 0; i < 3; i++) {
        um_model *m = open_dream(files[i]);
        um_model_info in;
        um_model_get_info(m, &in);
        assert_string_equal(in.architecture, "dream");
        assert_int_equal(in.n_layers, 3);
        assert_int_equal(in.d_model, 64);
        assert_int_equal(in.n_heads, 4);
        assert_int_equal(in.n_kv_heads, 2);
        assert_int_equal(in.head_dim, 16);
        assert_int_equal(in.d_ff, 192);
        assert_int_equal(in.n_vocab, 512);
        assert_int_equal(in.mask_id, 511);
        assert_int_equal(in.eos_id, 500);
        assert_int_equal(in.eot_id, 502); /* <|im_end|>: the end of a ChatML turn */
        assert_int_equal(in.logit_shift, 1);
        um_model_close(m);
    }
}

/* The upstream functions of reference.json's generation cases. */
typedef enum {
    DIFFUSION_GENERATE, /* Dream's diffusion_generate: maskgit_plus, topk_margin, entropy */
    ORIGIN,             /* the same with alg=origin (torch's generator picks the positions) */
    FASTDLLM_THRESHOLD, /* Fast-dLLM generation_utils.py: confidence_threshold, no cache */
    FASTDLLM_BLOCK,     /* Fast-dLLM generation_utils_block.py: prefix or dual cache */
} dream_kind;

static const char *const kind_names[] = {"diffusion_generate", "origin", "Fast-dLLM threshold", "Fast-dLLM block"};

static dream_kind case_kind(const cJSON *c) {
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItem(c, "reference"));
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "params"), "alg"));
    assert_non_null(ref);
    assert_non_null(alg);
    if (strstr(ref, "generation_utils_block.py"))
        return FASTDLLM_BLOCK;
    if (strstr(ref, "Fast-dLLM"))
        return FASTDLLM_THRESHOLD;
    assert_non_null(strstr(ref, "Dream-org"));
    return strcmp(alg, "origin") == 0 ? ORIGIN : DIFFUSION_GENERATE;
}

/* Dream's alg as a decoder: maskgit_plus is topk, topk_margin margin. */
static um_decoder decoder_of(const char *alg) {
    if (strcmp(alg, "topk_margin") == 0)
        return UM_DECODER_MARGIN;
    if (strcmp(alg, "entropy") == 0)
        return UM_DECODER_ENTROPY;
    if (strcmp(alg, "origin") == 0)
        return UM_DECODER_ORIGIN;
    if (strcmp(alg, "confidence_threshold") == 0)
        return UM_DECODER_THRESHOLD;
    assert_string_equal(alg, "maskgit_plus");
    return UM_DECODER_TOPK;
}

/* A case's call as generation parameters. diffusion_generate: one block
 * over everything, a full forward per step, the timesteps schedule, the
 * decoder of its alg (origin: its own). Fast-dLLM without cache: threshold
 * decoding under the quota schedule. Fast-dLLM's block mode: the prefix or
 * dual cache, and threshold decoding, or for any other alg the entropy
 * decoder on the timesteps schedule (upstream scores by negative entropy
 * whatever alg says). The implicit top-50, or none. */
static um_generate_params case_params(const cJSON *c) {
    const cJSON *params = cJSON_GetObjectItem(c, "params"), *eff = cJSON_GetObjectItem(c, "effective");
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItem(params, "alg"));
    um_generate_params p = um_generate_default_params();
    p.gen_length = p.block_length = cJSON_GetObjectItem(params, "max_new_tokens")->valueint;
    p.steps = cJSON_GetObjectItem(params, "steps")->valueint;
    p.schedule = UM_SCHEDULE_TIMESTEPS;
    p.schedule_eps = cJSON_GetObjectItem(eff, "eps")->valuedouble;
    const cJSON *top_k = cJSON_GetObjectItem(eff, "top_k");
    p.top_k = cJSON_IsNumber(top_k) ? top_k->valueint : 0;
    p.decoder = decoder_of(alg);
    const cJSON *threshold = cJSON_GetObjectItem(params, "threshold");
    if (cJSON_IsNumber(threshold))
        p.threshold = threshold->valuedouble;
    switch (case_kind(c)) {
    case FASTDLLM_THRESHOLD:
        p.schedule = UM_SCHEDULE_QUOTA;
        break;
    case FASTDLLM_BLOCK:
        p.block_length = cJSON_GetObjectItem(params, "block_length")->valueint;
        p.cache = cJSON_IsTrue(cJSON_GetObjectItem(params, "dual_cache")) ? UM_CACHE_DUAL : UM_CACHE_PREFIX;
        if (p.decoder == UM_DECODER_THRESHOLD)
            p.schedule = UM_SCHEDULE_UNIFORM;
        else
            p.decoder = UM_DECODER_ENTROPY;
        break;
    default:
        break;
    }
    return p;
}

/* Upstream's origin positions replayed (um_session_set_draws): at forward
 * pass `step`, the positions its commits_per_step lists draw 0 (committed
 * whatever the probability), every other one 1 (never: draws lie in [0, 1)). */
static double replay_draw(int step, int pos, void *user) {
    const cJSON *commits = cJSON_GetArrayItem((const cJSON *)user, step);
    const cJSON *pair;
    cJSON_ArrayForEach(pair, commits) {
        if (cJSON_GetArrayItem(pair, 0)->valueint == pos)
            return 0.0;
    }
    return 1.0;
}

/* um_generate's loop, with the session's draws replayed from want_commits. */
static um_status generate_replaying(const um_model *m, const int32_t *prompt, int n_prompt,
                                    const um_generate_params *p, const cJSON *want_commits, um_generation *out,
                                    um_error *err) {
    um_context *ctx;
    um_session *s = NULL;
    um_status st = um_context_create(m, NULL, &ctx, err);
    if (st == UM_OK)
        st = um_session_begin(m, prompt, n_prompt, p, &s, err);
    if (st == UM_OK)
        um_session_set_draws(s, replay_draw, (void *)want_commits);
    while (st == UM_OK && !um_session_finished(s))
        st = um_session_step(ctx, s, err);
    if (st == UM_OK)
        st = um_session_result(s, out, err);
    um_session_free(s);
    um_context_free(ctx);
    return st;
}

/* Generates case c with m and holds output, NFE and each step's commits to
 * the reference. Origin replays upstream's positions, so what it checks is
 * the tokens (argmax at each recorded position), the output and the NFE. */
static void expect_case(um_model *m, const cJSON *c, const char *file) {
    um_generate_params p = case_params(c);
    commit_log log = {0};
    p.on_step = record_step;
    p.user_data = &log;
    int n_prompt, n_want;
    int32_t *prompt = json_int_array(cJSON_GetObjectItem(c, "prompt"), &n_prompt);
    int32_t *want = json_int_array(cJSON_GetObjectItem(c, "output"), &n_want);
    const cJSON *commits = cJSON_GetObjectItem(c, "commits_per_step");
    char what[200];
    snprintf(what, sizeof what, "%s %s %s steps %d block %d top_k %d", file, kind_names[case_kind(c)],
             cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "params"), "alg")), p.steps,
             p.block_length, p.top_k);
    um_generation g;
    um_error err;
    um_status st = case_kind(c) == ORIGIN ? generate_replaying(m, prompt, n_prompt, &p, commits, &g, &err)
                                          : t_generate(m, prompt, n_prompt, &p, &g, &err);
    if (st != UM_OK)
        fail_msg("%s: %s", what, err.msg);
    assert_int_equal(g.n_tokens, n_want);
    if (memcmp(g.tokens, want, (size_t)n_want * sizeof *want) != 0)
        fail_msg("%s: output differs from the reference", what);
    if (g.nfe != cJSON_GetObjectItem(c, "nfe")->valueint)
        fail_msg("%s: nfe %d, reference %d", what, g.nfe, cJSON_GetObjectItem(c, "nfe")->valueint);
    check_commits(commits, &log, what);
    commit_log_free(&log);
    um_generation_free(&g);
    free(prompt);
    free(want);
}

/* Every case of reference.json made by that upstream function (want of
 * them), from Hugging Face (BF16, sharded F32) and GGUF (F32, F16) files,
 * in f32. */
static void expect_cases(dream_kind kind, int want) {
    size_t n;
    char *text = read_whole_file(fixture("dream/tiny-dream/reference.json"), &n);
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    assert_non_null(root);
    const char *files[] = {"tiny-dream/hf-bf16", "tiny-dream/hf-f32-sharded", "gguf/tiny-dream-f32.gguf",
                           "gguf/tiny-dream-f16.gguf"};
    for (int f = 0; f < 4; f++) {
        um_model *m = open_dream(files[f]);
        int checked = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
            if (!cJSON_GetObjectItem(c, "reference") || case_kind(c) != kind)
                continue;
            expect_case(m, c, files[f]);
            checked++;
        }
        print_message("    %s: %d %s cases: output, nfe and commits match\n", files[f], checked, kind_names[kind]);
        assert_int_equal(checked, want);
        um_model_close(m);
    }
    cJSON_Delete(root);
}

/* maskgit_plus, topk_margin, entropy; the implicit top-50 or none. */
static void diffusion_generate_cases(void **state) { expect_cases(DIFFUSION_GENERATE, 10); }

/* alg=origin, its positions replayed from the reference: every token
 * committed at them is ours (argmax), and the output and NFE follow. */
static void origin_cases(void **state) { expect_cases(ORIGIN, 2); }

/* confidence_threshold without cache: the quota, its carry, the extra steps. */
static void fastdllm_threshold_cases(void **state) { expect_cases(FASTDLLM_THRESHOLD, 3); }

/* The block mode with prefix and dual cache: the head step, frozen K/V, the
 * shift inside the cached slice; threshold and entropy. */
static void fastdllm_block_cases(void **state) { expect_cases(FASTDLLM_BLOCK, 8); }

/* alg_temp samples the positions from softmax(confidence / alg_temp): near 0
 * it is the top-k of diffusion_generate, case for case; above, a seed's
 * draws (the same twice, and another seed another trajectory). */
static void alg_temp_positions(void **state) {
    size_t n;
    char *text = read_whole_file(fixture("dream/tiny-dream/reference.json"), &n);
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    um_model *m = open_dream("tiny-dream/hf-bf16");
    const cJSON *c, *last = NULL;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (!cJSON_GetObjectItem(c, "reference") || case_kind(c) != DIFFUSION_GENERATE)
            continue;
        um_generate_params p = case_params(c);
        p.alg_temp = 1e-7; /* the smallest confidence gap, 2.6e-3, is 2.6e4 Gumbel scales */
        int n_prompt, n_want;
        int32_t *prompt = json_int_array(cJSON_GetObjectItem(c, "prompt"), &n_prompt);
        int32_t *want = json_int_array(cJSON_GetObjectItem(c, "output"), &n_want);
        um_generation g;
        um_error err;
        if (t_generate(m, prompt, n_prompt, &p, &g, &err) != UM_OK)
            fail_msg("%s", err.msg);
        assert_int_equal(g.n_tokens, n_want);
        assert_memory_equal(g.tokens, want, (size_t)n_want * sizeof *want);
        um_generation_free(&g);
        free(prompt);
        free(want);
        last = c;
        checked++;
    }
    assert_int_equal(checked, 10);
    um_generate_params p = case_params(last);
    p.alg_temp = 0.02;
    int n_prompt;
    int32_t *prompt = json_int_array(cJSON_GetObjectItem(last, "prompt"), &n_prompt);
    um_generation g[3];
    um_error err;
    for (int i = 0; i < 3; i++) {
        p.seed = i < 2 ? 1 : 2;
        if (t_generate(m, prompt, n_prompt, &p, &g[i], &err) != UM_OK)
            fail_msg("%s", err.msg);
    }
    assert_memory_equal(g[0].tokens, g[1].tokens, (size_t)g[0].n_tokens * sizeof *g[0].tokens);
    assert_memory_not_equal(g[0].tokens, g[2].tokens, (size_t)g[0].n_tokens * sizeof *g[0].tokens);
    for (int i = 0; i < 3; i++)
        um_generation_free(&g[i]);
    free(prompt);
    um_model_close(m);
    cJSON_Delete(root);
}

/* A case's call as `unmask run` flags, over Dream's defaults (no cache, one
 * block, the timesteps schedule, the entropy decoder, top-k 50; threshold
 * without cache: the quota schedule; with a cache: the block mode). */
static void case_flags(const cJSON *c, char *buf, size_t n) {
    const cJSON *params = cJSON_GetObjectItem(c, "params"), *eff = cJSON_GetObjectItem(c, "effective");
    um_generate_params p = case_params(c);
    static const char *const decoders[] = {[UM_DECODER_TOPK] = "topk", [UM_DECODER_MARGIN] = "margin",
                                           [UM_DECODER_ENTROPY] = "entropy", [UM_DECODER_THRESHOLD] = "threshold"};
    int at = snprintf(buf, n, "--gen-length %d --steps %d --decoder %s", p.gen_length, p.steps, decoders[p.decoder]);
    if (p.decoder == UM_DECODER_THRESHOLD)
        at += snprintf(buf + at, n - at, " --threshold %.15g", p.threshold);
    if (!cJSON_IsNumber(cJSON_GetObjectItem(eff, "top_k")))
        at += snprintf(buf + at, n - at, " --top-k 0");
    if (case_kind(c) == FASTDLLM_BLOCK)
        snprintf(buf + at, n - at, " --block-length %d --cache %s", p.block_length,
                 cJSON_IsTrue(cJSON_GetObjectItem(params, "dual_cache")) ? "dual" : "prefix");
}

static void expect_json_matches(const cJSON *out, const cJSON *c, const char *what) {
    const cJSON *got = cJSON_GetObjectItem(out, "tokens"), *want = cJSON_GetObjectItem(c, "output");
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    for (int i = 0; i < cJSON_GetArraySize(want); i++)
        if (cJSON_GetArrayItem(got, i)->valueint != cJSON_GetArrayItem(want, i)->valueint)
            fail_msg("%s: token %d differs", what, i);
    int nfe = cJSON_GetObjectItem(out, "nfe")->valueint, want_nfe = cJSON_GetObjectItem(c, "nfe")->valueint;
    if (nfe != want_nfe)
        fail_msg("%s: nfe %d, reference %d", what, nfe, want_nfe);
}

/* Every case but origin's through `unmask run` with the flags a user would
 * pass, and all of them again as one --batch file (the flags as JSONL keys). */
static void cases_through_the_command(void **state) {
    f32_activations_for_commands(true); /* the reference's arithmetic */
    size_t n;
    char *text = read_whole_file(fixture("dream/tiny-dream/reference.json"), &n);
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    const char *model = fixture("dream/gguf/tiny-dream-f32.gguf");
    char *dir = make_temp_dir(), path[4096];
    snprintf(path, sizeof path, "%s/requests.jsonl", dir);
    FILE *batch = fopen(path, "w");
    assert_non_null(batch);
    const cJSON *cases[32], *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (!cJSON_GetObjectItem(c, "reference") || case_kind(c) == ORIGIN)
            continue;
        assert_true(checked < 32);
        char flags[256], what[400];
        case_flags(c, flags, sizeof flags);
        char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
        cJSON *out = run_unmask_json("run -m %s --prompt-tokens %s %s --json", model, prompt, flags);
        snprintf(what, sizeof what, "run %s", flags);
        expect_json_matches(out, c, what);
        cJSON_Delete(out);
        /* the same flags as a --batch line: "--top-k 0" is "top_k": 0 */
        fprintf(batch, "{\"prompt_tokens\": [%s]", prompt);
        for (char *f = strtok(flags, " "); f; f = strtok(NULL, " ")) {
            char *v = strtok(NULL, " ");
            fprintf(batch, ", \"");
            for (f += 2; *f; f++)
                fputc(*f == '-' ? '_' : *f, batch);
            fprintf(batch, "\": %s%s%s", isdigit((unsigned char)v[0]) ? "" : "\"", v,
                    isdigit((unsigned char)v[0]) ? "" : "\"");
        }
        fprintf(batch, "}\n");
        cases[checked++] = c;
        free(prompt);
    }
    fclose(batch);
    assert_int_equal(checked, 21);
    cmd_result r = run_unmask("run -m %s --batch %s --parallel 5", model, path);
    if (r.status != 0)
        fail_msg("run --batch: %s", r.err);
    char *line = r.out;
    for (int i = 0; i < checked; i++) {
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = 0;
        cJSON *out = cJSON_Parse(line);
        assert_non_null(out);
        expect_json_matches(out, cases[i], "run --batch");
        cJSON_Delete(out);
        line = end + 1;
    }
    print_message("    %d cases through run and run --batch: output and nfe match\n", checked);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
    cJSON_Delete(root);
    f32_activations_for_commands(false);
}

/* What has no upstream to hold it to, and combinations that cannot work, are
 * refused by name: the vicinity cache with shifted logits, the block mode's
 * counts off the timesteps schedule or with one step per block, the quota
 * with a cache, origin off the timesteps grid, alg_temp on a decoder that
 * does not count, top_p outside [0, 1]; and writing Dream GGUFs (llama.cpp's
 * key order). */
static void refused_combinations(void **state) {
    um_model *m = open_dream("tiny-dream/hf-bf16");
    static const struct {
        um_cache_mode cache;
        um_decoder decoder;
        um_schedule schedule;
        int steps;
        double top_p, alg_temp;
        const char *says;
    } bad[] = {
        {UM_CACHE_VICINITY, UM_DECODER_ENTROPY, UM_SCHEDULE_TIMESTEPS, 8, 0, 0, "shifted"},
        {UM_CACHE_DUAL, UM_DECODER_TOPK, UM_SCHEDULE_UNIFORM, 8, 0, 0, "timesteps schedule"},
        {UM_CACHE_PREFIX, UM_DECODER_ENTROPY, UM_SCHEDULE_TIMESTEPS, 1, 0, 0, "at least 2 steps per block"},
        {UM_CACHE_DUAL, UM_DECODER_THRESHOLD, UM_SCHEDULE_QUOTA, 8, 0, 0, "without a KV cache"},
        {UM_CACHE_NONE, UM_DECODER_ENTROPY, UM_SCHEDULE_QUOTA, 8, 0, 0, "threshold decoder only"},
        {UM_CACHE_NONE, UM_DECODER_ORIGIN, UM_SCHEDULE_UNIFORM, 8, 0, 0, "timesteps schedule"},
        {UM_CACHE_NONE, UM_DECODER_THRESHOLD, UM_SCHEDULE_UNIFORM, 8, 0, 0.5, "alg_temp"},
        {UM_CACHE_NONE, UM_DECODER_ENTROPY, UM_SCHEDULE_TIMESTEPS, 8, 1.5, 0, "top_p"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        um_generate_params p = um_generate_default_params();
        p.gen_length = p.block_length = 8;
        p.steps = bad[i].steps;
        p.cache = bad[i].cache;
        p.decoder = bad[i].decoder;
        p.schedule = bad[i].schedule;
        p.top_p = bad[i].top_p;
        p.alg_temp = bad[i].alg_temp;
        int32_t prompt[2] = {1, 2};
        um_generation g;
        um_error err;
        assert_int_not_equal(t_generate(m, prompt, 2, &p, &g, &err), UM_OK);
        if (!strstr(err.msg, bad[i].says))
            fail_msg("case %zu: '%s' does not say '%s'", i, err.msg, bad[i].says);
    }
    um_model_close(m);
    cmd_result r = run_unmask("run -m %s --prompt-tokens 1,2 -n 8 --cache vicinity",
                              fixture("dream/tiny-dream/hf-bf16"));
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "not vicinity"));
    cmd_result_free(&r);
}

/* convert writes what llama.cpp's converter wrote for the fixtures (shards
 * in file-name order, Dream's keys in its order, no q/k permutation), key
 * for key and byte for byte, gguf-py's naming of the model aside; quantize
 * re-quantizes it, and the result stays close to upstream's logits. */
static void convert_and_quantize(void **state) {
    const char *types[] = {"f32", "f16", "q8_0"};
    char *dir = make_temp_dir(), out[512], ref[128];
    for (int t = 0; t < 3; t++) {
        snprintf(out, sizeof out, "%s/%s.gguf", dir, types[t]);
        snprintf(ref, sizeof ref, "dream/gguf/tiny-dream-%s.gguf", types[t]);
        um_convert_params p = {um_recipe_find(types[t]), NULL, 2, NULL, NULL};
        um_error err;
        if (um_convert_hf_to_gguf(fixture("dream/tiny-dream/hf-f32-sharded"), out, &p, &err) != UM_OK)
            fail_msg("convert %s: %s", types[t], err.msg);
        expect_same_gguf(out, fixture(ref));
    }
    snprintf(out, sizeof out, "%s/q8_0.gguf", dir);
    um_convert_params p = {um_recipe_find("q8_0"), NULL, 2, NULL, NULL};
    um_error err;
    if (um_quantize_gguf(fixture("dream/gguf/tiny-dream-f32.gguf"), out, &p, &err) != UM_OK)
        fail_msg("quantize: %s", err.msg);
    assert_true(forward_error(out) <= 3e-2); /* as the fixture's Q8_0 file */
    remove_tree(dir);
    free(dir);
}

/* eval's masked-token loss reads position i from the model's row i - 1, as
 * every Dream sampler does: the loss of a batch made from forward.safetensors'
 * inputs, against the same sum over upstream's own logits. */
static void eval_reads_shifted_rows(void **state) {
    um_st_file ref;
    um_error err;
    if (um_st_open(fixture("dream/tiny-dream/forward.safetensors"), &ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    const um_st_tensor *ids = um_st_find(&ref, "input_ids"), *logits = um_st_find(&ref, "logits");
    int rows = (int)ids->shape[0], seq = (int)ids->shape[1], vocab = (int)logits->shape[2];
    size_t n = (size_t)rows * seq;
    int32_t *noisy = malloc(n * sizeof *noisy), *x0 = malloc(n * sizeof *x0);
    double *p_mask = malloc(n * sizeof *p_mask), want = 0;
    memcpy(noisy, ids->data, n * sizeof *noisy);
    for (size_t i = 0; i < n; i++) {
        int pos = (int)(i % (size_t)seq);
        x0[i] = noisy[i] == 511 ? (int32_t)((7 * i + 3) % 500) : noisy[i];
        p_mask[i] = pos % 2 ? 0.75 : 0.25;
        if (noisy[i] != 511)
            continue;
        const float *l = (const float *)logits->data + (i - (pos > 0 ? 1 : 0)) * (size_t)vocab;
        double mx = l[0], sum = 0;
        for (int v = 1; v < vocab; v++)
            mx = fmax(mx, l[v]);
        for (int v = 0; v < vocab; v++)
            sum += exp(l[v] - mx);
        want += (log(sum) + mx - l[x0[i]]) / p_mask[i];
    }
    want /= (double)n;
    char *dir = make_temp_dir(), path[512];
    snprintf(path, sizeof path, "%s/batch.safetensors", dir);
    um_st_desc d[3] = {{"input_ids", UM_I32, 2, {rows, seq}, x0},
                       {"noisy_ids", UM_I32, 2, {rows, seq}, noisy},
                       {"p_mask", UM_F64, 2, {rows, seq}, p_mask}};
    if (um_st_write(path, d, 3, &err) != UM_OK)
        fail_msg("%s", err.msg);
    f32_activations_for_commands(true);
    cJSON *out = run_unmask_json("eval -m %s --masked-batch %s --json -t 2", fixture("dream/tiny-dream/hf-bf16"), path);
    f32_activations_for_commands(false);
    double got = cJSON_GetObjectItem(out, "loss")->valuedouble;
    print_message("    masked-batch loss %.9f, from upstream's logits %.9f\n", got, want);
    assert_true(fabs(got - want) <= 1e-4 * want);
    cJSON_Delete(out);
    remove_tree(dir);
    free(dir);
    free(noisy);
    free(x0);
    free(p_mask);
    um_st_close(&ref);
}

/* Every decoder with every cache on Dream (its shift in each), from the
 * settings a user starts from (Dream's defaults: the timesteps schedule,
 * top-k 50; blocks of 8): each generation fills its canvas and is the same
 * twice. The vicinity cache, which no Dream upstream has, is refused by name. */
static void every_decoder_and_cache(void **state) {
    um_model *m = open_dream("gguf/tiny-dream-f32.gguf");
    int32_t prompt[] = {381, 329, 349, 17, 88, 263};
    int runs = 0;
    for (int cache = UM_CACHE_NONE; cache <= UM_CACHE_VICINITY; cache++)
        for (int dec = UM_DECODER_TOPK; dec <= UM_DECODER_ORIGIN; dec++) {
            um_generate_params p = um_generate_default_params();
            p.gen_length = 16;
            p.block_length = cache == UM_CACHE_NONE ? 16 : 8;
            p.steps = 8;
            p.cache = (um_cache_mode)cache;
            p.decoder = (um_decoder)dec;
            p.schedule = um_decoder_counts(p.decoder) || dec == UM_DECODER_ORIGIN ? UM_SCHEDULE_TIMESTEPS
                                                                                  : UM_SCHEDULE_UNIFORM;
            p.top_k = 50;
            p.threshold = 0.3;
            p.entropy_bound = 3.0;
            p.seed = 3;
            um_generation a, b;
            um_error err;
            um_status st = t_generate(m, prompt, 6, &p, &a, &err);
            if (cache == UM_CACHE_VICINITY) {
                assert_int_not_equal(st, UM_OK);
                assert_non_null(strstr(err.msg, "vicinity"));
                continue;
            }
            if (st != UM_OK)
                fail_msg("cache %d decoder %d: %s", cache, dec, err.msg);
            for (int i = 6; i < a.n_tokens; i++)
                if (a.tokens[i] == 511)
                    fail_msg("cache %d decoder %d: position %d still masked", cache, dec, i);
            assert_int_equal(t_generate(m, prompt, 6, &p, &b, &err), UM_OK);
            assert_memory_equal(a.tokens, b.tokens, (size_t)a.n_tokens * sizeof *a.tokens);
            assert_int_equal(a.nfe, b.nfe);
            um_generation_free(&a);
            um_generation_free(&b);
            runs++;
        }
    print_message("    %d decoder x cache combinations fill the canvas, reproducibly\n", runs);
    assert_int_equal(runs, 3 * 9);
    um_model_close(m);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(forward_matches_upstream),
    cmocka_unit_test(convert_and_quantize),
    cmocka_unit_test(every_decoder_and_cache),
    cmocka_unit_test(eval_reads_shifted_rows),
    cmocka_unit_test(hyper_parameters),
    cmocka_unit_test(diffusion_generate_cases),
    cmocka_unit_test(origin_cases),
    cmocka_unit_test(fastdllm_threshold_cases),
    cmocka_unit_test(fastdllm_block_cases),
    cmocka_unit_test(alg_temp_positions),
    cmocka_unit_test(cases_through_the_command),
    cmocka_unit_test(refused_combinations),
};

const test_group dream_group = {"dream", tests, sizeof tests / sizeof *tests};
