/* The masked-diffusion training objective: loss and every parameter's
 * gradient against the float64 PyTorch references of the LLaDA guidelines'
 * pre-training and SFT steps (fixtures/llada/tiny-llada/{pretrain,sft}_step.safetensors),
 * computed in f32 on the matmul kernels with two threads, plus central finite
 * differences of a few weights and a mutation that the comparison must catch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors.h"
#include "model/model.h"
#include "testutil.h"
#include "train/llada_grad.h"

/* Two threads: the tasks of the attention and the loss really split. */
static um_pool *test_pool(void) {
    um_pool *pool = um_pool_create(2);
    assert_non_null(pool);
    return pool;
}

#define GRAD_TOLERANCE 1e-4
#define LOSS_TOLERANCE 1e-5
#define FD_STEP 3e-3f
#define FD_TOLERANCE 2e-2
#define DIRECTIONAL_TOLERANCE 2e-2 /* second-order terms at these steps reach 1e-2 */

/* A fixture step: the batch, the reference loss and gradients. */
typedef struct {
    um_st_file ref;
    int32_t *x0, *noisy, *prompt_lengths;
    double *p_mask;
    double loss;
    um_mdm_batch batch;
} step_fixture;

static void *copy_tensor(const um_st_file *f, const char *name, um_dtype type, int64_t numel) {
    const um_st_tensor *t = um_st_find(f, name);
    if (!t)
        fail_msg("%s: no tensor '%s'", f->path, name);
    assert_int_equal(t->dtype, type);
    assert_int_equal(um_st_numel(t), numel);
    void *p = malloc(t->nbytes);
    memcpy(p, t->data, t->nbytes);
    return p;
}

static void load_step(step_fixture *s, const char *file, const um_model *m) {
    memset(s, 0, sizeof *s);
    char rel[256];
    snprintf(rel, sizeof rel, "llada/tiny-llada/%s", file);
    um_error err;
    if (um_st_open(fixture(rel), &s->ref, &err) != UM_OK)
        fail_msg("%s", err.msg);
    const um_st_tensor *ids = um_st_find(&s->ref, "input_ids");
    assert_non_null(ids);
    int rows = (int)ids->shape[0], seq = (int)ids->shape[1];
    int64_t n = (int64_t)rows * seq;
    s->x0 = copy_tensor(&s->ref, "input_ids", UM_I32, n);
    s->noisy = copy_tensor(&s->ref, "noisy_ids", UM_I32, n);
    s->p_mask = copy_tensor(&s->ref, "p_mask", UM_F64, n);
    double *loss = copy_tensor(&s->ref, "loss", UM_F64, 1);
    s->loss = *loss;
    free(loss);
    if (um_st_find(&s->ref, "prompt_lengths"))
        s->prompt_lengths = copy_tensor(&s->ref, "prompt_lengths", UM_I32, rows);
    /* the fixture's masked positions are exactly those holding the mask id */
    const um_st_tensor *masked = um_st_find(&s->ref, "masked");
    for (int64_t t = 0; masked && t < n; t++)
        assert_int_equal(masked->data[t] != 0, s->noisy[t] == m->hp.mask_id);
    s->batch = (um_mdm_batch){rows, seq, s->x0, s->noisy, s->p_mask, s->prompt_lengths};
}

static void free_step(step_fixture *s) {
    free(s->x0);
    free(s->noisy);
    free(s->prompt_lengths);
    free(s->p_mask);
    um_st_close(&s->ref);
}

/* The worst ||ours - ref|| / ||ref|| over every parameter's gradient; names it in worst. */
static double worst_grad_error(const um_train_params *g, const um_st_file *ref, const char **worst) {
    double max_e = 0;
    *worst = "(none)";
    for (int i = 0; i < g->n_tensors; i++) {
        const um_train_tensor *t = &g->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "grad.%s", t->name);
        const um_st_tensor *r = um_st_find(ref, name);
        if (!r)
            fail_msg("no reference gradient '%s'", name);
        assert_int_equal(r->dtype, UM_F64);
        assert_int_equal(um_st_numel(r), t->numel);
        double diff = 0, norm = 0;
        for (int64_t j = 0; j < t->numel; j++) {
            double want;
            memcpy(&want, r->data + j * sizeof want, sizeof want);
            diff += (t->data[j] - want) * (t->data[j] - want);
            norm += want * want;
        }
        double e = sqrt(diff) / sqrt(norm);
        if (!(e <= max_e)) { /* NaN counts as the worst */
            max_e = e;
            *worst = t->name;
        }
    }
    return max_e;
}

static void check_step(const char *file) {
    um_model *m = open_fixture_model("tiny-llada", "hf-f32-sharded", 1);
    um_pool *pool = test_pool();
    step_fixture s;
    load_step(&s, file, m);
    um_train_params p, g;
    um_error err;
    if (um_train_params_from_model(&p, m, &err) != UM_OK || um_train_params_init(&g, &m->hp, &err) != UM_OK)
        fail_msg("%s", err.msg);
    /* every reference gradient has a parameter here, and the other way round (worst_grad_error) */
    int n_ref_grads = 0;
    for (int i = 0; i < s.ref.n_tensors; i++)
        n_ref_grads += strncmp(s.ref.tensors[i].name, "grad.", 5) == 0;
    assert_int_equal(n_ref_grads, p.n_tensors);

    double loss;
    if (um_llada_loss_grad(pool, &p, &s.batch, &loss, &g, &err) != UM_OK)
        fail_msg("%s", err.msg);
    double loss_err = fabs(loss - s.loss) / fabs(s.loss);
    const char *worst;
    double e = worst_grad_error(&g, &s.ref, &worst);
    print_message("    %s: loss %.10f (reference %.10f, relative error %.1e); worst gradient %s: %.2e\n", file, loss,
                  s.loss, loss_err, worst, e);
    assert_true(loss_err <= LOSS_TOLERANCE);
    assert_true(e <= GRAD_TOLERANCE);

    /* teeth: a zeroed gradient tensor, or one off by a factor 1.001, fails */
    um_train_tensor *t = &g.tensors[3];
    float *saved = malloc((size_t)t->numel * sizeof *saved);
    memcpy(saved, t->data, (size_t)t->numel * sizeof *saved);
    for (int64_t j = 0; j < t->numel; j++)
        t->data[j] *= 1.001f;
    assert_true(worst_grad_error(&g, &s.ref, &worst) > GRAD_TOLERANCE);
    memset(t->data, 0, (size_t)t->numel * sizeof *t->data);
    assert_true(worst_grad_error(&g, &s.ref, &worst) > GRAD_TOLERANCE);
    assert_string_equal(worst, t->name);
    memcpy(t->data, saved, (size_t)t->numel * sizeof *saved);
    free(saved);

    /* gradients accumulate: a second pass doubles them */
    if (um_llada_loss_grad(pool, &p, &s.batch, &loss, &g, &err) != UM_OK)
        fail_msg("%s", err.msg);
    for (int i = 0; i < g.n_tensors; i++)
        for (int64_t j = 0; j < g.tensors[i].numel; j++)
            g.tensors[i].data[j] /= 2;
    assert_true(worst_grad_error(&g, &s.ref, &worst) <= GRAD_TOLERANCE);

    um_train_params_free(&p);
    um_train_params_free(&g);
    free_step(&s);
    um_model_close(m);
    um_pool_destroy(pool);
}

static void pretrain_step(void **state) { check_step("pretrain_step.safetensors"); }
static void sft_step(void **state) { check_step("sft_step.safetensors"); }

/* Central differences (L(w + h) - L(w - h)) / 2h of a few weights, one in each
 * kind of tensor, against the analytic gradient: independent of the reference. */
static void finite_differences(void **state) {
    um_model *m = open_fixture_model("tiny-llada", "hf-f32-sharded", 1);
    um_pool *pool = test_pool();
    step_fixture s;
    load_step(&s, "sft_step.safetensors", m);
    um_train_params p, g;
    um_error err;
    if (um_train_params_from_model(&p, m, &err) != UM_OK || um_train_params_init(&g, &m->hp, &err) != UM_OK)
        fail_msg("%s", err.msg);
    double loss;
    if (um_llada_loss_grad(pool, &p, &s.batch, &loss, &g, &err) != UM_OK)
        fail_msg("%s", err.msg);
    static const struct {
        const char *name;
        int64_t index;
    } probes[] = {
        {"model.transformer.wte.weight", 0}, /* filled below: a row of an input token */
        {"model.transformer.blocks.0.attn_norm.weight", 7},
        {"model.transformer.blocks.0.q_proj.weight", 64 * 5 + 9},
        {"model.transformer.blocks.1.k_proj.weight", 64 * 33 + 2},
        {"model.transformer.blocks.1.v_proj.weight", 64 * 60 + 61},
        {"model.transformer.blocks.2.attn_out.weight", 64 * 12 + 40},
        {"model.transformer.blocks.1.ff_norm.weight", 50},
        {"model.transformer.blocks.2.ff_proj.weight", 64 * 100 + 3},
        {"model.transformer.blocks.0.up_proj.weight", 64 * 191 + 63},
        {"model.transformer.blocks.1.ff_out.weight", 192 * 20 + 150},
        {"model.transformer.ln_f.weight", 31},
        {"model.transformer.ff_out.weight", 0}, /* filled below: the row of a target token */
    };
    double max_e = 0;
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        const um_train_tensor *pt = um_train_params_find(&p, probes[i].name);
        const um_train_tensor *gt = um_train_params_find(&g, probes[i].name);
        assert_non_null(pt);
        assert_non_null(gt);
        int64_t j = probes[i].index;
        if (i == 0)
            j = (int64_t)s.noisy[0] * 64 + 5;
        if (i == sizeof probes / sizeof *probes - 1)
            j = (int64_t)s.x0[s.batch.seq - 1] * 64 + 17;
        /* f32 losses: a step large enough that rounding (~1e-7 of the loss) stays
         * small against the difference, measured as the weights actually moved */
        float w0 = pt->data[j], w_up = w0 + FD_STEP * fmaxf(1.0f, fabsf(w0)), w_down = 2 * w0 - w_up;
        double up, down;
        pt->data[j] = w_up;
        assert_int_equal(um_llada_loss_grad(pool, &p, &s.batch, &up, NULL, &err), UM_OK);
        pt->data[j] = w_down;
        assert_int_equal(um_llada_loss_grad(pool, &p, &s.batch, &down, NULL, &err), UM_OK);
        pt->data[j] = w0;
        double fd = (up - down) / ((double)w_up - w_down), e = fabs(fd - gt->data[j]) / fmax(fabs(gt->data[j]), 1e-2);
        if (e > max_e)
            max_e = e;
        if (e > FD_TOLERANCE)
            print_message("    %s[%lld]: finite difference %.9g, gradient %.9g\n", probes[i].name, (long long)j, fd,
                          gt->data[j]);
    }
    print_message("    %zu finite differences: worst relative error %.1e\n", sizeof probes / sizeof *probes, max_e);
    assert_true(max_e <= FD_TOLERANCE);
    um_train_params_free(&p);
    um_train_params_free(&g);
    free_step(&s);
    um_model_close(m);
    um_pool_destroy(pool);
}

/* Directional derivatives at a shape the fixtures do not reach (rows of 97
 * tokens: tile and band edges; grouped-query attention; a vocabulary of 300):
 * for a random direction r per tensor, (L(w + h r) - L(w - h r)) / 2h must
 * equal g . r, which checks every coordinate of the gradient at once. */
static void directional_derivatives(void **state) {
    um_hparams hp = {.n_layers = 2, .d_model = 128, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32, .d_ff = 352,
                     .n_vocab = 300, .max_seq = 256, .norm_eps = 1e-5f, .rope_theta = 10000, .mask_id = 299};
    um_pool *pool = test_pool();
    um_train_params p, g;
    um_error err;
    assert_int_equal(um_train_params_init(&p, &hp, &err), UM_OK);
    assert_int_equal(um_train_params_init(&g, &hp, &err), UM_OK);
    uint32_t r = 777;
#define NEXT_UNIFORM() ((r = r * 1664525u + 1013904223u), (double)(r >> 8) / (1 << 24) - 0.5)
    for (int i = 0; i < p.n_tensors; i++)
        for (int64_t j = 0; j < p.tensors[i].numel; j++)
            p.tensors[i].data[j] = (float)(p.tensors[i].n_dims == 1 ? 1 + 0.2 * NEXT_UNIFORM() : 0.1 * NEXT_UNIFORM());
    enum { ROWS = 3, SEQ = 97 };
    int32_t x0[ROWS * SEQ], noisy[ROWS * SEQ];
    double p_mask[ROWS * SEQ];
    for (int i = 0; i < ROWS * SEQ; i++) {
        x0[i] = (int32_t)((NEXT_UNIFORM() + 0.5) * 299);
        p_mask[i] = 0.3 + 0.2 * (i % SEQ) / SEQ;
        noisy[i] = (i * 7) % 3 == 0 ? hp.mask_id : x0[i];
    }
    um_mdm_batch b = {ROWS, SEQ, x0, noisy, p_mask, NULL};
    double loss;
    assert_int_equal(um_llada_loss_grad(pool, &p, &b, &loss, &g, &err), UM_OK);
    double worst = 0;
    for (int t = 0; t < p.n_tensors; t++) {
        um_train_tensor *P = &p.tensors[t];
        const um_train_tensor *G = &g.tensors[t];
        float *dir = malloc((size_t)P->numel * sizeof *dir), *saved = malloc((size_t)P->numel * sizeof *saved);
        double gr = 0;
        for (int64_t j = 0; j < P->numel; j++) {
            dir[j] = (float)NEXT_UNIFORM();
            gr += (double)dir[j] * G->data[j];
            saved[j] = P->data[j];
        }
        double h = P->n_dims == 1 ? 2e-2 : 4e-3, up, down;
        for (int64_t j = 0; j < P->numel; j++)
            P->data[j] = saved[j] + (float)(h * dir[j]);
        assert_int_equal(um_llada_loss_grad(pool, &p, &b, &up, NULL, &err), UM_OK);
        for (int64_t j = 0; j < P->numel; j++)
            P->data[j] = saved[j] - (float)(h * dir[j]);
        assert_int_equal(um_llada_loss_grad(pool, &p, &b, &down, NULL, &err), UM_OK);
        memcpy(P->data, saved, (size_t)P->numel * sizeof *saved);
        double fd = (up - down) / (2 * h), e = fabs(fd - gr) / fabs(gr);
        if (e > worst)
            worst = e;
        if (e > DIRECTIONAL_TOLERANCE)
            print_message("    %s: g.r %.6g, difference quotient %.6g\n", P->name, gr, fd);
        free(dir);
        free(saved);
    }
#undef NEXT_UNIFORM
    print_message("    %d tensors: worst relative error of g.r %.1e\n", p.n_tensors, worst);
    assert_true(worst <= DIRECTIONAL_TOLERANCE);
    um_train_params_free(&p);
    um_train_params_free(&g);
    um_pool_destroy(pool);
}

/* Batches the objective refuses: a masked prompt position, p_mask 0, a bad token id. */
static void bad_batches(void **state) {
    um_hparams hp = {.n_layers = 1, .d_model = 8, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4, .d_ff = 8,
                     .n_vocab = 16, .max_seq = 8, .norm_eps = 1e-5f, .rope_theta = 10000, .mask_id = 15};
    int32_t x0[4] = {1, 2, 3, 4}, noisy[4] = {15, 2, 15, 4}, prompt[1] = {1};
    double p_mask[4] = {0.5, 0.5, 0.5, 0.5}, w[4];
    um_mdm_batch b = {1, 4, x0, noisy, p_mask, NULL};
    um_error err;
    assert_int_equal(um_mdm_loss_weights(&b, hp.mask_id, hp.n_vocab, w, &err), UM_OK);
    assert_true(w[0] == 1.0 / (0.5 * 4) && w[1] == 0 && w[2] == w[0]);
    b.prompt_lengths = prompt;
    assert_int_equal(um_mdm_loss_weights(&b, hp.mask_id, hp.n_vocab, w, &err), UM_ERR_ARG);
    noisy[0] = 1;
    assert_int_equal(um_mdm_loss_weights(&b, hp.mask_id, hp.n_vocab, w, &err), UM_OK);
    assert_true(w[2] == 1.0 / (0.5 * 3)); /* answer length 3, one row */
    p_mask[2] = 0;
    assert_int_equal(um_mdm_loss_weights(&b, hp.mask_id, hp.n_vocab, w, &err), UM_ERR_ARG);
    p_mask[2] = 0.5;
    x0[3] = 16;
    assert_int_equal(um_mdm_loss_weights(&b, hp.mask_id, hp.n_vocab, w, &err), UM_ERR_ARG);
    x0[3] = 4;

    /* a GQA model with random weights runs (shapes, grouping) and its loss is finite */
    um_pool *pool = test_pool();
    um_train_params p, g;
    assert_int_equal(um_train_params_init(&p, &hp, &err), UM_OK);
    assert_int_equal(um_train_params_init(&g, &hp, &err), UM_OK);
    uint32_t r = 12345;
    for (int i = 0; i < p.n_tensors; i++)
        for (int64_t j = 0; j < p.tensors[i].numel; j++) {
            r = r * 1664525u + 1013904223u;
            p.tensors[i].data[j] = (float)((double)(r >> 8) / (1 << 24) - 0.5 + (p.tensors[i].n_dims == 1));
        }
    double loss;
    assert_int_equal(um_llada_loss_grad(pool, &p, &b, &loss, &g, &err), UM_OK);
    assert_true(isfinite(loss) && loss > 0);
    um_train_params_free(&p);
    um_train_params_free(&g);
    um_pool_destroy(pool);
    hp.bias = true;
    assert_int_equal(um_train_params_init(&p, &hp, &err), UM_ERR_UNSUPPORTED);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(pretrain_step),
    cmocka_unit_test(sft_step),
    cmocka_unit_test(finite_differences),
    cmocka_unit_test(directional_derivatives),
    cmocka_unit_test(bad_batches),
};

const test_group train_group = {"train", tests, sizeof tests / sizeof *tests};
