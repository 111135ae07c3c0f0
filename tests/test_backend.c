/* The backend seam (backend/backend.h): every operation of every backend
 * against the scalar path's. Here the backends are the CPU backend on each
 * instruction-set path this CPU has, in f32 and in the reduced arithmetic;
 * a device backend joins the list of backends_under_test. The scalar path
 * is the reference: its kernels are the plain C written next to the
 * definitions (tests/test_kernels.c holds them to those). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "kernels/quant.h"
#include "testutil.h"

enum { N = 10, D = 64, HEADS = 4, KV_HEADS = 2, HD = 16, KV = KV_HEADS * HD, FF = 96, VOCAB = 80 };

typedef struct {
    um_backend *be;
    um_buffer bufs[32];
    int n_bufs;
} side;

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* A tensor of rows x cols in a new buffer of s's backend, holding host (when not NULL). */
static um_tensor make(side *s, um_dtype type, int64_t rows, int64_t cols, const void *host) {
    um_error err;
    assert_true(s->n_bufs < 32);
    um_buffer *b = &s->bufs[s->n_bufs++];
    assert_int_equal(s->be->ops->alloc(s->be, b, (size_t)(rows * cols) * um_dtype_size(type), &err), UM_OK);
    um_tensor t = {b, 0, type, rows, cols};
    if (host)
        assert_int_equal(s->be->ops->upload(s->be, &t, host, &err), UM_OK);
    return t;
}

static void fetch(side *s, const um_tensor *t, float *host) {
    um_error err;
    assert_int_equal(s->be->ops->download(s->be, host, t, &err), UM_OK);
}

static void release(side *s) {
    for (int i = 0; i < s->n_bufs; i++)
        s->be->ops->release(s->be, &s->bufs[i]);
    um_backend_free(s->be);
}

static void expect_close(const char *op, const char *what, const float *got, const float *want, size_t n,
                         double bound) {
    double d = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)got[i] - want[i]));
        ref = fmax(ref, fabs((double)want[i]));
        if (isnan(got[i]) != isnan(want[i]))
            fail_msg("%s on %s: NaN at %zu", op, what, i);
    }
    if (d > bound * (ref > 0 ? ref : 1))
        fail_msg("%s on %s: differs from the scalar path by %g of %g", op, what, d, ref);
}

/* The inputs every operation is run on. */
typedef struct {
    float x[N * D], y[N * D], q[N * D], k[N * KV], v[N * KV], gate[N * FF], up[N * FF], norm[D];
    float wf[FF * D];
    uint8_t w_bf16[FF * D * 2], w_q8[FF * D], head[VOCAB * D * 2];
    int32_t ids[N], pos[N];
} inputs;

static void fill(inputs *in) {
    uint64_t s = 42;
    float *f32s[] = {in->x, in->y, in->q, in->k, in->v, in->gate, in->up, in->norm, in->wf};
    size_t ns[] = {N * D, N * D, N * D, N * KV, N * KV, N * FF, N * FF, D, FF * D};
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
        for (size_t j = 0; j < ns[i]; j++)
            f32s[i][j] = frand(&s);
    for (int r = 0; r < FF; r++) {
        um_quantize_row(UM_BF16, in->wf + r * D, in->w_bf16 + (size_t)r * D * 2, D);
        um_quantize_row(UM_Q8_0, in->wf + r * D, in->w_q8 + (size_t)r * um_row_bytes(UM_Q8_0, D), D);
    }
    for (int r = 0; r < VOCAB; r++) /* the head: rows spread apart so that picks do not tie */
        for (int c = 0; c < D; c++) {
            float v = frand(&s) * (1.0f + (float)r / 8);
            um_quantize_row(UM_BF16, &v, in->head + ((size_t)r * D + c) * 2, 1);
        }
    for (int i = 0; i < N; i++) {
        in->ids[i] = (i * 7) % FF;
        in->pos[i] = i < 6 ? 3 + i : 20 + i; /* two runs of positions */
    }
}

/* Every operation on one backend; results into out (same layout on both sides). */
typedef struct {
    float rows_f16[N * D], rows_q8[N * D], copy[N * D], mm[3][N * FF], norm[N * D], added[N * D], rope_q[N * D],
        rope_k[N * KV], swiglu[N * FF], att[N * D], logits[N * VOCAB], moe[N * D];
    um_pick picks[N];
} results;

static void run_ops(side *s, const inputs *in, results *out) {
    um_backend *be = s->be;
    um_error err;
    um_weight w_bf16 = {UM_BF16, FF, D, in->w_bf16, false, NULL}, w_q8 = {UM_Q8_0, FF, D, in->w_q8, false, NULL};
    um_weight head = {UM_BF16, VOCAB, D, in->head, false, NULL};
    um_tensor ids = make(s, UM_I32, N, 1, in->ids), pos = make(s, UM_I32, N, 1, in->pos);
    um_tensor rows = make(s, UM_F32, N, D, NULL);
    assert_int_equal(be->ops->get_rows(be, &w_bf16, &ids, &rows, &err), UM_OK);
    fetch(s, &rows, out->rows_f16);
    assert_int_equal(be->ops->get_rows(be, &w_q8, &ids, &rows, &err), UM_OK);
    fetch(s, &rows, out->rows_q8);

    um_tensor x = make(s, UM_F32, N, D, in->x), y = make(s, UM_F32, N, D, in->y);
    int32_t from[4] = {9, 0, 4, 4}, to[4] = {1, 2, 3, 8};
    assert_int_equal(be->ops->copy_rows(be, &y, to, &x, from, 4, &err), UM_OK);
    fetch(s, &y, out->copy);

    um_tensor mm[3] = {make(s, UM_F32, N, FF, NULL), make(s, UM_F32, N, FF, NULL), make(s, UM_F32, N, FF, NULL)};
    const um_weight *ws[3] = {&w_bf16, &w_q8, &w_bf16};
    const float *bias[3] = {NULL, in->norm, NULL};
    const um_tensor *outs[3] = {&mm[0], &mm[1], &mm[2]};
    assert_int_equal(be->ops->matmul(be, &x, 2, ws, bias, outs, &err), UM_OK); /* two at once */
    assert_int_equal(be->ops->matmul(be, &x, 1, ws + 2, bias + 2, outs + 2, &err), UM_OK);
    for (int i = 0; i < 3; i++)
        fetch(s, &mm[i], out->mm[i]);

    um_tensor xn = make(s, UM_F32, N, D, NULL), x2 = make(s, UM_F32, N, D, in->x), add = make(s, UM_F32, N, D, in->y);
    assert_int_equal(be->ops->add_rmsnorm(be, &x2, &add, in->norm, 1e-5f, &xn, &err), UM_OK);
    fetch(s, &xn, out->norm);
    fetch(s, &x2, out->added);

    um_tensor q = make(s, UM_F32, N, D, in->q), k = make(s, UM_F32, N, KV, in->k), v = make(s, UM_F32, N, KV, in->v);
    um_rope_shape rs = {HEADS, KV_HEADS, HD, 500000.0f, false, HD};
    assert_int_equal(be->ops->rope(be, &q, &k, &pos, &rs, &err), UM_OK);
    fetch(s, &q, out->rope_q);
    fetch(s, &k, out->rope_k);

    um_tensor gate = make(s, UM_F32, N, FF, in->gate), up = make(s, UM_F32, N, FF, in->up);
    assert_int_equal(be->ops->swiglu(be, &gate, &up, &err), UM_OK);
    fetch(s, &gate, out->swiglu);

    um_tensor att = make(s, UM_F32, N, D, NULL);
    um_attn_shape as = {HEADS, KV_HEADS, HD, be->reduced};
    um_tensor q7 = um_tensor_rows(&q, 0, 7), att7 = um_tensor_rows(&att, 0, 7);
    assert_int_equal(be->ops->attention(be, &q7, &k, &v, 9, &att7, &as, &err), UM_OK); /* keys [0, 9) */
    um_tensor q3 = um_tensor_rows(&q, 7, 3), att3 = um_tensor_rows(&att, 7, 3);
    assert_int_equal(be->ops->attention(be, &q3, &k, &v, N, &att3, &as, &err), UM_OK);
    fetch(s, &att, out->att);

    /* 4 experts of Q8_0 and F32 matrices (one arithmetic per path: the
       matmuls above hold each type to it), 2 a token, routed by the first
       rows of x as an F32 router */
    um_weight w_down = {UM_F32, D, FF, in->wf, false, NULL};
    um_weight gates[4] = {w_q8, w_q8, w_q8, w_q8}, ups[4] = {w_q8, w_q8, w_q8, w_q8};
    um_weight downs[4] = {w_down, w_down, w_down, w_down};
    um_moe_weights moe = {4,    2,     {UM_GATING_SOFTMAX, 0, 0, false, 1.0f}, {UM_F32, 4, D, in->x, false, NULL},
                          NULL, gates, ups,                                   downs};
    um_tensor moe_out = make(s, UM_F32, N, D, NULL);
    assert_int_equal(be->ops->moe(be, &x, &moe, &moe_out, &err), UM_OK);
    fetch(s, &moe_out, out->moe);

    assert_int_equal(be->ops->logits(be, &x, &head, NULL, out->logits, &err), UM_OK);
    um_pick_request req[N];
    for (int i = 0; i < N; i++)
        req[i] = (um_pick_request){.row = i, .uncond_row = i % 3 == 0 ? (i + 1) % N : -1, .guidance = 2.5f,
                                   .eos_inf = i == 4 ? 7 : -1, .eot_inf = -1, .temperature = i % 2 ? 0.8 : 0,
                                   .seed = 5, .step = 2, .pos = 100 + i, .stats = true};
    assert_int_equal(be->ops->pick(be, &x, &head, NULL, req, N, out->picks, &err), UM_OK);
}

static void compare(const char *what, const results *got, const results *want, bool reduced) {
    double mm_bound = reduced ? 1e-3 : 1e-5, f = 1e-5;
    /* row lookups and copies are exact */
    assert_memory_equal(got->rows_f16, want->rows_f16, sizeof got->rows_f16);
    assert_memory_equal(got->rows_q8, want->rows_q8, sizeof got->rows_q8);
    assert_memory_equal(got->copy, want->copy, sizeof got->copy);
    for (int i = 0; i < 3; i++)
        expect_close("matmul", what, got->mm[i], want->mm[i], N * FF, mm_bound);
    expect_close("add_rmsnorm (sum)", what, got->added, want->added, N * D, f);
    expect_close("add_rmsnorm", what, got->norm, want->norm, N * D, f);
    expect_close("rope (q)", what, got->rope_q, want->rope_q, N * D, f);
    expect_close("rope (k)", what, got->rope_k, want->rope_k, N * KV, f);
    expect_close("swiglu", what, got->swiglu, want->swiglu, N * FF, 1e-5);
    expect_close("attention", what, got->att, want->att, N * D, reduced ? 1e-3 : 1e-5);
    expect_close("logits", what, got->logits, want->logits, N * VOCAB, mm_bound);
    expect_close("moe", what, got->moe, want->moe, N * D, mm_bound);
    for (int i = 0; i < N; i++) {
        if (got->picks[i].token != want->picks[i].token)
            fail_msg("pick on %s: request %d chose %d, the scalar path %d", what, i, got->picks[i].token,
                     want->picks[i].token);
        if (fabs(got->picks[i].conf - want->picks[i].conf) > (reduced ? 1e-3 : 1e-5) ||
            fabs(got->picks[i].entropy - want->picks[i].entropy) > (reduced ? 1e-3 : 1e-5))
            fail_msg("pick on %s: request %d scores differ", what, i);
    }
}

static side backend_on(um_kernel_path path, bool reduced) {
    side s = {0};
    um_error err;
    um_exec ex = {NULL, reduced, path, UM_LIB_NONE};
    assert_int_equal(um_cpu_backend_create(2, ex, &s.be, &err), UM_OK);
    return s;
}

/* Every operation of the CPU backend on each path this CPU has (the others
 * say why not) against the scalar path, in f32 and reduced arithmetic. A
 * path without bf16 dot products (AVX2, NEON without bf16) runs the products
 * with BF16 operands in f32 even when reduced, and one without int8 dot
 * products (NEON without dotprod) the quantized ones (kernels.h): each
 * product is held to the scalar path's result in the arithmetic the path
 * runs it in. */
static void every_op_matches_scalar(void **state) {
    static inputs in;
    fill(&in);
    static results want[2], got, mixed;
    for (int reduced = 0; reduced < 2; reduced++) {
        side ref = backend_on(UM_PATH_SCALAR, reduced);
        run_ops(&ref, &in, &want[reduced]);
        release(&ref);
    }
    for (int reduced = 0; reduced < 2; reduced++)
        for (int p = 0; p < UM_PATH_COUNT; p++) {
            if (p == UM_PATH_SCALAR)
                continue;
            char what[64];
            snprintf(what, sizeof what, "cpu/%s%s", um_kernel_path_name((um_kernel_path)p), reduced ? " reduced" : "");
            if (um_kernel_path_lack((um_kernel_path)p)) {
                skip_note(um_kernel_path_lack((um_kernel_path)p), what);
                continue;
            }
            side s = backend_on((um_kernel_path)p, reduced);
            run_ops(&s, &in, &got);
            release(&s);
            mixed = want[reduced];
            um_exec ex = {NULL, true, (um_kernel_path)p, UM_LIB_NONE};
            if (reduced && strstr(um_matmul_kernel_name(&ex, UM_BF16), "f32")) {
                memcpy(mixed.mm[0], want[0].mm[0], sizeof mixed.mm[0]);
                memcpy(mixed.mm[2], want[0].mm[2], sizeof mixed.mm[2]);
                memcpy(mixed.logits, want[0].logits, sizeof mixed.logits);
                memcpy(mixed.picks, want[0].picks, sizeof mixed.picks);
            }
            if (reduced && strstr(um_matmul_kernel_name(&ex, UM_Q8_0), "f32")) {
                memcpy(mixed.mm[1], want[0].mm[1], sizeof mixed.mm[1]);
                memcpy(mixed.moe, want[0].moe, sizeof mixed.moe);
            }
            if (reduced && !um_kernel_path_bf16_dot((um_kernel_path)p))
                memcpy(mixed.att, want[0].att, sizeof mixed.att);
            compare(what, &got, &mixed, reduced);
            print_message("    %s: every operation matches the scalar path\n", what);
        }
}

/* Operations report bad shapes and rows instead of reading out of bounds. */
static void ops_report_failure(void **state) {
    static inputs in;
    fill(&in);
    side s = backend_on(um_kernel_path_best(), false);
    um_backend *be = s.be;
    um_error err;
    um_weight w = {UM_BF16, FF, D, in.w_bf16, false, NULL};
    um_tensor x = make(&s, UM_F32, N, D, in.x), small = make(&s, UM_F32, N, FF - 1, NULL);
    const um_weight *ws[1] = {&w};
    const float *bias[1] = {NULL};
    const um_tensor *outs[1] = {&small};
    assert_int_equal(be->ops->matmul(be, &x, 1, ws, bias, outs, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "matmul"));
    int32_t bad_ids[N] = {0, FF};
    um_tensor ids = make(&s, UM_I32, 2, 1, bad_ids), rows = make(&s, UM_F32, 2, D, NULL);
    assert_int_equal(be->ops->get_rows(be, &w, &ids, &rows, &err), UM_ERR_ARG);
    um_pick_request r = {.row = N, .uncond_row = -1, .eos_inf = -1, .eot_inf = -1};
    um_pick pk;
    um_weight head = {UM_BF16, VOCAB, D, in.head, false, NULL};
    assert_int_equal(be->ops->pick(be, &x, &head, NULL, &r, 1, &pk, &err), UM_ERR_ARG);
    assert_non_null(strstr(err.msg, "row"));
    release(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(every_op_matches_scalar),
    cmocka_unit_test(ops_report_failure),
};

const test_group backend_group = {"backend", tests, sizeof tests / sizeof *tests};
