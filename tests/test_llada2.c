/* LLaDA2.0 (fixtures/llada2): the block-diffusion row of the architecture
 * table. Its forward against the upstream model's logits, bidirectional and
 * with generate's block-causal mask; LLaDA2MoeModelLM.generate's cases exact
 * (output, NFE, each step's window and commits) with the cache of finished
 * blocks, from Hugging Face files and from the GGUF files unmask writes, then
 * through `unmask run`'s flags and `--batch` keys. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "format/json.h"
#include "format/safetensors.h"
#include "model/convert.h"
#include "model/model.h"
#include "testutil.h"

#define LLADA2 "llada2/tiny-llada2"

static um_model *open_llada2(const char *path, int threads) {
    um_model *m = NULL;
    um_model_params mp = {threads, false};
    um_error err;
    if (um_model_open(path, &mp, &m, &err) != UM_OK)
        fail_msg("opening %s: %s", path, err.msg);
    return m;
}

/* Our logits of forward.safetensors' inputs, every position, in f32: the
 * attention bidirectional (block 0) or block-causal with that block length. */
static float *forward_logits(um_model *m, const um_st_file *ref, int block, size_t *n) {
    const um_st_tensor *ids = st_tensor(ref, "input_ids", UM_I32);
    int rows = (int)ids->shape[0], seq = (int)ids->shape[1];
    um_model_info info;
    um_model_get_info(m, &info);
    *n = (size_t)rows * seq * (size_t)info.n_vocab;
    float *ours = malloc(*n * sizeof *ours);
    um_batch_entry *e = calloc((size_t)rows, sizeof *e);
    for (int r = 0; r < rows; r++)
        e[r] = (um_batch_entry){(const int32_t *)ids->data + (size_t)r * seq, seq, 0, seq, seq, NULL, NULL, 0, NULL,
                                block};
    um_context *ctx;
    um_error err;
    if (um_context_create(m, NULL, &ctx, &err) != UM_OK || um_forward_batch(ctx, e, rows, &err) != UM_OK ||
        um_context_logits(ctx, ours, &err) != UM_OK)
        fail_msg("forward: %s", err.msg);
    um_context_free(ctx);
    free(e);
    return ours;
}

static void forward_of(const char *path) {
    um_st_file ref;
    um_error err;
    if (um_st_open(fixture(LLADA2 "/forward.safetensors"), &ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_model *m = open_llada2(path, 2);
    const char *names[] = {"logits", "logits_block_causal"};
    for (int k = 0; k < 2; k++) {
        size_t n;
        float *ours = forward_logits(m, &ref, k == 0 ? 0 : 8, &n);
        const um_st_tensor *want = st_tensor(&ref, names[k], UM_F32);
        assert_int_equal(um_st_numel(want), (int64_t)n);
        double e = max_rel_error(ours, (const float *)want->data, n);
        print_message("    %s %s: max relative error %.2e\n", path, names[k], e);
        assert_true(e <= 1e-4);
        free(ours);
    }
    um_model_close(m);
    um_st_close(&ref);
}

static void forward_matches_upstream(void **state) {
    forward_of(fixture(LLADA2 "/hf-bf16"));
    forward_of(fixture(LLADA2 "/hf-f32-sharded"));
}

/* The fixture README's shape, routing settings and ids. */
static void hyper_parameters(void **state) {
    um_model *m = open_llada2(fixture(LLADA2 "/hf-bf16"), 1);
    const um_hparams *hp = &m->hp;
    assert_string_equal(m->arch, "llada2");
    assert_int_equal(hp->n_layers, 3);
    assert_int_equal(hp->d_model, 64);
    assert_int_equal(hp->n_heads, 4);
    assert_int_equal(hp->n_kv_heads, 1);
    assert_int_equal(hp->head_dim, 16);
    assert_int_equal(hp->rope_dim, 8);
    assert_int_equal(hp->n_dense_layers, 1);
    assert_int_equal(hp->d_ff, 192);
    assert_int_equal(hp->n_expert, 8);
    assert_int_equal(hp->n_expert_used, 2);
    assert_int_equal(hp->d_ff_exp, 48);
    assert_int_equal(hp->d_ff_shexp, 48);
    assert_int_equal(hp->route.n_group, 2);
    assert_int_equal(hp->route.n_group_used, 1);
    assert_true(hp->route.gating == UM_GATING_SIGMOID);
    assert_true(hp->route.renormalize);
    assert_true(hp->route.scale == 2.5f);
    assert_true(hp->expert_bias);
    assert_int_equal(hp->attn_mask, UM_ATTN_BLOCK_CAUSAL);
    assert_int_equal(hp->mask_id, 500);
    assert_int_equal(hp->eos_id, 501);
    assert_int_equal(hp->eot_id, 502);
    um_model_close(m);
}

/* ---- generate's cases ------------------------------------------------------ */

static double number(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A case's generate() arguments as unmask's: block diffusion with the threshold decoder. */
static um_generate_params case_params(const cJSON *c) {
    const cJSON *params = cJSON_GetObjectItem(c, "params");
    assert_true(number(params, "temperature", -1) == 0);
    um_generate_params p = um_generate_default_params();
    p.loop = UM_LOOP_BLOCKS;
    p.decoder = UM_DECODER_THRESHOLD;
    p.block_length = (int)number(params, "block_length", 0);
    p.steps = (int)number(params, "steps", 0);
    p.gen_length = (int)number(params, "gen_length", 0);
    p.threshold = number(params, "threshold", 0);
    p.minimal_topk = (int)number(params, "minimal_topk", 1);
    p.early_stop = cJSON_IsTrue(cJSON_GetObjectItem(params, "eos_early_stop"));
    return p;
}

/* `unmask run` flags for the case. */
static void case_flags(const cJSON *c, char *buf, size_t n) {
    um_generate_params p = case_params(c);
    snprintf(buf, n, "-n %d --steps %d --block-length %d --threshold %.15g --minimal-topk %d%s", p.gen_length, p.steps,
             p.block_length, p.threshold, p.minimal_topk, p.early_stop ? " --early-stop" : "");
}

/* Each forward ran the window [.., (b+1)B) upstream fed the model. */
static void check_windows(const cJSON *want, const commit_log *log, const char *what) {
    assert_int_equal(cJSON_GetArraySize(want), log->n_steps);
    for (int s = 0; s < log->n_steps; s++)
        if (log->spans[s][1] != cJSON_GetArrayItem(want, s)->valueint)
            fail_msg("%s: forward %d ends at %d, upstream's window %d", what, s, log->spans[s][1],
                     cJSON_GetArrayItem(want, s)->valueint);
}

/* Every case from the model at path: output, NFE, windows and commits. */
static void generate_cases(const char *path, const char *label) {
    um_model *m = open_llada2(path, 2);
    cJSON *root = load_reference(LLADA2);
    const cJSON *c;
    int n = 0, cached = 0, full = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "kind")), "generate") != 0)
            continue;
        um_generate_params p = case_params(c);
        commit_log log = {0};
        p.on_step = record_step;
        p.user_data = &log;
        int n_prompt, n_want;
        int32_t *prompt = json_int_array(cJSON_GetObjectItem(c, "prompt"), &n_prompt);
        int32_t *want = json_int_array(cJSON_GetObjectItem(c, "output"), &n_want);
        char what[256];
        snprintf(what, sizeof what, "%s block %d steps %d gen %d threshold %g minimal_topk %d early_stop %d", label,
                 p.block_length, p.steps, p.gen_length, p.threshold, p.minimal_topk, p.early_stop);
        um_generation g;
        um_error err;
        if (t_generate(m, prompt, n_prompt, &p, &g, &err) != UM_OK)
            fail_msg("%s: %s", what, err.msg);
        if (g.n_tokens != n_want || memcmp(g.tokens, want, (size_t)n_want * sizeof *want) != 0)
            fail_msg("%s: output differs from upstream's (%d tokens, upstream %d)", what, g.n_tokens, n_want);
        if (g.nfe != (int)number(c, "nfe", -1))
            fail_msg("%s: nfe %d, upstream %d", what, g.nfe, (int)number(c, "nfe", -1));
        check_windows(cJSON_GetObjectItem(c, "window_per_step"), &log, what);
        check_commits(cJSON_GetObjectItem(c, "commits_per_step"), &log, what);
        /* the cache at work: a step computes what is not final, never the finished blocks again */
        for (int s = 0; s < log.n_steps; s++) {
            cached += log.spans[s][1] - log.spans[s][0];
            full += log.spans[s][1];
        }
        print_message("    %s: output, nfe %d, windows and commits match\n", what, g.nfe);
        um_generation_free(&g);
        commit_log_free(&log);
        free(prompt);
        free(want);
        n++;
    }
    assert_int_equal(n, 9);
    print_message("    %s: the steps computed %d positions, upstream's windows %d\n", label, cached, full);
    assert_true(cached < full / 2);
    cJSON_Delete(root);
    um_model_close(m);
}

static void generate_matches_upstream(void **state) {
    generate_cases(fixture(LLADA2 "/hf-bf16"), "hf-bf16");
    generate_cases(fixture(LLADA2 "/hf-f32-sharded"), "hf-f32-sharded");
}

/* The same through `unmask run` (its defaults for a block-causal model: block
 * diffusion, threshold decoding) and through `run --batch`, every case one
 * line of one batch stepped together. */
static void generate_cases_cli(void **state) {
    f32_activations_for_commands(true);
    cJSON *root = load_reference(LLADA2);
    const cJSON *c;
    char *dir = make_temp_dir(), batch_path[512];
    snprintf(batch_path, sizeof batch_path, "%s/llada2.jsonl", dir);
    FILE *batch = fopen(batch_path, "w");
    assert_non_null(batch);
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "kind")), "generate") != 0)
            continue;
        char flags[256];
        case_flags(c, flags, sizeof flags);
        char *prompt = json_ids_csv(cJSON_GetObjectItem(c, "prompt"));
        expect_run_matches(LLADA2, LLADA2 "/hf-bf16", prompt, flags, c);
        um_generate_params p = case_params(c);
        fprintf(batch, "{\"prompt_tokens\": [%s], \"gen_length\": %d, \"steps\": %d, \"block_length\": %d, "
                "\"threshold\": %.15g, \"minimal_topk\": %d, \"early_stop\": %s}\n", prompt, p.gen_length, p.steps,
                p.block_length, p.threshold, p.minimal_topk, p.early_stop ? "true" : "false");
        free(prompt);
        n++;
    }
    fclose(batch);
    /* the model's own defaults: one block of 32 holds a prompt of 3 and 16 tokens (what lies past them is
       dropped, and so is all after the first EOS) */
    cJSON *o = run_unmask_json("run -m %s --prompt-tokens 1,2,3 -n 16 --json", fixture(LLADA2 "/hf-bf16"));
    const cJSON *toks = cJSON_GetObjectItem(o, "tokens");
    int n_toks = cJSON_GetArraySize(toks);
    assert_true(n_toks == 19 || (n_toks < 19 && cJSON_GetArrayItem(toks, n_toks - 1)->valueint == 501));
    assert_true(cJSON_GetObjectItem(o, "nfe")->valueint <= 32);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "step_ms")), cJSON_GetObjectItem(o, "nfe")->valueint);
    cJSON_Delete(o);
    /* eval --tasks generates with the model's own loop too */
    char tasks_path[512];
    snprintf(tasks_path, sizeof tasks_path, "%s/tasks.jsonl", dir);
    const char *task = "{\"prompt\": \"Hello\", \"response\": \"x\"}\n";
    write_file(tasks_path, task, strlen(task));
    cmd_result e = run_unmask("eval -m %s --tasks %s -n 8 --block-length 8", fixture(LLADA2 "/hf-bf16"), tasks_path);
    if (e.status != 0)
        fail_msg("eval --tasks: exit %d: %s", e.status, e.err);
    cmd_result_free(&e);
    cmd_result r = run_unmask("run -m %s --batch %s --parallel 4 -t 2", fixture(LLADA2 "/hf-bf16"), batch_path);
    if (r.status != 0)
        fail_msg("run --batch: exit %d: %s", r.status, r.err);
    char *at = r.out;
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(c, "kind")), "generate") != 0)
            continue;
        cJSON *out = cJSON_Parse(at);
        assert_non_null(out);
        const cJSON *want = cJSON_GetObjectItem(c, "output"), *got = cJSON_GetObjectItem(out, "tokens");
        assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
        for (int t = 0; t < cJSON_GetArraySize(want); t++)
            if (cJSON_GetArrayItem(got, t)->valueint != cJSON_GetArrayItem(want, t)->valueint)
                fail_msg("run --batch line %d: token %d differs", k + 1, t);
        assert_int_equal(cJSON_GetObjectItem(out, "nfe")->valueint, (int)number(c, "nfe", -1));
        cJSON_Delete(out);
        at = strchr(at, '\n') ? strchr(at, '\n') + 1 : at + strlen(at);
        k++;
    }
    assert_int_equal(k, n);
    print_message("    run --batch --parallel 4: the %d cases' outputs and nfe match\n", k);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
    cJSON_Delete(root);
    f32_activations_for_commands(false);
}

/* The count-based decoders with block diffusion: topk is the threshold
 * decoder that never finds a mask above its threshold (upstream's case at
 * threshold 1.0, pure quota top-k); margin and entropy commit each step's
 * count of the uniform schedule of the block length, credit at least it. */
static void other_decoders(void **state) {
    um_model *m = open_llada2(fixture(LLADA2 "/hf-bf16"), 2);
    cJSON *root = load_reference(LLADA2);
    const cJSON *c, *quota = NULL;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases"))
        if (number(cJSON_GetObjectItem(c, "params"), "threshold", 0) == 1.0)
            quota = c;
    assert_non_null(quota);
    int n_prompt, n_want;
    int32_t *prompt = json_int_array(cJSON_GetObjectItem(quota, "prompt"), &n_prompt);
    int32_t *want = json_int_array(cJSON_GetObjectItem(quota, "output"), &n_want);
    const um_decoder decoders[] = {UM_DECODER_TOPK, UM_DECODER_MARGIN, UM_DECODER_ENTROPY, UM_DECODER_CREDIT};
    const char *names[] = {"topk", "margin", "entropy", "credit"};
    for (int d = 0; d < 4; d++) {
        um_generate_params p = case_params(quota); /* block 8, 8 steps a block, 32 tokens after 12 */
        p.decoder = decoders[d];
        p.threshold = 0.9;
        commit_log log = {0};
        p.on_step = record_step;
        p.user_data = &log;
        um_generation g;
        um_error err;
        if (t_generate(m, prompt, n_prompt, &p, &g, &err) != UM_OK)
            fail_msg("%s: %s", names[d], err.msg);
        if (d == 0)
            assert_memory_equal(g.tokens, want, (size_t)n_want * sizeof *want);
        int left = 0;
        for (int i = n_prompt; i < g.n_tokens; i++)
            left += g.tokens[i] == 500;
        assert_int_equal(left, 0);
        /* 8 steps for blocks of 8: the count-based decoders commit 1 a step */
        for (int s = 0; s < log.n_steps && d < 3; s++)
            assert_int_equal(log.n_commits[s], 1);
        for (int s = 0; s < log.n_steps; s++)
            assert_true(log.n_commits[s] >= 1);
        print_message("    block diffusion with --decoder %s: %d forwards, every block filled%s\n", names[d], g.nfe,
                      d == 0 ? ", upstream's output at threshold 1.0" : "");
        um_generation_free(&g);
        commit_log_free(&log);
    }
    free(prompt);
    free(want);
    cJSON_Delete(root);
    um_model_close(m);
}

/* ---- GGUF --------------------------------------------------------------------- */

static void convert_to(const char *dir, const char *type, char *out, size_t n) {
    snprintf(out, n, "%s/%s.gguf", dir, type);
    um_convert_params p = {um_recipe_find(type), NULL, 2, NULL, NULL};
    um_error err;
    if (um_convert_hf_to_gguf(fixture(LLADA2 "/hf-bf16"), out, &p, &err) != UM_OK)
        fail_msg("convert to %s: %s", type, err.msg);
}

static void expect_u32(const um_gguf_file *f, const char *key, uint32_t want) {
    uint32_t v;
    um_error err;
    if (um_gguf_get_u32(f, key, &v, &err) != UM_OK)
        fail_msg("%s", err.msg);
    if (v != want)
        fail_msg("%s = %u, want %u", key, v, want);
}

/* The keys and tensor names llama.cpp gives Ling 2.0 (bailingmoe2: its
 * LLM_KV and LLM_TENSOR names, experts stacked 3-D, q/k/v fused, the expert
 * bias as exp_probs_b.bias), with the fixture README's values. */
static void expect_llama_cpp_layout(const char *path) {
    um_gguf_file f;
    um_error err;
    if (um_gguf_open(path, &f, &err) != UM_OK)
        fail_msg("%s", err.msg);
    um_gguf_str arch;
    assert_int_equal(um_gguf_get_str(&f, "general.architecture", &arch, &err), UM_OK);
    assert_true(um_gguf_str_eq(arch, "llada2"));
    expect_u32(&f, "llada2.block_count", 3);
    expect_u32(&f, "llada2.attention.head_count_kv", 1);
    expect_u32(&f, "llada2.rope.dimension_count", 8);
    expect_u32(&f, "llada2.leading_dense_block_count", 1);
    expect_u32(&f, "llada2.expert_count", 8);
    expect_u32(&f, "llada2.expert_used_count", 2);
    expect_u32(&f, "llada2.expert_feed_forward_length", 48);
    expect_u32(&f, "llada2.expert_shared_feed_forward_length", 48);
    expect_u32(&f, "llada2.expert_shared_count", 1);
    expect_u32(&f, "llada2.expert_gating_func", 2); /* LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID */
    expect_u32(&f, "llada2.expert_group_count", 2);
    expect_u32(&f, "llada2.expert_group_used_count", 1);
    expect_u32(&f, "llada2.diffusion.block_length", 32);
    float scale;
    bool norm;
    assert_int_equal(um_gguf_get_f32(&f, "llada2.expert_weights_scale", &scale, &err), UM_OK);
    assert_true(scale == 2.5f);
    assert_int_equal(um_gguf_get_bool(&f, "llada2.expert_weights_norm", &norm, &err), UM_OK);
    assert_true(norm);
    const um_gguf_tensor *qkv = um_gguf_find_tensor(&f, "blk.0.attn_qkv.weight");
    assert_non_null(qkv);
    assert_int_equal(qkv->ne[1], 96);
    assert_non_null(um_gguf_find_tensor(&f, "blk.0.ffn_gate.weight"));
    assert_null(um_gguf_find_tensor(&f, "blk.0.ffn_gate_exps.weight"));
    const um_gguf_tensor *exps = um_gguf_find_tensor(&f, "blk.1.ffn_down_exps.weight");
    assert_non_null(exps);
    assert_int_equal(exps->n_dims, 3);
    assert_int_equal(exps->ne[2], 8);
    const um_gguf_tensor *bias = um_gguf_find_tensor(&f, "blk.2.exp_probs_b.bias");
    assert_non_null(bias);
    assert_int_equal(bias->type, UM_F32);
    assert_non_null(um_gguf_find_tensor(&f, "blk.2.ffn_up_shexp.weight"));
    assert_non_null(um_gguf_find_tensor(&f, "blk.2.ffn_gate_inp.weight"));
    um_gguf_close(&f);
}

/* convert writes llama.cpp's layout; from the F32 and F16 files the forward
 * and every generate case are upstream's; quantize, info and compare work
 * on them. */
static void gguf_files(void **state) {
    char *dir = make_temp_dir(), f32[512], f16[512], q8[512];
    convert_to(dir, "f32", f32, sizeof f32);
    convert_to(dir, "f16", f16, sizeof f16);
    expect_llama_cpp_layout(f32);
    forward_of(f32);
    forward_of(f16); /* the bf16-representable weights fit f16 */
    generate_cases(f32, "f32.gguf");
    generate_cases(f16, "f16.gguf");
    snprintf(q8, sizeof q8, "%s/q4_k_m.gguf", dir);
    cmd_result r = run_unmask("quantize %s %s q4_k_m", f32, q8);
    assert_int_equal(r.status, 0);
    cmd_result_free(&r);
    expect_llama_cpp_layout(q8);
    r = run_unmask("info -m %s", q8);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "router:           sigmoid, expert bias, best 1 of 2 groups, renormalized, "
                                  "scaled by 2.5"));
    assert_non_null(strstr(r.out, "attention:        block-causal"));
    cmd_result_free(&r);
    /* the f32 file against the checkpoint it came from, in the same arithmetic: the same logits */
    f32_activations_for_commands(true);
    r = run_unmask("compare -m %s -m %s --prompt-len 20 --gen-len 12", fixture(LLADA2 "/hf-f32-sharded"), f32);
    f32_activations_for_commands(false);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "top-1 agreement 100.00%"));
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
}

/* init-random's llada2-mini writes LLaDA2.0-mini's config keys (those of the
 * fixture's config.json, which carries the released file's keys) and the
 * model loads with the published routing, grouping, rotary and shared-expert
 * settings; here at a small width so that the file is small. */
static void init_random_preset(void **state) {
    char *dir = make_temp_dir(), out[512];
    snprintf(out, sizeof out, "%s/mini", dir);
    cmd_result r =
        run_unmask("init-random --preset llada2-mini --layers 2 --d-model 64 --heads 4 --kv-heads 1 --ff 96 -o %s", out);
    assert_int_equal(r.status, 0);
    cmd_result_free(&r);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", out);
    cJSON *ours = NULL, *theirs = NULL;
    um_error err;
    assert_int_equal(um_json_load(path, 1 << 20, &ours, &err), UM_OK);
    assert_int_equal(um_json_load(fixture(LLADA2 "/hf-bf16/config.json"), 1 << 20, &theirs, &err), UM_OK);
    const cJSON *k;
    cJSON_ArrayForEach(k, ours)
        if (!cJSON_GetObjectItemCaseSensitive(theirs, k->string))
            fail_msg("init-random writes '%s', which LLaDA2.0-mini's config.json does not have", k->string);
    cJSON_Delete(ours);
    cJSON_Delete(theirs);
    um_model *m = open_llada2(out, 1);
    const um_hparams *hp = &m->hp;
    assert_int_equal(hp->n_expert, 256);
    assert_int_equal(hp->n_expert_used, 8);
    assert_int_equal(hp->d_ff_exp, 512);
    assert_int_equal(hp->d_ff_shexp, 512);
    assert_int_equal(hp->n_dense_layers, 1);
    assert_int_equal(hp->route.n_group, 8);
    assert_int_equal(hp->route.n_group_used, 4);
    assert_true(hp->route.scale == 2.5f && hp->route.renormalize && hp->route.gating == UM_GATING_SIGMOID);
    assert_true(hp->expert_bias);
    assert_int_equal(hp->rope_dim, hp->head_dim / 2);
    assert_true(hp->rope_theta == 600000.0f);
    assert_int_equal(hp->n_vocab, 157184);
    assert_int_equal(hp->mask_id, 156895); /* not in the config: the released tokenizer's, as without one */
    assert_int_equal(hp->eos_id, 156892);
    um_model_close(m);
    remove_tree(dir);
    free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(forward_matches_upstream),
    cmocka_unit_test(hyper_parameters),
    cmocka_unit_test(generate_matches_upstream),
    cmocka_unit_test(generate_cases_cli),
    cmocka_unit_test(other_decoders),
    cmocka_unit_test(gguf_files),
    cmocka_unit_test(init_random_preset),
};

const test_group llada2_group = {"llada2", tests, sizeof tests / sizeof *tests};
