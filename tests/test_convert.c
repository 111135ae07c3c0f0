/* unmask convert / quantize against llama.cpp: converting the fixture
 * checkpoints must give the very files llama.cpp's converter made
 * (fixtures/llada/gguf), converted models must reproduce the reference logits
 * and generations, and each quantized type's error must stay in line with
 * what llama.cpp's types are known to cost. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/rng.h"
#include "format/gguf.h"
#include "format/safetensors.h"
#include "kernels/stats.h"
#include "model/convert.h"
#include "testutil.h"

static void convert_or_fail(const char *dir, const char *out, const char *type, const char *name) {
    um_convert_params p = {um_recipe_find(type), name, 2, NULL, NULL};
    assert_non_null(p.recipe);
    um_error err;
    if (um_convert_hf_to_gguf(dir, out, &p, &err) != UM_OK)
        fail_msg("convert %s -> %s: %s", dir, type, err.msg);
}

static void quantize_or_fail(const char *in, const char *out, const char *type) {
    um_convert_params p = {um_recipe_find(type), NULL, 2, NULL, NULL};
    assert_non_null(p.recipe);
    um_error err;
    if (um_quantize_gguf(in, out, &p, &err) != UM_OK)
        fail_msg("quantize %s -> %s: %s", in, type, err.msg);
}

static void expect_same_bytes(const char *ours, const char *theirs) {
    size_t na, nb;
    char *a = read_whole_file(ours, &na), *b = read_whole_file(theirs, &nb);
    if (na != nb || memcmp(a, b, na) != 0) {
        size_t i = 0;
        while (i < na && i < nb && a[i] == b[i])
            i++;
        fail_msg("%s differs from %s (sizes %zu and %zu, first difference at byte %zu)", ours, theirs, na, nb, i);
    }
    free(a);
    free(b);
}

/* The checkpoint that llama.cpp converted, converted by us: the same bytes. */
static void convert_matches_llama_cpp(void **state) {
    const char *models[] = {"tiny-llada", "tiny-llada-gqa"}, *types[] = {"f32", "f16", "q8_0"};
    char *dir = make_temp_dir();
    for (int m = 0; m < 2; m++) {
        for (int t = 0; t < 3; t++) {
            char src[256], out[512], ref[256];
            snprintf(src, sizeof src, "llada/%s/hf-f32-sharded", models[m]);
            snprintf(ref, sizeof ref, "llada/gguf/%s-%s.gguf", models[m], types[t]);
            snprintf(out, sizeof out, "%s/%s-%s.gguf", dir, models[m], types[t]);
            convert_or_fail(fixture(src), out, types[t], models[m]); /* general.name from the model's name */
            expect_same_bytes(out, fixture(ref));
        }
    }
    remove_tree(dir);
    free(dir);
}

/* llama.cpp's F32 file re-quantized by us equals llama.cpp's own F16 and Q8_0
 * files (the converter and llama-quantize share the quantizers). */
static void quantize_matches_llama_cpp(void **state) {
    char *dir = make_temp_dir(), out[512];
    const char *types[] = {"f16", "q8_0"};
    for (int t = 0; t < 2; t++) {
        char ref[256];
        snprintf(ref, sizeof ref, "llada/gguf/tiny-llada-gqa-%s.gguf", types[t]);
        snprintf(out, sizeof out, "%s/%s.gguf", dir, types[t]);
        quantize_or_fail(fixture("llada/gguf/tiny-llada-gqa-f32.gguf"), out, types[t]);
        expect_same_bytes(out, fixture(ref));
    }
    /* re-quantizing to the type a file already has copies every byte */
    snprintf(out, sizeof out, "%s/again.gguf", dir);
    quantize_or_fail(fixture("llada/gguf/tiny-llada-q8_0.gguf"), out, "q8_0");
    expect_same_bytes(out, fixture("llada/gguf/tiny-llada-q8_0.gguf"));
    remove_tree(dir);
    free(dir);
}

/* The single-file BF16 checkpoint lists its tensors in another order, so the
 * file is not byte-identical; keys and every tensor's bytes still are. */
static void convert_from_bf16_checkpoint(void **state) {
    char *dir = make_temp_dir(), out[512];
    snprintf(out, sizeof out, "%s/m.gguf", dir);
    convert_or_fail(fixture("llada/tiny-llada/hf-bf16"), out, "f16", "tiny-llada");
    um_gguf_file a, b;
    um_error err;
    assert_int_equal(um_gguf_open(out, &a, &err), UM_OK);
    assert_int_equal(um_gguf_open(fixture("llada/gguf/tiny-llada-f16.gguf"), &b, &err), UM_OK);
    assert_int_equal(a.n_kv, b.n_kv);
    for (size_t i = 0; i < a.n_kv; i++) {
        assert_string_equal(a.kvs[i].key, b.kvs[i].key);
        assert_int_equal(a.kvs[i].value_size, b.kvs[i].value_size);
        assert_memory_equal(a.kvs[i].value, b.kvs[i].value, a.kvs[i].value_size);
    }
    assert_int_equal(a.n_tensors, b.n_tensors);
    for (size_t i = 0; i < a.n_tensors; i++) {
        const um_gguf_tensor *t = um_gguf_find_tensor(&b, a.tensors[i].name);
        assert_non_null(t);
        assert_int_equal(t->type, a.tensors[i].type);
        assert_int_equal(t->nbytes, a.tensors[i].nbytes);
        assert_memory_equal(t->data, a.tensors[i].data, t->nbytes);
    }
    um_gguf_close(&a);
    um_gguf_close(&b);
    remove_tree(dir);
    free(dir);
}

static double logits_error(um_model *m, const char *model) {
    char rel[256];
    snprintf(rel, sizeof rel, "llada/%s/forward.safetensors", model);
    um_st_file ref;
    um_error err;
    assert_int_equal(um_st_open(fixture(rel), &ref, &err), UM_OK);
    const um_st_tensor *ids = um_st_find(&ref, "input_ids"), *lg = um_st_find(&ref, "logits");
    int rows = (int)ids->shape[0], seq = (int)ids->shape[1], vocab = (int)lg->shape[2];
    size_t n = (size_t)rows * seq * vocab;
    int32_t *tokens = malloc((size_t)rows * seq * sizeof *tokens);
    float *ours = malloc(n * sizeof *ours), *want = malloc(n * sizeof *want);
    memcpy(tokens, ids->data, (size_t)rows * seq * sizeof *tokens);
    memcpy(want, lg->data, n * sizeof *want);
    assert_int_equal(t_forward(m, tokens, rows, seq, ours, &err), UM_OK);
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        max_diff = fmax(max_diff, fabs((double)ours[i] - want[i]));
        max_ref = fmax(max_ref, fabs(want[i]));
    }
    free(tokens);
    free(ours);
    free(want);
    um_st_close(&ref);
    return max_diff / max_ref;
}

/* Float conversions keep the model: reference logits within 1e-3 relative and
 * every reference-sampler generation exactly. */
static void converted_models_reproduce_reference(void **state) {
    const char *models[] = {"tiny-llada", "tiny-llada-gqa"}, *types[] = {"f32", "f16", "bf16"};
    char *dir = make_temp_dir();
    for (int mi = 0; mi < 2; mi++) {
        for (int t = 0; t < 3; t++) {
            char src[256], out[512];
            snprintf(src, sizeof src, "llada/%s/hf-bf16", models[mi]);
            snprintf(out, sizeof out, "%s/%s-%s.gguf", dir, models[mi], types[t]);
            convert_or_fail(fixture(src), out, types[t], NULL);
            um_model_params mp = {2, false};
            um_model *m;
            um_error err;
            if (um_model_open(out, &mp, &m, &err) != UM_OK)
                fail_msg("%s", err.msg);
            double e = logits_error(m, models[mi]);
            print_message("    %s converted to %s: max relative logit error %.2e\n", models[mi], types[t], e);
            assert_true(e <= 1e-3);
            assert_true(run_reference_cases(m, models[mi], out, expect_reference_exact, NULL) >= 6);
            um_model_close(m);
        }
    }
    remove_tree(dir);
    free(dir);
}

/* ---- quantization error on a model with K-quant-sized rows ---------------- */

/* A small LLaDA whose rows split into 256-value super-blocks, with weights
 * scaled so its logits are spread like a trained model's (std ~2) rather than
 * the near-uniform ones of a 0.02-std initialisation. */
typedef struct {
    um_st_desc d[32];
    char names[32][96];
    float *bufs[32];
    int n;
    um_rng rng;
} tensor_list;

/* A normal(0, std) matrix, or a vector of ones when cols == 0. */
static void add_tensor(tensor_list *t, const char *name, int rows, int cols, double std) {
    size_t numel = (size_t)rows * (size_t)(cols ? cols : 1);
    float *v = malloc(numel * sizeof *v);
    for (size_t i = 0; i < numel; i++)
        v[i] = cols ? (float)(std * um_rng_normal(&t->rng)) : 1.0f;
    snprintf(t->names[t->n], sizeof t->names[0], "%s", name);
    t->bufs[t->n] = v;
    t->d[t->n] = (um_st_desc){t->names[t->n], UM_F32, cols ? 2 : 1, {rows, cols}, v};
    t->n++;
}

static void write_small_model(const char *dir) {
    const int D = 256, F = 512, V = 1024;
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    const char *cfg = "{\"model_type\":\"llada\",\"n_layers\":2,\"d_model\":256,\"n_heads\":8,\"n_kv_heads\":8,"
                      "\"mlp_hidden_size\":512,\"vocab_size\":1024,\"max_sequence_length\":512,\"mask_token_id\":1000,"
                      "\"eos_token_id\":1001,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"weight_tying\":false}";
    write_file(path, cfg, strlen(cfg));
    const struct {
        const char *part;
        int rows, cols;
        double std;
    } parts[] = {{"attn_norm", D, 0, 0},  {"q_proj", D, D, 0.08},  {"k_proj", D, D, 0.08},
                 {"v_proj", D, D, 0.06},  {"attn_out", D, D, 0.06}, {"ff_norm", D, 0, 0},
                 {"ff_proj", F, D, 0.06}, {"up_proj", F, D, 0.06},  {"ff_out", D, F, 0.04}};
    tensor_list *t = calloc(1, sizeof *t);
    um_rng_seed(&t->rng, 42);
    add_tensor(t, "model.transformer.wte.weight", V, D, 1.0);
    for (int l = 0; l < 2; l++)
        for (size_t k = 0; k < sizeof parts / sizeof *parts; k++) {
            char name[96];
            snprintf(name, sizeof name, "model.transformer.blocks.%d.%s.weight", l, parts[k].part);
            add_tensor(t, name, parts[k].rows, parts[k].cols, parts[k].std);
        }
    add_tensor(t, "model.transformer.ln_f.weight", D, 0, 0);
    add_tensor(t, "model.transformer.ff_out.weight", V, D, 0.12);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    um_error err;
    assert_int_equal(um_st_write(path, t->d, t->n, &err), UM_OK);
    for (int i = 0; i < t->n; i++)
        free(t->bufs[i]);
    free(t);
}

static float *canvas_logits(const char *path, const int32_t *canvas, int seq) {
    um_model_params mp = {2, false};
    um_model *m;
    um_error err;
    if (um_model_open(path, &mp, &m, &err) != UM_OK)
        fail_msg("%s", err.msg);
    float *logits = malloc((size_t)seq * 1024 * sizeof *logits);
    assert_int_equal(t_forward(m, canvas, 1, seq, logits, &err), UM_OK);
    um_model_close(m);
    return logits;
}

/* Mean KL divergence and top-1 agreement against the F32 model. Measured here:
 * Q8_0 0.00026, Q6_K 0.0031, Q5_K_M 0.0089, Q4_K_M 0.036, Q4_1 0.045, Q4_0
 * 0.056 (top-1 98% .. 80%) - the order and the size of the KL divergences
 * llama.cpp reports for these types on real models (Q8_0 ~1e-3 and below,
 * Q6_K a few 1e-3, Q5_K_M ~1e-2, the 4-bit types a few 1e-2). The bounds
 * leave about 1.5x room. */
static void quantized_types_error_bounds(void **state) {
    char *dir = make_temp_dir(), hf[512], ref_path[512];
    snprintf(hf, sizeof hf, "%s/hf", dir);
    assert_int_equal(mkdir(hf, 0755), 0);
    write_small_model(hf);
    snprintf(ref_path, sizeof ref_path, "%s/f32.gguf", dir);
    convert_or_fail(hf, ref_path, "f32", NULL);
    int seq = 128;
    int32_t canvas[128];
    um_rng rng;
    um_rng_seed(&rng, 7);
    for (int i = 0; i < seq; i++)
        canvas[i] = i < 96 ? (int32_t)(um_rng_next(&rng) % 1000) : 1000;
    float *ref = canvas_logits(ref_path, canvas, seq);
    const struct {
        const char *type;
        double max_kl, min_top1;
    } cases[] = {{"q8_0", 0.001, 0.95}, {"q6_k", 0.006, 0.90},  {"q5_k_m", 0.015, 0.87},
                 {"q4_k_m", 0.06, 0.78}, {"q4_1", 0.07, 0.74}, {"q4_0", 0.09, 0.72}};
    double prev_kl = 0;
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char out[512];
        snprintf(out, sizeof out, "%s/%s.gguf", dir, cases[c].type);
        convert_or_fail(hf, out, cases[c].type, NULL);
        float *test = canvas_logits(out, canvas, seq);
        um_logit_stats st;
        um_compare_logits(ref, test, seq, 1024, &st);
        print_message("    %-7s mean KL %.5f  max KL %.5f  top-1 %.1f%%  RMS %.4f\n", cases[c].type, st.mean_kl,
                      st.max_kl, 100 * st.top1, st.rms_error);
        assert_true(st.mean_kl < cases[c].max_kl);
        assert_true(st.top1 >= cases[c].min_top1);
        assert_true(st.mean_kl > prev_kl * 0.8); /* coarser types cost more */
        prev_kl = st.mean_kl;
        free(test);
    }
    free(ref);
    remove_tree(dir);
    free(dir);
}

/* KL divergence and agreement on hand-made logits. */
static void compare_statistics(void **state) {
    float p[2][3] = {{0, 0, 0}, {2, 1, 0}}, q[2][3] = {{0, 0, 0}, {0, 1, 2}};
    um_logit_stats st;
    um_compare_logits(&p[0][0], &q[0][0], 2, 3, &st);
    /* row 1: P = softmax(2,1,0), Q = its reverse; KL = sum P (log P - log Q) = (p0 - p2) * 2 */
    double z = exp(2.0) + exp(1.0) + 1.0, p0 = exp(2.0) / z, p2 = 1.0 / z;
    assert_true(fabs(st.mean_kl - (2 * (p0 - p2)) / 2) < 1e-9);
    assert_true(fabs(st.max_kl - 2 * (p0 - p2)) < 1e-9);
    assert_true(st.top1 == 0.5);
    assert_true(fabs(st.rms_error - sqrt(8.0 / 6.0)) < 1e-9);
}

/* The commands: progress, errors that name what is wrong. */
static void convert_cli(void **state) {
    char *dir = make_temp_dir();
    cmd_result r = run_unmask("convert %s -o %s/m.gguf --type q4_k_m", fixture("llada/tiny-llada/hf-bf16"), dir);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "[ 30/ 30]"));
    assert_non_null(strstr(r.err, "wrote"));
    cmd_result_free(&r);
    r = run_unmask("convert %s -o %s/m.gguf --type q3_k", fixture("llada/tiny-llada/hf-bf16"), dir);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown type 'q3_k'"));
    cmd_result_free(&r);
    r = run_unmask("convert %s/nowhere -o %s/m.gguf", dir, dir);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "config.json"));
    cmd_result_free(&r);
    r = run_unmask("quantize %s/m.gguf %s/m.gguf q8_0", dir, dir);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "must differ"));
    cmd_result_free(&r);
    r = run_unmask("quantize %s/m.gguf %s/q.gguf q6_k", dir, dir);
    assert_int_equal(r.status, 0);
    cmd_result_free(&r);
    remove_tree(dir);
    free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(convert_matches_llama_cpp),
    cmocka_unit_test(quantize_matches_llama_cpp),
    cmocka_unit_test(convert_from_bf16_checkpoint),
    cmocka_unit_test(converted_models_reproduce_reference),
    cmocka_unit_test(compare_statistics),
    cmocka_unit_test(quantized_types_error_bounds),
    cmocka_unit_test(convert_cli),
};
const test_group convert_group = {"convert", tests, sizeof tests / sizeof *tests};
